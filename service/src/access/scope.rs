//! Row scope: which rows an actor reaches for a (resource, action), defined once.
//!
//! A role's grant (`role_permission`: none, own, department subtree, all, plus the
//! department's public pool) becomes a [`Reach`]. A `Reach` is data, and both forms of the
//! rule are derived from it: [`Reach::condition`] renders it as SQL over any table that has
//! an owner and a department column (customers, staff), and [`Reach::admits`] evaluates it
//! on a [`Placement`] already in memory (a loaded customer for a live event, the owner a
//! customer is being assigned to). The two cannot drift apart because neither restates the
//! rule. Records that hang off a customer (contacts, deals, feedback, interactions,
//! reminders) are scoped through their customer. See `docs/access.md`.
use crate::access::actor::Actor;
use crate::error::{AppError, AppResult};
use entity::enums::{Action, Resource, Scope};
use entity::{customer, reminder};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait};
use uuid::Uuid;

/// Where a record sits: who owns it (none while in a public pool) and which department
/// holds it. A customer row has one; so has a staff member (owning themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub owner_id: Option<Uuid>,
    pub department_id: Uuid,
}

impl From<&customer::Model> for Placement {
    fn from(c: &customer::Model) -> Self {
        Placement { owner_id: c.owner_id, department_id: c.department_id }
    }
}

/// The rows one grant reaches: the union of its parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reach {
    /// Every row.
    pub everything: bool,
    /// Rows held by one of these departments (the actor's subtree).
    pub departments: Option<Vec<Uuid>>,
    /// Rows owned by this user (the actor).
    pub owner: Option<Uuid>,
    /// Unowned rows of this department (its public pool).
    pub pool_of: Option<Uuid>,
}

impl Reach {
    /// The one definition: what a grant of `scope` (and pool access) reaches for `actor`.
    pub fn of(actor: &Actor, scope: Scope, include_pool: bool) -> Reach {
        let mut reach = Reach { pool_of: include_pool.then_some(actor.user.department_id), ..Reach::default() };
        match scope {
            Scope::All => reach.everything = true,
            Scope::Department => reach.departments = Some(actor.subtree.clone()),
            Scope::Own => reach.owner = Some(actor.id()),
            Scope::NoAccess => {}
        }
        reach
    }

    /// Whether the grant reaches nothing at all.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.departments.is_none() && self.owner.is_none() && self.pool_of.is_none()
    }

    /// The rule as SQL over a table's owner and department columns.
    pub fn condition(&self, owner: impl ColumnTrait, department: impl ColumnTrait) -> Condition {
        if self.everything {
            return Condition::all();
        }
        if self.is_empty() {
            return Condition::all().add(Expr::val(1).eq(0));
        }
        let mut any = Condition::any();
        if let Some(departments) = &self.departments {
            any = any.add(department.is_in(departments.clone()));
        }
        if let Some(me) = self.owner {
            any = any.add(owner.eq(me));
        }
        if let Some(d) = self.pool_of {
            any = any.add(Condition::all().add(owner.is_null()).add(department.eq(d)));
        }
        any
    }

    /// The rule as separate conditions, one per part, when it is "own rows or one
    /// department's pool": each part has an index that returns it in order, so a list can
    /// read each part's page and merge them (`pagination::paginate_parts`) instead of
    /// filtering a scan of the whole table by the `OR`. `None` otherwise (everything, or a
    /// department subtree, which holds the pool anyway and no index returns in order).
    pub fn parts(&self, owner: impl ColumnTrait, department: impl ColumnTrait) -> Option<Vec<Condition>> {
        match (self.everything, &self.departments, self.owner, self.pool_of) {
            (false, None, Some(me), Some(d)) => Some(vec![
                Condition::all().add(owner.eq(me)),
                Condition::all().add(owner.is_null()).add(department.eq(d)),
            ]),
            _ => None,
        }
    }

    /// Whether every row `other` reaches is reached by this one too (conservative: false
    /// when it cannot tell without looking at rows).
    pub fn covers(&self, other: &Reach) -> bool {
        if self.everything {
            return true;
        }
        let departments =
            |ds: &[Uuid]| self.departments.as_ref().is_some_and(|mine| ds.iter().all(|d| mine.contains(d)));
        !other.everything
            && other.departments.as_ref().is_none_or(|ds| departments(ds))
            && other.owner.is_none_or(|o| self.owner == Some(o))
            && other.pool_of.is_none_or(|d| self.pool_of == Some(d) || departments(&[d]))
    }

    /// The rule evaluated on a record in memory.
    pub fn admits(&self, p: Placement) -> bool {
        self.everything
            || self.departments.as_ref().is_some_and(|d| d.contains(&p.department_id))
            || self.owner.is_some_and(|me| p.owner_id == Some(me))
            || self.pool_of.is_some_and(|d| p.owner_id.is_none() && p.department_id == d)
    }
}

