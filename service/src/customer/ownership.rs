//! Who holds a customer: assignment to an owner or to the public pool, and claims from
//! the pool, within the care policy's holding caps.
use super::*;

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
                    crate::care::check_holding_cap(txn, new_owner.id, new_owner.role).await?;
                }
                if old.owner_id != Some(new_owner.id) {
                    am.owned_since = Set(Some(now()));
                    crate::care::close_pool_warnings(txn, old.id, "assigned").await?;
                }
                am.owner_id = Set(Some(new_owner.id));
                am.department_id = Set(new_owner.department_id);
            }
            None => {
                am.owner_id = Set(None);
                am.owned_since = Set(None);
                crate::care::close_pool_warnings(txn, old.id, "put in the pool").await?;
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
        crate::care::check_holding_cap(txn, actor.id(), actor.role()).await?;
        let mut am: customer::ActiveModel = old.clone().into();
        am.owner_id = Set(Some(actor.id()));
        am.owned_since = Set(Some(now()));
        crate::care::close_pool_warnings(txn, old.id, "claimed").await?;
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Claim, &old, am).await
    })
    .await
}
