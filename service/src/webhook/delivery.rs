//! Deliveries: each attempt claimed by one instance with a lease, its outcome recorded by
//! the claim's holder only, retried with exponential back-off, and logged.
use crate::access::Actor;
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::store::write;
use crate::kernel::{new_id, now};
use crate::webhook::{Settings, disable};
use chrono::{DateTime, Duration, Utc};
use entity::enums::DeliveryStatus;
use entity::{webhook, webhook_attempt, webhook_delivery, webhook_event};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set,
};
use std::collections::HashMap;
use uuid::Uuid;

/// The longest wait between two attempts.
const MAX_BACKOFF_HOURS: i64 = 6;

/// How long deliveries and their log are kept once settled.
pub const RETENTION_DAYS: i64 = 30;

/// A claimed attempt: what the worker needs to make it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: webhook_delivery::Model,
    pub event: webhook_event::Model,
    pub webhook: webhook::Model,
    /// The attempt's id.
    pub attempt: Uuid,
    /// The time of the claim: the back-off counts from it.
    pub at: DateTime<Utc>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The receiver answered with this status (2xx delivers, 410 disables, others retry).
    Answered { status: u16, latency_ms: i32 },
    /// No answer: connection refused, timeout, a refused address.
    Unreachable { error: String, latency_ms: i32 },
    /// Not sent: the account may no longer read the record (or it is gone).
    Skipped(String),
}

/// The delay before attempt `n + 1` after `n` failed attempts: `base · 2^(n-1)`, at most
/// six hours.
pub fn backoff(settings: &Settings, failed: i32) -> Duration {
    let base = Duration::from_std(settings.retry_base).unwrap_or(Duration::seconds(30));
    let factor = 1i32 << failed.clamp(1, 20).saturating_sub(1);
    std::cmp::min(base * factor, Duration::hours(MAX_BACKOFF_HOURS))
}

/// Attempts one webhook has in flight at most (across instances): a slow receiver holds
/// two of the worker's places, not all of them.
pub const PER_WEBHOOK: i64 = 2;

/// Attempts one account's webhooks have in flight at most: an account with 25 webhooks to
/// a slow receiver holds eight places, and every other account's events go past it.
pub const PER_ACCOUNT: i64 = 8;

