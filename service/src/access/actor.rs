//! The Actor: who is calling, with the role's permissions as loaded from the database.
//! What those permissions reach, row by row, is decided in [`crate::access::scope`].
use crate::access::scope::department_subtree;
use crate::error::{AppError, AppResult};
use entity::enums::{Action, Resource, Role, Scope};
use entity::{role_permission, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
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
    /// Who the actor is and every right it holds, as one text: equal for two loads
    /// exactly when they are the same user with the same role, department, subtree and
    /// grants (a key for what was built for this actor, `compiled::Compiler`).
    rights: std::sync::Arc<str>,
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
        // An API key's account holds the grants copied into its key, not its role's.
        let grants: HashMap<(Resource, Action), Grant> = if user.service_account {
            crate::access::api_key::grants_of_account(db, user.id)
                .await?
                .into_iter()
                .filter(|p| !crate::access::api_key::for_people(p.resource, p.action))
                .map(|p| ((p.resource, p.action), Grant { scope: p.scope, include_pool: p.include_pool }))
                .collect()
        } else {
            role_permission::Entity::find()
                .filter(role_permission::Column::Role.eq(user.role))
                .all(db)
                .await?
                .into_iter()
                .map(|p| ((p.resource, p.action), Grant { scope: p.scope, include_pool: p.include_pool }))
                .collect()
        };
        let subtree = department_subtree(db, user.department_id).await?;
        let mut listed: Vec<String> = grants.iter().map(|(k, g)| format!("{k:?}={g:?}")).collect();
        listed.sort_unstable();
        let rights = format!(
            "{} {:?} {} {} {:?} {}",
            user.id,
            user.role,
            user.department_id,
            user.service_account,
            subtree,
            listed.join(",")
        );
        Ok(Actor { user, subtree, grants, rights: rights.into() })
    }

    /// Who the actor is and every right it holds, as one text (see the field).
    pub fn rights(&self) -> &str {
        &self.rights
    }

    /// Whether `other` (the same user, loaded again) has exactly these rights: role,
    /// department subtree and every grant.
    pub fn same_rights(&self, other: &Actor) -> bool {
        self.user.role == other.user.role
            && self.user.department_id == other.user.department_id
            && self.subtree == other.subtree
            && self.grants == other.grants
    }

    pub fn id(&self) -> Uuid {
        self.user.id
    }

    /// Whose identity, beyond its rights (`same_rights`), what this actor reads depends
    /// on: its own when a grant is OWN-scoped (rows it owns) or it sees staff accounts
    /// narrower than its department (then its own account is the one it sees); none
    /// otherwise, so colleagues with the same rights read the same. Live events are
    /// resolved once per group of subscribers this and `same_rights` make equal.
    pub fn view_owner(&self) -> Option<Uuid> {
        let own = self.grants.values().any(|g| g.scope == Scope::Own);
        let accounts = matches!(self.grant(Resource::User, Action::Read).scope, Scope::All | Scope::Department);
        (own || !accounts).then_some(self.id())
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// Whether the caller is a person of the company (not a partner system: neither the
    /// integration role nor an API key): staff may learn which department owns a
    /// duplicate (seed 004).
    pub fn is_staff(&self) -> bool {
        self.user.role.is_staff() && !self.user.service_account
    }

    /// The grant for an action on a resource (NONE when absent).
    pub fn grant(&self, resource: Resource, action: Action) -> Grant {
        self.grants.get(&(resource, action)).copied().unwrap_or(Grant::NONE)
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
}
