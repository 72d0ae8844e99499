//! The pool sweep (`docs/access.md`, "The public pool"): once a day, with the day's rules,
//! customers nobody has contacted for the policy's days return to their department's
//! pool, audited (`pool_return`, no actor), each after a warning to its owner.
//!
//! A customer's clock runs from its last contact logged by a person (gifts and events are
//! no contact), or from when its owner got it if that is later (a claim, an assignment, a
//! restore start afresh). Customers owned before `owned_since` was kept get it stamped the
//! first time the sweep sees them. Time is read at the day's due hour.
//!
//! - A return needs a warning issued for the current clock (after the last contact and the
//!   owner's taking it) whose day has come; a customer past its time without one (a
//!   restore, a policy change, a paused scheduler) is warned now and returns `warnDays`
//!   later. Owners that are API keys' accounts are not warned.
//! - Each return runs in a transaction of its own on the locked row and re-checks that
//!   nothing changed (version) and that no contact was logged meanwhile, so a contact
//!   logged while the sweep runs keeps the customer.
//! - Warnings carry no name (the customer may be erased meanwhile); a contact, a claim, an
//!   assignment or the return itself closes them (`customer::close_pool_warnings`).
use crate::care::facts::row_time;
use crate::care::rules::{Candidate, Context, write_candidates};
use crate::error::AppResult;
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::now;
use crate::kernel::store::write;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{AssigneeRole, InteractionKind, ReminderRule, ReminderStatus};
use entity::{customer, interaction, reminder, user};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

const BATCH: u64 = 500;

/// Interactions that count as a contact: logged by a person, live, not a gift or an event.
fn contacts() -> SelectStatement {
    use interaction::{Column as I, Entity as Interaction};
    let mut q = Query::select();
    q.from(Interaction)
        .inner_join(user::Entity, Expr::col((user::Entity, user::Column::Id)).equals((Interaction, I::UserId)))
        .and_where(Expr::col((Interaction, I::DeletedAt)).is_null())
        .and_where(Expr::col((user::Entity, user::Column::ServiceAccount)).eq(false))
        .and_where(
            Expr::col((Interaction, I::Kind))
                .is_not_in([InteractionKind::Gift.as_str(), InteractionKind::Event.as_str()]),
        );
    q
}