/// How much of a field group (amounts, contact details, personal details) an actor sees
/// among the records it may read of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldAccess {
    /// On every record it may read.
    Every,
    /// On the records this reach admits; hidden (null) on the others.
    Some(Reach),
    /// On none.
    Never,
}

impl FieldAccess {
    /// Whether the group shows on a record placed at `p` (a readable one).
    pub fn admits(&self, p: Placement) -> bool {
        match self {
            FieldAccess::Every => true,
            FieldAccess::Some(reach) => reach.admits(p),
            FieldAccess::Never => false,
        }
    }
}

impl Actor {
    /// What the actor sees of a field group (`Resource::DealAmount`, `ContactDetails`,
    /// `PersonalDetails`) on the records of `over` it may read: the group's READ grant,
    /// applied row by row.
    pub fn field_access(&self, group: Resource, over: Resource) -> FieldAccess {
        let fields = self.reach(group, Action::Read);
        if fields.is_empty() {
            FieldAccess::Never
        } else if fields.covers(&self.reach(over, Action::Read)) {
            FieldAccess::Every
        } else {
            FieldAccess::Some(fields)
        }
    }

    /// The field groups the actor sees on a record of `over` whose customer sits at
    /// `at`: the one decision GraphQL and the CSV export apply, field by field, through the
    /// record's catalogue (`Visible::field`). (The audit trail and the personal-data
    /// export are read through grants of their own: `audit::mask_record`.)
    pub fn visible(&self, over: Resource, at: Placement) -> crate::catalogue::Visible {
        crate::catalogue::Visible::of(|group| self.sees(group, over, at))
    }

    /// Whether the actor sees field group `group` on a record of `over` whose customer
    /// sits at `at`: the decision [`Actor::visible`] makes for every group, for one (what
    /// GraphQL asks per field).
    pub fn sees(&self, group: Resource, over: Resource, at: Placement) -> bool {
        self.field_access(group, over).admits(at)
    }

    /// Whether the actor may see a staff member's account fields (login e-mail, role,
    /// active flag): its own, or anyone its USER READ grant reaches (staff "own"
    /// themselves). Colleagues see names and departments only.
    pub fn sees_account(&self, u: &entity::user::Model) -> bool {
        self.id() == u.id
            || self
                .reach(Resource::User, Action::Read)
                .admits(Placement { owner_id: Some(u.id), department_id: u.department_id })
    }

    /// What the actor reaches for an action on a resource.
    pub fn reach(&self, resource: Resource, action: Action) -> Reach {
        let grant = self.grant(resource, action);
        Reach::of(self, grant.scope, grant.include_pool)
    }

    /// The row condition over `customer` columns for an action on a resource of the
    /// customer family.
    pub fn customer_condition(&self, resource: Resource, action: Action) -> Condition {
        self.reach(resource, action).condition(customer::Column::OwnerId, customer::Column::DepartmentId)
    }

    /// [`Actor::customer_condition`] as separately indexed parts ([`Reach::parts`]).
    pub fn customer_parts(&self, resource: Resource, action: Action) -> Option<Vec<Condition>> {
        self.reach(resource, action).parts(customer::Column::OwnerId, customer::Column::DepartmentId)
    }

