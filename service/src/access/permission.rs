//! Role permissions as data (`docs/access.md`): admins read and change the grants of a
//! role, field groups included. A change ends every cached actor on every instance, and
//! closes the WebSockets whose rights it changed.
use crate::access::Actor;
use crate::access::live::Events;
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::store::write;
use entity::enums::{Action, Resource, Role, Scope};
use entity::role_permission::{self, Column};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

/// Every grant of a role (missing rows are NONE), ordered by resource and action.
///
/// # Errors
/// FORBIDDEN without SETTINGS READ of scope ALL.
pub async fn of_role(db: &DatabaseConnection, actor: &Actor, role: Role) -> AppResult<Vec<role_permission::Model>> {
    actor.require_all(Resource::Settings, Action::Read)?;
    Ok(role_permission::Entity::find()
        .filter(Column::Role.eq(role))
        .order_by_asc(Column::Resource)
        .order_by_asc(Column::Action)
        .all(db)
        .await?)
}

/// Whether (resource, action) with the pool is a grant that means something: field groups
/// take READ only, the audit trail READ, a person's data READ and DELETE, the pool
/// customer READ only (role grants and API keys' grants alike).
///
/// # Errors
/// VALIDATION.
pub fn check(resource: Resource, action: Action, include_pool: bool) -> AppResult<()> {
    let groups = [Resource::DealAmount, Resource::ContactDetails, Resource::PersonalDetails];
    if groups.contains(&resource) && action != Action::Read {
        return Err(AppError::invalid("action", "field groups have READ grants only"));
    }
    let meaningful = match resource {
        Resource::Audit => action == Action::Read,
        Resource::PersonalData => matches!(action, Action::Read | Action::Delete),
        _ => true,
    };
    if !meaningful {
        return Err(AppError::invalid(
            "action",
            "the audit trail takes READ; a person's data READ (export) and DELETE (erase)",
        ));
    }
    if include_pool && (resource, action) != (Resource::Customer, Action::Read) {
        return Err(AppError::invalid("includePool", "only customer READ reaches the public pool"));
    }
    Ok(())
}

/// Sets one grant: (role, resource, action) -> scope and pool access. NONE without the
/// pool removes the row.
///
/// # Errors
/// FORBIDDEN without SETTINGS UPDATE of scope ALL; VALIDATION for the pool on anything
/// but customer READ, or for field groups on any action but READ; CONFLICT when the
/// change would take user or settings administration away from the admin role (nobody
/// could give it back).
pub async fn set(
    db: &DatabaseConnection,
    events: &Events,
    actor: &Actor,
    grant: role_permission::Model,
) -> AppResult<role_permission::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    check(grant.resource, grant.action, grant.include_pool)?;
    if grant.role == Role::Admin
        && matches!(grant.resource, Resource::User | Resource::Settings)
        && grant.scope != Scope::All
    {
        return Err(AppError::Conflict(
            "the admin role keeps user and settings administration (scope ALL); nobody could restore it".into(),
        ));
    }
    let saved = write(db, async |txn| {
        let old = role_permission::Entity::find_by_id((grant.role, grant.resource, grant.action)).one(txn).await?;
        if grant.scope == Scope::NoAccess && !grant.include_pool {
            role_permission::Entity::delete_by_id((grant.role, grant.resource, grant.action)).exec(txn).await?;
        } else {
            let am = role_permission::ActiveModel {
                role: Set(grant.role),
                resource: Set(grant.resource),
                action: Set(grant.action),
                scope: Set(grant.scope),
                include_pool: Set(grant.include_pool),
            };
            role_permission::Entity::insert(am)
                .on_conflict(
                    OnConflict::columns([Column::Role, Column::Resource, Column::Action])
                        .update_columns([Column::Scope, Column::IncludePool])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        change::record(
            txn,
            Some(actor.id()),
            Verb::Update,
            Subject::RolePermission,
            Uuid::nil(),
            old.as_ref(),
            Some(&grant),
        )
        .await?;
        Ok(grant)
    })
    .await?;
    // Every cached actor of the role holds the old grant: drop them all, everywhere.
    events.publish(Signal::StaffChanged).await;
    Ok(saved)
}
