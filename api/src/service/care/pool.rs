//! The pool sweep (`docs/access.md`, "The public pool"): once a day, with the day's rules,
//! customers nobody has contacted for the policy's days return to their department's
//! pool, audited (`pool_return`, no actor), and owners are warned the days before.
//!
//! A customer's clock runs from its last contact logged by a person, or from when its
//! owner got it if that is later (a claim or an assignment starts afresh). Customers owned
//! before `owned_since` was kept get it stamped the first time the sweep sees them.
use super::facts::row_time;
use super::rules::{Candidate, Context, write_candidates};
use crate::error::AppResult;
use crate::service::{audit, now};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{AssigneeRole, ReminderRule, ReminderStatus};
use entity::{customer, interaction, user};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use uuid::Uuid;

const BATCH: u64 = 500;

/// Sweeps the owned live customers for `day`; returns the warnings created.
///
/// # Errors
/// Database errors.
pub(super) async fn sweep(db: &DatabaseConnection, cx: &Context, day: NaiveDate) -> AppResult<u64> {
    let rule = &cx.policy.pool_return;
    if !rule.enabled {
        return Ok(0);
    }
    let (mut warned, mut returned) = (0, 0);
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = customer::Entity::find()
            .filter(customer::Column::DeletedAt.is_null())
            .filter(customer::Column::OwnerId.is_not_null())
            .order_by_asc(customer::Column::Id)
            .limit(BATCH);
        if let Some(a) = after {
            q = q.filter(customer::Column::Id.gt(a));
        }
        let batch = q.all(db).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let contacts = last_contacts(db, &batch).await?;
        let mut warnings = Vec::new();
        for c in &batch {
            let Some(since) = c.owned_since else {
                stamp(db, c).await?;
                continue;
            };
            let base = contacts.get(&c.id).copied().map_or(since, |t| std::cmp::max(t, since));
            let days = rule.days_for(&c.category, c.tier);
            let deadline = (base + Duration::days(i64::from(days))).date_naive();
            if deadline <= day {
                returned += give_back(db, c, days).await?;
            } else if rule.warn_days > 0 && deadline - Duration::days(i64::from(rule.warn_days)) <= day {
                warnings.push(warning(c, deadline, days));
            }
        }
        warned += write_candidates(db, cx, warnings).await?;
        if (batch.len() as u64) < BATCH {
            break;
        }
    }
    if returned > 0 {
        tracing::info!(%day, returned, "untended customers returned to their pools");
    }
    Ok(warned)
}

/// The last contact a person logged with each of `customers`.
async fn last_contacts(
    db: &impl ConnectionTrait,
    customers: &[customer::Model],
) -> AppResult<HashMap<Uuid, DateTime<Utc>>> {
    use interaction::{Column as I, Entity as Interaction};
    let mut q = Query::select();
    q.expr_as(Expr::col((Interaction, I::CustomerId)), Alias::new("customer_id"))
        .expr_as(Func::max(Expr::col((Interaction, I::OccurredAt))), Alias::new("last"))
        .from(Interaction)
        .inner_join(user::Entity, Expr::col((user::Entity, user::Column::Id)).equals((Interaction, I::UserId)))
        .and_where(Expr::col((Interaction, I::DeletedAt)).is_null())
        .and_where(Expr::col((user::Entity, user::Column::ServiceAccount)).eq(false))
        .and_where(Expr::col((Interaction, I::CustomerId)).is_in(customers.iter().map(|c| c.id)))
        .group_by_col((Interaction, I::CustomerId));
    let mut out = HashMap::new();
    for row in db.query_all_raw(db.get_database_backend().build(&q)).await? {
        out.insert(row.try_get::<Uuid>("", "customer_id")?, row_time(&row, "last")?);
    }
    Ok(out)
}

/// Starts the clock of a customer owned before `owned_since` was kept.
async fn stamp(db: &impl ConnectionTrait, c: &customer::Model) -> AppResult<()> {
    customer::Entity::update_many()
        .col_expr(customer::Column::OwnedSince, Expr::value(now()))
        .filter(customer::Column::Id.eq(c.id))
        .filter(customer::Column::OwnedSince.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Returns a customer to its department's pool, unless it changed since it was read
/// (claimed, contacted, assigned: the next sweep looks again). Audited without an actor.
async fn give_back(db: &DatabaseConnection, c: &customer::Model, days: i32) -> AppResult<u64> {
    let at = now();
    let moved = customer::Entity::update_many()
        .col_expr(customer::Column::OwnerId, Expr::value(Option::<Uuid>::None))
        .col_expr(customer::Column::OwnedSince, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
        .col_expr(customer::Column::UpdatedAt, Expr::value(at))
        .filter(customer::Column::Id.eq(c.id))
        .filter(customer::Column::Version.eq(c.version))
        .exec(db)
        .await?
        .rows_affected;
    if moved == 1 {
        let after =
            customer::Model { owner_id: None, owned_since: None, version: c.version + 1, updated_at: at, ..c.clone() };
        audit::record(db, None, "pool_return", "customer", c.id, Some(c), Some(&after)).await?;
        tracing::debug!(customer = %c.id, days, "returned to the pool");
    }
    Ok(moved)
}

/// The owner's warning: the customer returns to the pool on `deadline` (due at the day's
/// hour, as every reminder the day's evaluation writes).
fn warning(c: &customer::Model, deadline: NaiveDate, days: i32) -> Candidate {
    Candidate {
        rule: ReminderRule::PoolReturn,
        target_id: c.id,
        occasion: deadline.to_string(),
        customer: c.id,
        contact_id: None,
        deal_id: None,
        assignee_role: AssigneeRole::Owner,
        assignee_id: None,
        promotional: false,
        reason: format!("no contact for {days} days returns the customer to the pool on {deadline}"),
        message: format!("「{}」将于{deadline}退回公海，请及时联系 / returns to the pool on {deadline}", c.name),
        status: ReminderStatus::Pending,
        suppressed_reason: None,
    }
}