    /// The same rule for a customer already in memory (live events are filtered this way,
    /// without a query). A deleted customer is reached by nobody.
    pub fn may(&self, resource: Resource, action: Action, c: &customer::Model) -> bool {
        c.deleted_at.is_none() && self.reach(resource, action).admits(c.into())
    }

    /// The row condition for a record that hangs off a customer (contact, deal, ...): its
    /// customer must be live and inside the scope.
    ///
    /// Two shapes of the same rule, for the plans they lead to: a caller who reaches every
    /// customer gets `EXISTS (live parent)`, so a list pages down the records' own order
    /// index and checks each row's one parent (with `IN (every live customer)` SQLite read
    /// the whole subquery for each page: 0.2 s a page of 66,000 contacts); a caller with a
    /// narrower reach gets `IN (their customers)`, which starts from their few customers.
    pub fn child_condition(&self, customer_id: impl ColumnTrait, resource: Resource, action: Action) -> Condition {
        let reach = self.reach(resource, action);
        let mut parents = Query::select();
        parents.from(customer::Entity).and_where(customer::Column::DeletedAt.is_null());
        if reach.everything {
            parents
                .expr(Expr::val(1))
                .and_where(Expr::col((customer::Entity, customer::Column::Id)).equals(customer_id.as_column_ref()));
            return Condition::all().add(Expr::exists(parents));
        }
        parents
            .column((customer::Entity, customer::Column::Id))
            .cond_where(reach.condition(customer::Column::OwnerId, customer::Column::DepartmentId));
        Condition::all().add(customer_id.in_subquery(parents))
    }

    /// The row condition over staff (`user`) for an action on a resource: a staff member
    /// "owns" themselves, so an own-scope reaches oneself and a department scope the
    /// staff of the subtree.
    ///
    /// # Errors
    /// FORBIDDEN when the role has no grant at all.
    pub fn staff_condition(&self, resource: Resource, action: Action) -> AppResult<Condition> {
        self.require(resource, action)?;
        // People only: API keys' accounts are no one's staff.
        Ok(Condition::all()
            .add(entity::user::Column::ServiceAccount.eq(false))
            .add(self.reach(resource, action).condition(entity::user::Column::Id, entity::user::Column::DepartmentId)))
    }

    /// The reminders that are the actor's: named to them, or left to the customer's
    /// owner (assignee OWNER, resolved at read time so they follow the customer) while
    /// the actor owns it. The customer must be live. [`Actor::holds_reminder`] is the
    /// same rule in memory.
    pub fn reminder_condition(&self) -> Condition {
        let live = |owned: bool| {
            let mut q = Query::select();
            q.column((customer::Entity, customer::Column::Id))
                .from(customer::Entity)
                .and_where(customer::Column::DeletedAt.is_null());
            if owned {
                q.and_where(customer::Column::OwnerId.eq(self.id()));
            }
            q
        };
        Condition::any()
            .add(
                Condition::all()
                    .add(reminder::Column::AssigneeId.eq(self.id()))
                    .add(reminder::Column::CustomerId.in_subquery(live(false))),
            )
            .add(
                Condition::all()
                    .add(reminder::Column::AssigneeId.is_null())
                    .add(reminder::Column::CustomerId.in_subquery(live(true))),
            )
    }

    /// Whether a reminder is the actor's, given its customer ([`Actor::reminder_condition`]).
    pub fn holds_reminder(&self, r: &reminder::Model, c: &customer::Model) -> bool {
        c.deleted_at.is_none() && r.assignee_id.map_or(c.owner_id == Some(self.id()), |a| a == self.id())
    }
}