/// Claims up to `limit` deliveries due by `at` of active webhooks, each for one instance
/// until its lease ends: one conditional UPDATE, as the care tick claims reminders, so two
/// instances never hold one attempt. A lease that ended without an outcome (its instance
/// stopped mid-attempt) makes the delivery claimable again: the receiver may then get the
/// same event twice, with the same event id.
///
/// The claim is fair (within an instance exactly, across instances nearly: two claims at
/// the same moment each see the other's attempts only once leased): it takes each webhook's oldest due delivery first, round-robin over
/// the webhooks (the second of each only after the first of all), and leaves out what
/// would take a webhook past [`PER_WEBHOOK`] or an account past [`PER_ACCOUNT`] attempts
/// in flight (leased ones counted).
///
/// # Errors
/// Database errors.
pub async fn claim(
    db: &DatabaseConnection,
    settings: &Settings,
    at: DateTime<Utc>,
    limit: u64,
) -> AppResult<Vec<Claimed>> {
    use webhook_delivery::Column as D;
    let due = || {
        Condition::all()
            .add(D::Status.eq(DeliveryStatus::Pending))
            .add(D::NextAttemptAt.lte(at))
            .add(Condition::any().add(D::LeaseUntil.is_null()).add(D::LeaseUntil.lt(at)))
    };
    let backend = db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let mut bind = |v: sea_orm::Value| {
        values.push(v);
        if backend == sea_orm::DatabaseBackend::Postgres { format!("${}", values.len()) } else { "?".to_string() }
    };
    let (pending, a1, a2, a3) = (
        bind(DeliveryStatus::Pending.to_string().into()),
        bind(at.into()),
        bind(DeliveryStatus::Pending.to_string().into()),
        bind(at.into()),
    );
    let a4 = bind(at.into());
    let (per_hook, per_account, n) =
        (bind(PER_WEBHOOK.into()), bind(PER_ACCOUNT.into()), bind(i64::try_from(limit).unwrap_or(i64::MAX).into()));
    let fair = format!(
        "WITH busy AS (\
           SELECT d.webhook_id, w.account_id FROM webhook_delivery d JOIN webhook w ON w.id = d.webhook_id \
           WHERE d.status = {pending} AND d.lease_until >= {a1}), \
         due AS (\
           SELECT d.id, d.next_attempt_at, w.account_id, \
             ROW_NUMBER() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) \
               + (SELECT COUNT(*) FROM busy b WHERE b.webhook_id = d.webhook_id) AS hook_rank \
           FROM webhook_delivery d JOIN webhook w ON w.id = d.webhook_id \
           WHERE w.active AND d.status = {a2_status} AND d.next_attempt_at <= {a3} \
             AND (d.lease_until IS NULL OR d.lease_until < {a4})), \
         fair AS (\
           SELECT id, hook_rank, next_attempt_at, \
             ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY hook_rank, next_attempt_at, id) \
               + (SELECT COUNT(*) FROM busy b WHERE b.account_id = due.account_id) AS account_rank \
           FROM due WHERE hook_rank <= {per_hook}) \
         SELECT id FROM fair WHERE account_rank <= {per_account} \
         ORDER BY hook_rank, next_attempt_at, id LIMIT {n}",
        a2_status = a2,
    );
    let chosen: Vec<Uuid> = db
        .query_all_raw(sea_orm::Statement::from_sql_and_values(backend, fair, values))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<Uuid>(0))
        .collect::<Result<_, _>>()?;
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    // SQLite: the claim's writes take their turn among the instance's writers (a plain
    // statement polling in the busy handler lost to them, and timed out, during an import).
    let _turn = crate::kernel::db::turns::take(db).await?;
    let token = new_id();
    let stamp = now();
    let mut q = Query::update();
    q.table(webhook_delivery::Entity)
        .value(D::LeaseUntil, at + settings.lease())
        .value(D::Claim, token)
        .value(D::Attempts, Expr::col(D::Attempts).add(1))
        .value(D::RoundAttempts, Expr::col(D::RoundAttempts).add(1))
        .value(D::UpdatedAt, stamp)
        .cond_where(due())
        .and_where(D::Id.is_in(chosen))
        .returning_col(D::Id);
    let rows = db.query_all_raw(db.get_database_backend().build(&q)).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get::<Uuid>("", "id")).collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries = webhook_delivery::Entity::find().filter(D::Id.is_in(ids)).all(db).await?;
    let events: HashMap<Uuid, webhook_event::Model> = webhook_event::Entity::find()
        .filter(webhook_event::Column::Id.is_in(deliveries.iter().map(|d| d.event_id).collect::<Vec<_>>()))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let hooks: HashMap<Uuid, webhook::Model> = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(deliveries.iter().map(|d| d.webhook_id).collect::<Vec<_>>()))
        .all(db)
        .await?
        .into_iter()
        .map(|h| (h.id, h))
        .collect();
    let mut out = Vec::new();
    for delivery in deliveries {
        // Both outlive their deliveries (a webhook's go with it, in one transaction).
        let (Some(event), Some(hook)) = (events.get(&delivery.event_id), hooks.get(&delivery.webhook_id)) else {
            continue;
        };
        out.push(Claimed { event: event.clone(), webhook: hook.clone(), attempt: new_id(), at, delivery });
    }
    if !out.is_empty() {
        webhook_attempt::Entity::insert_many(out.iter().map(|c| webhook_attempt::ActiveModel {
            id: Set(c.attempt),
            delivery_id: Set(c.delivery.id),
            started_at: Set(stamp),
            finished_at: Set(None),
            status_code: Set(None),
            error: Set(None),
            latency_ms: Set(None),
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(out)
}

/// Keeps the payload rendered for a delivery's first attempt (sealed): later attempts and
/// redeliveries send the same bytes. Only the claim's holder writes it.
///
/// # Errors
/// Database errors.
pub async fn keep_body(db: &DatabaseConnection, claimed: &Claimed, sealed: String) -> AppResult<()> {
    let _turn = crate::kernel::db::turns::take(db).await?;
    webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Body, Expr::value(sealed))
        .filter(webhook_delivery::Column::Id.eq(claimed.delivery.id))
        .filter(webhook_delivery::Column::Claim.eq(claimed.delivery.claim))
        .filter(webhook_delivery::Column::Body.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Records how an attempt ended, if this instance still holds its claim (an attempt that
/// outlived its lease changes nothing: another instance has the delivery now).
///
/// # Errors
/// Database errors.
pub async fn finish(
    db: &DatabaseConnection,
    settings: &Settings,
    claimed: &Claimed,
    outcome: &Outcome,
) -> AppResult<DeliveryStatus> {
    let at = now();
    let d = &claimed.delivery;
    write(db, async |txn| {
        use webhook_delivery::Column as D;
        let (status, code, error, latency) = match outcome {
            Outcome::Answered { status, latency_ms } => {
                let code = i32::from(*status);
                let s = match status {
                    200..=299 => DeliveryStatus::Delivered,
                    410 => DeliveryStatus::Failed,
                    _ if d.round_attempts >= settings.max_attempts => DeliveryStatus::Failed,
                    _ => DeliveryStatus::Pending,
                };
                let error = (!(200..=299).contains(status)).then(|| format!("the receiver answered {status}"));
                (s, Some(code), error, Some(*latency_ms))
            }
            Outcome::Unreachable { error, latency_ms } => {
                let s = if d.round_attempts >= settings.max_attempts {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Pending
                };
                (s, None, Some(error.clone()), Some(*latency_ms))
            }
            Outcome::Skipped(why) => (DeliveryStatus::Skipped, None, Some(why.clone()), None),
        };
        let mut q = webhook_delivery::Entity::update_many()
            .col_expr(D::Status, Expr::value(status.as_str()))
            .col_expr(D::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(D::Claim, Expr::value(Option::<Uuid>::None))
            .col_expr(D::LastStatusCode, Expr::value(code))
            .col_expr(D::LastError, Expr::value(error.clone()))
            .col_expr(D::LastLatencyMs, Expr::value(latency))
            .col_expr(D::UpdatedAt, Expr::value(at));
        match status {
            DeliveryStatus::Delivered => q = q.col_expr(D::DeliveredAt, Expr::value(at)),
            DeliveryStatus::Pending => {
                q = q.col_expr(D::NextAttemptAt, Expr::value(claimed.at + backoff(settings, d.round_attempts)));
            }
            DeliveryStatus::Failed | DeliveryStatus::Skipped => {}
        }
        let held = q.filter(D::Id.eq(d.id)).filter(D::Claim.eq(d.claim)).exec(txn).await?.rows_affected == 1;
        webhook_attempt::Entity::update_many()
            .col_expr(webhook_attempt::Column::FinishedAt, Expr::value(at))
            .col_expr(webhook_attempt::Column::StatusCode, Expr::value(code))
            .col_expr(webhook_attempt::Column::Error, Expr::value(error))
            .col_expr(webhook_attempt::Column::LatencyMs, Expr::value(latency))
            .filter(webhook_attempt::Column::Id.eq(claimed.attempt))
            .exec(txn)
            .await?;
        if !held {
            return Ok(status);
        }
        let this = Condition::all().add(webhook::Column::Id.eq(claimed.webhook.id));
        match outcome {
            Outcome::Answered { status: 200..=299, .. } => {
                webhook::Entity::update_many()
                    .col_expr(webhook::Column::ConsecutiveFailures, Expr::value(0))
                    .filter(this)
                    .exec(txn)
                    .await?;
            }
            Outcome::Answered { status: 410, .. } => {
                disable(txn, this, "the receiver answered 410 Gone").await?;
            }
            Outcome::Answered { .. } | Outcome::Unreachable { .. } => {
                // Counted in the row itself: concurrent attempts of one webhook each add one.
                let mut q = Query::update();
                q.table(webhook::Entity)
                    .value(webhook::Column::ConsecutiveFailures, Expr::col(webhook::Column::ConsecutiveFailures).add(1))
                    .and_where(webhook::Column::Id.eq(claimed.webhook.id))
                    .returning_col(webhook::Column::ConsecutiveFailures);
                let row = txn.query_one_raw(txn.get_database_backend().build(&q)).await?;
                let failures = match row {
                    Some(r) => r.try_get::<i32>("", "consecutive_failures")?,
                    None => 0,
                };
                if failures >= settings.disable_after {
                    disable(txn, this, &format!("{failures} failed attempts in a row")).await?;
                }
            }
            Outcome::Skipped(_) => {}
        }
        Ok(status)
    })
    .await
}

/// A webhook's deliveries, newest first, with the statuses asked for (all by default).
///
/// # Errors
/// FORBIDDEN, NOT_FOUND (the webhook), VALIDATION (paging).
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    webhook_id: Uuid,
    statuses: &[DeliveryStatus],
    args: &PageArgs,
) -> AppResult<Page<webhook_delivery::Model>> {
    crate::webhook::get(db, actor, webhook_id).await?;
    let mut q = webhook_delivery::Entity::find().filter(webhook_delivery::Column::WebhookId.eq(webhook_id));
    if !statuses.is_empty() {
        q = q.filter(webhook_delivery::Column::Status.is_in(statuses.to_vec()));
    }
    let keys = [SortKey::new("createdAt", webhook_delivery::Column::CreatedAt, true, |m: &webhook_delivery::Model| {
        SortValue::Time(m.created_at)
    })];
    paginate(db, q, &keys, webhook_delivery::Column::Id, |m| m.id, args).await
}

/// The attempts of these deliveries, newest first, at most `per` each, in one query.
///
/// # Errors
/// Database errors.
pub async fn attempts(
    db: &DatabaseConnection,
    delivery_ids: Vec<Uuid>,
    per: usize,
) -> AppResult<HashMap<Uuid, Vec<webhook_attempt::Model>>> {
    let rows = webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(delivery_ids))
        .order_by_desc(webhook_attempt::Column::StartedAt)
        .order_by_desc(webhook_attempt::Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<webhook_attempt::Model>> = HashMap::new();
    for r in rows {
        let list = out.entry(r.delivery_id).or_default();
        if list.len() < per {
            list.push(r);
        }
    }
    Ok(out)
}

/// Queues a delivery again, now, with a fresh round of attempts and the same payload and
/// event id.
///
/// # Errors
/// FORBIDDEN; NOT_FOUND (the delivery, or a webhook the caller does not manage);
/// CONFLICT (the delivery is still PENDING: queued or in flight); VALIDATION (the webhook
/// is disabled: enable it).
pub async fn redeliver(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<webhook_delivery::Model> {
    let d = webhook_delivery::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("webhook delivery"))?;
    let hook = crate::webhook::get(db, actor, d.webhook_id).await.map_err(|e| match e {
        AppError::NotFound(_) => AppError::NotFound("webhook delivery"),
        e => e,
    })?;
    if !hook.active {
        return Err(AppError::invalid("deliveryId", "the webhook is disabled: enable it first"));
    }
    let at = now();
    write(db, async |txn| {
        use webhook_delivery::Column as D;
        let done = webhook_delivery::Entity::update_many()
            .col_expr(D::Status, Expr::value(DeliveryStatus::Pending.as_str()))
            .col_expr(D::RoundAttempts, Expr::value(0))
            .col_expr(D::NextAttemptAt, Expr::value(at))
            .col_expr(D::UpdatedAt, Expr::value(at))
            // A late outcome of an earlier claim must not settle the new round.
            .col_expr(D::Claim, Expr::value(Option::<Uuid>::None))
            .filter(D::Id.eq(id))
            .filter(D::Status.ne(DeliveryStatus::Pending))
            .filter(Condition::any().add(D::LeaseUntil.is_null()).add(D::LeaseUntil.lt(at)))
            .exec(txn)
            .await?;
        if done.rows_affected == 0 {
            return Err(AppError::Conflict(
                "this delivery is already queued or in flight; redeliver it once it is settled".into(),
            ));
        }
        let after =
            webhook_delivery::Entity::find_by_id(id).one(txn).await?.ok_or(AppError::NotFound("webhook delivery"))?;
        change::record(
            txn,
            Some(actor.id()),
            Verb::Redeliver,
            Subject::WebhookDelivery,
            id,
            None,
            Some(&serde_json::json!({
                "webhookId": after.webhook_id, "eventId": after.event_id, "status": d.status,
            })),
        )
        .await?;
        Ok(after)
    })
    .await
}

/// Deletes a webhook's deliveries and their log (the webhook is being deleted).
pub(crate) async fn delete_of(db: &impl ConnectionTrait, webhook_id: Uuid) -> AppResult<()> {
    let of = Query::select()
        .column(webhook_delivery::Column::Id)
        .from(webhook_delivery::Entity)
        .and_where(webhook_delivery::Column::WebhookId.eq(webhook_id))
        .to_owned();
    webhook_attempt::Entity::delete_many().filter(webhook_attempt::Column::DeliveryId.in_subquery(of)).exec(db).await?;
    webhook_delivery::Entity::delete_many().filter(webhook_delivery::Column::WebhookId.eq(webhook_id)).exec(db).await?;
    Ok(())
}

/// Forgets the payloads of the deliveries of `events` and skips those not yet made.
pub(crate) async fn forget(db: &impl ConnectionTrait, events: SelectStatement) -> AppResult<()> {
    use webhook_delivery::Column as D;
    webhook_delivery::Entity::update_many()
        .col_expr(D::Body, Expr::value(Option::<String>::None))
        // An attempt in flight loses its claim: it can neither keep the payload it
        // rendered before the erasure nor record an outcome over the skip.
        .col_expr(D::Claim, Expr::value(Option::<Uuid>::None))
        .col_expr(D::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .col_expr(
            D::Status,
            Expr::case(D::Status.eq(DeliveryStatus::Pending), DeliveryStatus::Skipped.as_str())
                .finally(Expr::col(D::Status))
                .into(),
        )
        .col_expr(
            D::LastError,
            Expr::case(D::Status.eq(DeliveryStatus::Pending), "the customer's personal data was erased")
                .finally(Expr::col(D::LastError))
                .into(),
        )
        .filter(D::EventId.in_subquery(events))
        .exec(db)
        .await?;
    Ok(())
}

/// Deliveries waiting for an attempt (or in flight), on every instance: the queue a
/// metrics scrape reports.
///
/// # Errors
/// Database errors.
pub async fn queue_depth(db: &DatabaseConnection) -> AppResult<u64> {
    Ok(webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .count(db)
        .await?)
}

/// Removes settled deliveries (with their log) and dispatched events older than the
/// retention; pending deliveries stay. Returns the rows removed.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<u64> {
    let before = at - Duration::days(RETENTION_DAYS);
    let old = Query::select()
        .column(webhook_delivery::Column::Id)
        .from(webhook_delivery::Entity)
        .and_where(webhook_delivery::Column::CreatedAt.lt(before))
        .and_where(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending))
        .to_owned();
    let attempts = webhook_attempt::Entity::delete_many()
        .filter(webhook_attempt::Column::DeliveryId.in_subquery(old))
        .exec(db)
        .await?;
    let deliveries = webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::CreatedAt.lt(before))
        .filter(webhook_delivery::Column::Status.ne(DeliveryStatus::Pending))
        .exec(db)
        .await?;
    let kept = Query::select().column(webhook_delivery::Column::EventId).from(webhook_delivery::Entity).to_owned();
    let events = webhook_event::Entity::delete_many()
        .filter(webhook_event::Column::DispatchedAt.lt(before))
        .filter(webhook_event::Column::Id.not_in_subquery(kept))
        .exec(db)
        .await?;
    Ok(attempts.rows_affected + deliveries.rows_affected + events.rows_affected)
}
