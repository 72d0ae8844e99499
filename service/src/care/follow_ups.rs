//! Follow-ups (`docs/care.md`): planned contacts as reminders. An interaction logged with
//! `nextFollowUpOn` plans one for the customer's owner (whoever it is when it falls due);
//! `createFollowUp` plans one for the person who sets it. They fall due at the policy's
//! hour of their day and are delivered like every reminder (`reminderDue`), never held
//! back by the frequency cap (they are not promotional). Managers see their
//! department's reminders, and what is overdue per person, in the team views.
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::sql::{count_all, sum_when};
use crate::kernel::store::write;
use crate::kernel::{new_id, now, required_text};
use crate::records::check_parent;
use crate::records::follow_up::plan;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{Action, AssigneeRole, ReminderRule, ReminderStatus, Resource, Scope};
use entity::{customer, interaction, reminder};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

/// The furthest ahead a follow-up may be planned.
const MAX_AHEAD_DAYS: i64 = 3 * 366;

/// Sets a follow-up for yourself about a customer you may log contacts for.
///
/// # Errors
/// NOT_FOUND (customer), FORBIDDEN, VALIDATION (a day in the past or more than three years
/// ahead, a blank or long note).
pub async fn create_follow_up(
    db: &DatabaseConnection,
    actor: &Actor,
    customer_id: Uuid,
    due_on: NaiveDate,
    note: &str,
) -> AppResult<reminder::Model> {
    if actor.user.service_account {
        return Err(AppError::Forbidden("follow-ups are set by people, not API keys".into()));
    }
    let mut v = Violations::new();
    let note = required_text(&mut v, "note", note, 2000);
    let today = now().date_naive();
    if due_on < today {
        v.add("dueOn", "must be today or later");
    } else if due_on > today + Duration::days(MAX_AHEAD_DAYS) {
        v.add("dueOn", "must be within three years");
    }
    v.into_result()?;
    write(db, async |txn| {
        let customer =
            check_parent::<interaction::Entity>(txn, actor, crate::kernel::types::Id::new(customer_id)).await?;
        let reason = format!("follow-up set by {}", actor.user.name);
        let made = plan(txn, &customer, new_id(), None, due_on, Some(actor.id()), reason, note.clone()).await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Reminder, made.id, None, Some(&made)).await?;
        Ok(made)
    })
    .await
}

/// Which reminders a team view covers: those of live customers the caller reads with a
/// department-wide (or wider) scope, optionally one department's subtree and one person's.
async fn team_condition(db: &impl ConnectionTrait, actor: &Actor, department_id: Option<Uuid>) -> AppResult<Condition> {
    // Those who run a team: people who assign their department's customers (managers;
    // executives and admins company-wide), not every department-wide reader.
    let assign = actor.grant(Resource::Customer, Action::Assign);
    let read = actor.grant(Resource::Customer, Action::Read);
    if actor.user.service_account
        || !matches!(assign.scope, Scope::Department | Scope::All)
        || !matches!(read.scope, Scope::Department | Scope::All)
    {
        return Err(AppError::Forbidden("team views are for those who run a team (assign its customers)".into()));
    }
    let mut customers = Query::select();
    customers
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .and_where(customer::Column::DeletedAt.is_null())
        .cond_where(actor.customer_condition(Resource::Customer, Action::Read));
    // The team: the people of the department asked for, else of the caller's reach.
    let mut team = Query::select();
    team.column(entity::user::Column::Id)
        .from(entity::user::Entity)
        .and_where(entity::user::Column::ServiceAccount.eq(false));
    if let Some(d) = department_id {
        if entity::department::Entity::find_by_id(d).one(db).await?.is_none() {
            return Err(AppError::NotFound("department"));
        }
        let subtree = crate::access::scope::department_subtree(db, d).await?;
        customers.and_where(customer::Column::DepartmentId.is_in(subtree.clone()));
        team.and_where(entity::user::Column::DepartmentId.is_in(subtree));
    } else if read.scope == Scope::Department {
        team.and_where(entity::user::Column::DepartmentId.is_in(actor.subtree.clone()));
    }
    // A reminder is the team's when it is named to one of them, or left to the owner and
    // the customer is owned by one of them.
    let mut owned = Query::select();
    owned
        .column(customer::Column::Id)
        .from(customer::Entity)
        .and_where(customer::Column::OwnerId.in_subquery(team.clone()));
    let person = Condition::any().add(reminder::Column::AssigneeId.in_subquery(team)).add(
        Condition::all()
            .add(reminder::Column::AssigneeId.is_null())
            .add(reminder::Column::CustomerId.in_subquery(owned)),
    );
    Ok(Condition::all().add(reminder::Column::CustomerId.in_subquery(customers)).add(person))
}

