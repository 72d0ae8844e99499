//! Who holds a customer: assignment to an owner or to the public pool, and claims from
//! the pool, within the care policy's holding caps.
use super::*;
use entity::enums::{ReminderRule, ReminderStatus};
use entity::reminder;
use sea_orm::sea_query::{Expr, ExprTrait};

/// Moves a customer to another owner (and that owner's department), or with no owner
/// into its department's public pool.
///
/// # Errors
/// NOT_FOUND (customer or new owner), FORBIDDEN (no assign scope over the customer or
/// the new owner's department), VALIDATION (inactive new owner).
pub async fn assign(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    owner_id: Option<Uuid>,
) -> AppResult<customer::Model> {
    write(db, async |txn| {
        let old = load_for(txn, actor, id, Action::Assign, false).await?;
        let mut am: customer::ActiveModel = old.clone().into();
        match owner_id {
            Some(owner) => {
                let new_owner = crate::access::user::staff(txn, owner).await?;
                if !new_owner.active {
                    return Err(AppError::invalid("ownerId", "the new owner is deactivated"));
                }
                let placement =
                    crate::access::Placement { owner_id: Some(new_owner.id), department_id: new_owner.department_id };
                if !actor.reach(Resource::Customer, Action::Assign).admits(placement) {
                    return Err(AppError::Forbidden("the new owner is outside your department".into()));
                }
                if old.owner_id != Some(new_owner.id) {
                    crate::policy::care::check_holding_cap(txn, new_owner.id, new_owner.role).await?;
                }
                if old.owner_id != Some(new_owner.id) {
                    am.owned_since = Set(Some(now()));
                    close_pool_warnings(txn, old.id, "assigned").await?;
                }
                am.owner_id = Set(Some(new_owner.id));
                am.department_id = Set(new_owner.department_id);
            }
            None => {
                am.owner_id = Set(None);
                am.owned_since = Set(None);
                close_pool_warnings(txn, old.id, "put in the pool").await?;
            }
        }
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Assign, &old, am).await
    })
    .await
}

/// Takes an unowned customer of the caller's department from the public pool.
///
/// # Errors
/// NOT_FOUND (not readable), FORBIDDEN (the role has no pool access), CONFLICT (the
/// customer is not in the caller's department pool, e.g. someone claimed it first).
pub async fn claim(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<customer::Model> {
    write(db, async |txn| {
        let old = get(txn, actor, id).await?;
        if !actor.grant(Resource::Customer, Action::Read).include_pool {
            return Err(AppError::Forbidden("your role may not claim customers from the public pool".into()));
        }
        if old.owner_id.is_some() || old.department_id != actor.user.department_id {
            return Err(AppError::Conflict("the customer is not in your department's public pool".into()));
        }
        crate::policy::care::check_holding_cap(txn, actor.id(), actor.role()).await?;
        let mut am: customer::ActiveModel = old.clone().into();
        am.owner_id = Set(Some(actor.id()));
        am.owned_since = Set(Some(now()));
        close_pool_warnings(txn, old.id, "claimed").await?;
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Claim, &old, am).await
    })
    .await
}

/// Closes the open pool warnings of a customer (contacted, claimed, assigned, returned).
///
/// # Errors
/// Database errors.
pub async fn close_pool_warnings(db: &impl ConnectionTrait, customer_id: Uuid, why: &str) -> AppResult<()> {
    reminder::Entity::update_many()
        .col_expr(reminder::Column::Status, Expr::value(ReminderStatus::Dismissed.as_str()))
        .col_expr(reminder::Column::DismissedReason, Expr::value(why))
        .col_expr(reminder::Column::Version, Expr::col(reminder::Column::Version).add(1))
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now()))
        .filter(reminder::Column::Rule.eq(ReminderRule::PoolReturn))
        .filter(reminder::Column::CustomerId.eq(customer_id))
        .filter(reminder::Column::Status.is_in([ReminderStatus::Pending, ReminderStatus::Snoozed]))
        .exec(db)
        .await?;
    Ok(())
}