/// Sweeps the owned live customers for `day`; returns the warnings created.
///
/// # Errors
/// Database errors.
pub(super) async fn sweep(db: &DatabaseConnection, cx: &Context, day: NaiveDate) -> AppResult<u64> {
    let rule = &cx.policy.pool_return;
    if !rule.enabled {
        return Ok(0);
    }
    let moment = cx.due_at;
    let services: HashSet<Uuid> = cx.users.values().filter(|u| u.service_account).map(|u| u.id).collect();
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
        stamp(db, batch.iter().filter(|c| c.owned_since.is_none()).map(|c| c.id)).await?;
        let contacted = last_contacts(db, &batch).await?;
        let warnings_of = warnings(db, &batch).await?;
        let mut warnings = Vec::new();
        for c in &batch {
            // Just stamped: its clock starts today.
            let Some(since) = c.owned_since else { continue };
            let base = contacted.get(&c.id).copied().map_or(since, |t| std::cmp::max(t, since));
            let days = Duration::days(i64::from(rule.days_for(&c.category, c.tier)));
            let lead = Duration::days(i64::from(rule.warn_days));
            let silent = rule.warn_days == 0 || c.owner_id.is_some_and(|o| services.contains(&o));
            // A warning of this clock: issued after the clock started, its day come.
            let warned = warnings_of.get(&c.id).is_some_and(|w| w.iter().any(|(at, on)| *at > base && *on <= day));
            if base + days <= moment && (silent || warned) {
                returned += give_back(db, c, base).await?;
            } else if !silent
                && base + days - lead <= moment
                && !warnings_of.get(&c.id).is_some_and(|w| w.iter().any(|(at, _)| *at > base))
            {
                // Due within the lead, or past due without a warning: warned now, and
                // back in the pool no sooner than `warnDays` from today (not from a past
                // day a catch-up evaluates).
                let on = std::cmp::max((base + days).date_naive(), std::cmp::max(day, now().date_naive()) + lead);
                warnings.push(warning(c, on));
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

/// The last contact of each of `customers`.
async fn last_contacts(
    db: &impl ConnectionTrait,
    customers: &[customer::Model],
) -> AppResult<HashMap<Uuid, DateTime<Utc>>> {
    use interaction::{Column as I, Entity as Interaction};
    let mut q = contacts();
    q.expr_as(Expr::col((Interaction, I::CustomerId)), Alias::new("customer_id"))
        .expr_as(Func::max(Expr::col((Interaction, I::OccurredAt))), Alias::new("last"))
        .and_where(Expr::col((Interaction, I::CustomerId)).is_in(customers.iter().map(|c| c.id)))
        .group_by_col((Interaction, I::CustomerId));
    let mut out = HashMap::new();
    for row in db.query_all_raw(db.get_database_backend().build(&q)).await? {
        out.insert(row.try_get::<Uuid>("", "customer_id")?, row_time(&row, "last")?);
    }
    Ok(out)
}

/// The pool warnings of `customers`: (created, the day they name).
async fn warnings(
    db: &impl ConnectionTrait,
    customers: &[customer::Model],
) -> AppResult<HashMap<Uuid, Vec<(DateTime<Utc>, NaiveDate)>>> {
    let rows = reminder::Entity::find()
        .filter(reminder::Column::Rule.eq(ReminderRule::PoolReturn))
        .filter(reminder::Column::TargetId.is_in(customers.iter().map(|c| c.id)))
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<_>> = HashMap::new();
    for r in rows {
        if let Ok(on) = NaiveDate::parse_from_str(&r.occasion, "%Y-%m-%d") {
            out.entry(r.target_id).or_default().push((r.created_at, on));
        }
    }
    Ok(out)
}

/// Starts the clocks of customers owned before `owned_since` was kept (one statement).
async fn stamp(db: &impl ConnectionTrait, ids: impl Iterator<Item = Uuid>) -> AppResult<()> {
    let ids: Vec<Uuid> = ids.collect();
    if ids.is_empty() {
        return Ok(());
    }
    customer::Entity::update_many()
        .col_expr(customer::Column::OwnedSince, Expr::value(now()))
        .filter(customer::Column::Id.is_in(ids))
        .filter(customer::Column::OwnedSince.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Returns a customer to its department's pool, on its locked row, unless it changed since
/// it was read or was contacted after `base` (the next sweep looks again). Audited without
/// an actor; its pool warnings are closed.
async fn give_back(db: &DatabaseConnection, c: &customer::Model, base: DateTime<Utc>) -> AppResult<u64> {
    write(db, async |txn| {
        let Some(current) = customer::Entity::find_by_id(c.id)
            .filter(customer::Column::Version.eq(c.version))
            .filter(customer::Column::DeletedAt.is_null())
            .lock_exclusive()
            .one(txn)
            .await?
        else {
            return Ok(0);
        };
        let mut since = contacts();
        since
            .column((interaction::Entity, interaction::Column::Id))
            .and_where(Expr::col((interaction::Entity, interaction::Column::CustomerId)).eq(c.id))
            .and_where(Expr::col((interaction::Entity, interaction::Column::OccurredAt)).gt(base));
        if !txn.query_all_raw(txn.get_database_backend().build(&since)).await?.is_empty() {
            return Ok(0);
        }
        let at = now();
        customer::Entity::update_many()
            .col_expr(customer::Column::OwnerId, Expr::value(Option::<Uuid>::None))
            .col_expr(customer::Column::OwnedSince, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
            .col_expr(customer::Column::UpdatedAt, Expr::value(at))
            .filter(customer::Column::Id.eq(c.id))
            .exec(txn)
            .await?;
        let after = customer::Model {
            owner_id: None,
            owned_since: None,
            version: current.version + 1,
            updated_at: at,
            ..current.clone()
        };
        change::record(txn, None, Verb::PoolReturn, Subject::Customer, c.id, Some(&current), Some(&after)).await?;
        crate::customer::close_pool_warnings(txn, c.id, "returned to the pool").await?;
        Ok(1)
    })
    .await
}

/// The owner's warning: the customer returns to the pool on `on` (due at the day's hour,
/// as every reminder the day's evaluation writes). No name: it may be erased meanwhile.
fn warning(c: &customer::Model, on: NaiveDate) -> Candidate {
    Candidate {
        rule: ReminderRule::PoolReturn,
        target_id: c.id,
        occasion: on.to_string(),
        customer: c.id,
        contact_id: None,
        deal_id: None,
        assignee_role: AssigneeRole::Owner,
        assignee_id: None,
        promotional: false,
        reason: format!("no contact logged: the customer returns to the pool on {on}"),
        message: format!("客户将于{on}退回公海，请及时联系 / returns to the pool on {on} unless contacted"),
        status: ReminderStatus::Pending,
        suppressed_reason: None,
    }
}