/// A department and all its descendants, by a recursive query both databases run.
///
/// # Errors
/// Database errors.
pub async fn department_subtree(db: &impl ConnectionTrait, root: Uuid) -> AppResult<Vec<Uuid>> {
    use entity::department::{Column, Entity as Department};
    use sea_orm::sea_query::{Alias, CommonTableExpression, UnionType, WithClause};
    // WITH RECURSIVE sub(id) AS (SELECT id FROM department WHERE id = root
    //   UNION SELECT d.id FROM department d JOIN sub ON d.parent_id = sub.id) SELECT id FROM sub
    let (sub, d) = (Alias::new("sub"), Alias::new("d"));
    let mut tree = Query::select();
    tree.column(Column::Id).from(Department).and_where(Column::Id.eq(root)).union(
        UnionType::Distinct,
        Query::select()
            .column((d.clone(), Column::Id))
            .from_as(Department, d.clone())
            .inner_join(sub.clone(), Expr::col((d, Column::ParentId)).equals((sub.clone(), Alias::new("id"))))
            .to_owned(),
    );
    let cte = CommonTableExpression::new().query(tree).column(Alias::new("id")).table_name(sub.clone()).to_owned();
    let q = Query::select()
        .column(Alias::new("id"))
        .from(sub)
        .to_owned()
        .with(WithClause::new().recursive(true).cte(cte).to_owned());
    let rows = db.query_all_raw(db.get_database_backend().build(&q)).await?;
    let mut ids =
        rows.iter().map(|r| r.try_get::<Uuid>("", "id").map_err(AppError::from)).collect::<AppResult<Vec<_>>>()?;
    // Sorted, so that equal subtrees compare equal (`Actor::same_rights`).
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(everything: bool, departments: Option<Vec<Uuid>>, owner: Option<Uuid>, pool_of: Option<Uuid>) -> Reach {
        Reach { everything, departments, owner, pool_of }
    }

    #[test]
    fn admits_follows_each_part() {
        let (me, other, d1, d2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mine = Placement { owner_id: Some(me), department_id: d2 };
        let theirs = Placement { owner_id: Some(other), department_id: d1 };
        let pooled = Placement { owner_id: None, department_id: d1 };
        assert!(reach(true, None, None, None).admits(theirs));
        assert!(!Reach::default().admits(mine));
        assert!(reach(false, Some(vec![d1]), None, None).admits(theirs));
        assert!(!reach(false, Some(vec![d1]), None, None).admits(mine));
        assert!(reach(false, None, Some(me), None).admits(mine));
        assert!(!reach(false, None, Some(me), None).admits(theirs));
        assert!(reach(false, None, Some(me), Some(d1)).admits(pooled));
        assert!(!reach(false, None, Some(me), Some(d2)).admits(pooled));
        assert!(!reach(false, None, None, Some(d1)).admits(theirs));
    }

    #[test]
    fn covers_is_conservative() {
        let (me, d1, d2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let own = reach(false, None, Some(me), None);
        let own_and_pool = reach(false, None, Some(me), Some(d1));
        let subtree = reach(false, Some(vec![d1, d2]), None, None);
        assert!(reach(true, None, None, None).covers(&own_and_pool));
        assert!(own.covers(&own));
        assert!(!own.covers(&own_and_pool), "the pool is read but its amounts are not seen");
        assert!(subtree.covers(&reach(false, Some(vec![d2]), None, Some(d1))));
        assert!(!subtree.covers(&own), "own rows may sit outside the subtree");
        assert!(!subtree.covers(&reach(true, None, None, None)));
    }

    #[test]
    fn condition_renders_each_part() {
        use sea_orm::sea_query::{PostgresQueryBuilder, Query};
        let (me, d1) = (Uuid::nil(), Uuid::max());
        let sql = |r: Reach| {
            Query::select()
                .column(customer::Column::Id)
                .from(customer::Entity)
                .cond_where(r.condition(customer::Column::OwnerId, customer::Column::DepartmentId))
                .to_string(PostgresQueryBuilder)
        };
        let everything = sql(reach(true, None, None, None));
        assert!(!everything.contains("owner_id") && !everything.contains("department_id"), "{everything}");
        assert!(sql(Reach::default()).contains("1 = 0"));
        let s = sql(reach(false, Some(vec![d1]), Some(me), Some(d1)));
        assert!(s.contains(r#""department_id" IN"#), "{s}");
        assert!(s.contains(r#""owner_id" = "#), "{s}");
        assert!(s.contains(r#""owner_id" IS NULL"#), "{s}");
    }
}