/// The open (pending or snoozed) reminders of the caller's team, soonest due first;
/// `overdue_only`: those already due; `person`: one person's (named to them, or theirs as
/// the customer's owner).
///
/// # Errors
/// FORBIDDEN (no department-wide read), NOT_FOUND (department), VALIDATION (paging).
pub async fn team_reminders(
    db: &DatabaseConnection,
    actor: &Actor,
    department_id: Option<Uuid>,
    person: Option<Uuid>,
    overdue_only: bool,
    rules: Option<Vec<ReminderRule>>,
    args: &PageArgs,
) -> AppResult<Page<reminder::Model>> {
    let mut q = reminder::Entity::find()
        .filter(team_condition(db, actor, department_id).await?)
        .filter(reminder::Column::Status.is_in([ReminderStatus::Pending, ReminderStatus::Snoozed]));
    if overdue_only {
        q = q.filter(reminder::Column::DueAt.lt(now()));
    }
    if let Some(rules) = rules {
        q = q.filter(reminder::Column::Rule.is_in(rules));
    }
    if let Some(p) = person {
        let mut owned = Query::select();
        owned.column(customer::Column::Id).from(customer::Entity).and_where(customer::Column::OwnerId.eq(p));
        q = q.filter(
            Condition::any().add(reminder::Column::AssigneeId.eq(p)).add(
                Condition::all()
                    .add(reminder::Column::AssigneeId.is_null())
                    .add(reminder::Column::AssigneeRole.eq(AssigneeRole::Owner))
                    .add(reminder::Column::CustomerId.in_subquery(owned)),
            ),
        );
    }
    let keys =
        [SortKey::<reminder::Entity>::new("dueAt", reminder::Column::DueAt, false, |m| SortValue::Time(m.due_at))];
    paginate(db, q, &keys, reminder::Column::Id, |m| m.id, args).await
}

/// One person's open reminders in a team view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonLoad {
    /// The person they are for: named, or the customer's owner; `None`: customers in the
    /// pool (no owner to act).
    pub person: Option<Uuid>,
    pub open: i64,
    pub overdue: i64,
    pub follow_ups: i64,
    pub follow_ups_overdue: i64,
}

/// The open reminders of the caller's team per person, most overdue first.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND (department).
pub async fn team_load(
    db: &DatabaseConnection,
    actor: &Actor,
    department_id: Option<Uuid>,
) -> AppResult<Vec<PersonLoad>> {
    let at: DateTime<Utc> = now();
    let (r, c) = (reminder::Entity, customer::Entity);
    let person: Expr =
        Func::coalesce([Expr::col((r, reminder::Column::AssigneeId)), Expr::col((c, customer::Column::OwnerId))])
            .into();
    let due = Expr::col((r, reminder::Column::DueAt)).lt(at);
    let follow_up = Expr::col((r, reminder::Column::Rule)).eq(ReminderRule::FollowUp.as_str());
    let mut q = Query::select();
    q.expr_as(person.clone(), Alias::new("person"))
        .expr_as(count_all(), Alias::new("open"))
        .expr_as(sum_when(due.clone(), 1), Alias::new("overdue"))
        .expr_as(sum_when(follow_up.clone(), 1), Alias::new("follow_ups"))
        .expr_as(sum_when(follow_up.and(due), 1), Alias::new("follow_ups_overdue"))
        .from(r)
        .inner_join(c, Expr::col((c, customer::Column::Id)).equals((r, reminder::Column::CustomerId)))
        .cond_where(team_condition(db, actor, department_id).await?)
        .and_where(
            Expr::col((r, reminder::Column::Status))
                .is_in([ReminderStatus::Pending.as_str(), ReminderStatus::Snoozed.as_str()]),
        )
        .add_group_by([person]);
    let mut out = Vec::new();
    for row in db.query_all_raw(db.get_database_backend().build(&q)).await? {
        out.push(PersonLoad {
            person: row.try_get::<Option<Uuid>>("", "person")?,
            open: row.try_get::<i64>("", "open")?,
            overdue: row.try_get::<Option<i64>>("", "overdue")?.unwrap_or(0),
            follow_ups: row.try_get::<Option<i64>>("", "follow_ups")?.unwrap_or(0),
            follow_ups_overdue: row.try_get::<Option<i64>>("", "follow_ups_overdue")?.unwrap_or(0),
        });
    }
    out.sort_by(|a, b| b.overdue.cmp(&a.overdue).then(b.open.cmp(&a.open)).then(a.person.cmp(&b.person)));
    Ok(out)
}
