//! The Actor: who is calling, with the role's permissions as loaded from the database,
//! and the one scoping function that turns a permission into a row condition.
use crate::error::{AppError, AppResult};
use entity::enums::{Action, Resource, Role, Scope};
use entity::{customer, role_permission, user};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use std::collections::HashMap;
use uuid::Uuid;

/// A permission as it applies to this actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    /// Also the unowned customers of the actor's own department.
    pub include_pool: bool,
}

impl Grant {
    const NONE: Grant = Grant { scope: Scope::NoAccess, include_pool: false };

    pub fn allowed(self) -> bool {
        self.scope != Scope::NoAccess || self.include_pool
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: user::Model,
    /// The actor's department and every department below it.
    pub subtree: Vec<Uuid>,
    grants: HashMap<(Resource, Action), Grant>,
}

impl Actor {
    /// Loads an active user with its role's permissions and department subtree.
    ///
    /// # Errors
    /// UNAUTHENTICATED when the user does not exist or is inactive.
    pub async fn load(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Actor> {
        let user = user::Entity::find_by_id(user_id)
            .one(db)
            .await?
            .filter(|u| u.active)
            .ok_or(AppError::Unauthenticated("user unknown or deactivated"))?;
        let grants = role_permission::Entity::find()
            .filter(role_permission::Column::Role.eq(user.role))
            .all(db)
            .await?
            .into_iter()
            .map(|p| ((p.resource, p.action), Grant { scope: p.scope, include_pool: p.include_pool }))
            .collect();
        let subtree = department_subtree(db, user.department_id).await?;
        Ok(Actor { user, subtree, grants })
    }

    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The grant for an action on a resource (NONE when absent).
    pub fn grant(&self, resource: Resource, action: Action) -> Grant {
        self.grants.get(&(resource, action)).copied().unwrap_or(Grant::NONE)
    }

    /// Whether the role may see deal amounts (and the revenue derived from them).
    pub fn sees_deal_amounts(&self) -> bool {
        self.grant(Resource::DealAmount, Action::Read).allowed()
    }

    /// Refuses with FORBIDDEN unless the role has any grant for the action.
    ///
    /// # Errors
    /// FORBIDDEN.
    pub fn require(&self, resource: Resource, action: Action) -> AppResult<Grant> {
        let grant = self.grant(resource, action);
        if grant.allowed() {
            Ok(grant)
        } else {
            Err(AppError::Forbidden(format!(
                "your role may not {} {}",
                action.as_str().to_lowercase(),
                resource.as_str().to_lowercase()
            )))
        }
    }

    /// Requires an ALL grant (user and settings administration).
    ///
    /// # Errors
    /// FORBIDDEN.
    pub fn require_all(&self, resource: Resource, action: Action) -> AppResult<()> {
        if self.grant(resource, action).scope == Scope::All {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "your role may not {} {}",
                action.as_str().to_lowercase(),
                resource.as_str().to_lowercase()
            )))
        }
    }

    /// The row condition over `customer` columns for an action on a resource of the
    /// customer family: the one place where scope becomes SQL.
    pub fn customer_condition(&self, resource: Resource, action: Action) -> Condition {
        let grant = self.grant(resource, action);
        let scoped = match grant.scope {
            Scope::All => return Condition::all(),
            Scope::Department => Some(customer::Column::DepartmentId.is_in(self.subtree.clone())),
            Scope::Own => Some(customer::Column::OwnerId.eq(self.user.id)),
            Scope::NoAccess => None,
        };
        let pool = grant.include_pool.then(|| {
            Condition::all()
                .add(customer::Column::OwnerId.is_null())
                .add(customer::Column::DepartmentId.eq(self.user.department_id))
        });
        match (scoped, pool) {
            (None, None) => Condition::all().add(Expr::val(1).eq(0)),
            (Some(s), None) => Condition::all().add(s),
            (None, Some(p)) => p,
            (Some(s), Some(p)) => Condition::any().add(s).add(p),
        }
    }

    /// The same rule as [`customer_condition`](Self::customer_condition), for a customer
    /// already in memory (live events are filtered this way, without a query).
    pub fn may(&self, resource: Resource, action: Action, c: &customer::Model) -> bool {
        if c.deleted_at.is_some() {
            return false;
        }
        let grant = self.grant(resource, action);
        let scoped = match grant.scope {
            Scope::All => true,
            Scope::Department => self.subtree.contains(&c.department_id),
            Scope::Own => c.owner_id == Some(self.user.id),
            Scope::NoAccess => false,
        };
        scoped || (grant.include_pool && c.owner_id.is_none() && c.department_id == self.user.department_id)
    }

    /// The row condition for a record that hangs off a customer (contact, deal, ...):
    /// its customer must be live and inside the scope.
    pub fn child_condition(&self, customer_id: impl ColumnTrait, resource: Resource, action: Action) -> Condition {
        let grant = self.grant(resource, action);
        let mut parents = Query::select();
        parents
            .column((customer::Entity, customer::Column::Id))
            .from(customer::Entity)
            .and_where(customer::Column::DeletedAt.is_null());
        if grant.scope != Scope::All {
            parents.cond_where(self.customer_condition(resource, action));
        }
        Condition::all().add(customer_id.in_subquery(parents))
    }
}

/// A department and all its descendants, by a recursive query both databases run.
pub async fn department_subtree(db: &impl ConnectionTrait, root: Uuid) -> AppResult<Vec<Uuid>> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "WITH RECURSIVE sub(id) AS (SELECT id FROM department WHERE id = $1 \
             UNION SELECT d.id FROM department d JOIN sub ON d.parent_id = sub.id) SELECT id FROM sub"
        }
        _ => {
            "WITH RECURSIVE sub(id) AS (SELECT id FROM department WHERE id = ? \
             UNION SELECT d.id FROM department d JOIN sub ON d.parent_id = sub.id) SELECT id FROM sub"
        }
    };
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, [root.into()])).await?;
    rows.iter().map(|r| r.try_get::<Uuid>("", "id").map_err(AppError::from)).collect()
}
