//! The full pass: every live customer regraded in short batches by a background task,
//! with its run (progress, status) recorded; on demand, after a policy change, and daily.
use crate::access::Actor;
use crate::classification::bulk::{BulkStore, Change, Postgres, Sqlite, diff, write_changes};
use crate::classification::{Reason, cutoffs_of, facts, policy, rates};
use crate::error::{AppError, AppResult};
use crate::kernel::change::{Subject, Verb};
use crate::kernel::store::write;
use crate::kernel::{new_id, now};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::RunStatus;
use entity::enums::{Action, Resource};
use entity::{classification_run, customer};
use sea_orm::DatabaseBackend;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};
use tracing::Instrument;
use uuid::Uuid;

/// Starts a full pass in the background and returns its run (progress is on the row).
///
/// # Errors
/// CONFLICT when a pass is already running.
pub async fn start_full_pass(
    db: &DatabaseConnection,
    reason: Reason,
    actor: Option<Uuid>,
) -> AppResult<classification_run::Model> {
    let run = create_run(db, new_id(), reason, actor).await?;
    let db = db.clone();
    let run_id = run.id;
    tokio::spawn(async move {
        if let Err(e) = run_full_pass(&db, run_id, reason, actor, now().date_naive()).await {
            tracing::error!(error = %e, run = %run_id, "reclassification failed");
        }
    });
    Ok(run)
}

/// Registers a run; refuses while another is RUNNING (a run older than six hours is
/// taken for dead: its instance stopped).
pub async fn create_run(
    db: &DatabaseConnection,
    id: Uuid,
    reason: Reason,
    started_by: Option<Uuid>,
) -> AppResult<classification_run::Model> {
    write(db, async |txn| {
        let busy = classification_run::Entity::find()
            .filter(classification_run::Column::Status.eq(RunStatus::Running))
            .filter(classification_run::Column::StartedAt.gt(now() - Duration::hours(6)))
            .one(txn)
            .await?;
        if let Some(busy) = busy {
            return Err(AppError::Conflict(format!("a reclassification is already running ({})", busy.id)));
        }
        let run = classification_run::ActiveModel {
            id: Set(id),
            reason: Set(reason),
            status: Set(RunStatus::Running),
            total: Set(0),
            processed: Set(0),
            changed: Set(0),
            started_at: Set(now()),
            finished_at: Set(None),
            error: Set(None),
            state: Set(None),
            started_by: Set(started_by),
        }
        .insert(txn)
        .await?;
        if let Some(by) = started_by {
            crate::kernel::change::record(txn, Some(by), Verb::Start, Subject::ClassificationRun, id, None, Some(&run))
                .await?;
        }
        Ok(run)
    })
    .await
}

/// The full pass. One aggregate over all deals, line items and complaints gives every
/// customer's facts and the RFM cut-offs; then every live customer is graded in batches,
/// each in its own short write transaction that locks its customers first. A customer
/// whose deals or feedback changed after the pass began is re-aggregated inside that
/// transaction, so a concurrent deal write is never overwritten with older numbers.
pub async fn run_full_pass(
    db: &DatabaseConnection,
    run_id: Uuid,
    reason: Reason,
    actor: Option<Uuid>,
    as_of: NaiveDate,
) -> AppResult<()> {
    let result = match db.get_database_backend() {
        DatabaseBackend::Postgres => full_pass::<Postgres>(db, run_id, reason, actor, as_of).await,
        _ => full_pass::<Sqlite>(db, run_id, reason, actor, as_of).await,
    };
    if let Err(e) = &result {
        // A run left RUNNING would refuse every other pass for hours: record the failure,
        // whoever started the pass (a request, a policy change, the daily scheduler).
        let marked = classification_run::Entity::update_many()
            .col_expr(classification_run::Column::Status, Expr::value(RunStatus::Failed.as_str()))
            .col_expr(classification_run::Column::Error, Expr::value(e.to_string()))
            .col_expr(classification_run::Column::FinishedAt, Expr::value(now()))
            .filter(classification_run::Column::Id.eq(run_id))
            .exec(db)
            .await;
        if let Err(mark) = marked {
            tracing::error!(error = %mark, run = %run_id, "cannot mark the run as failed");
        }
    }
    result
}

/// Where a pass spends its time, logged when it ends (the benchmark's breakdown).
#[derive(Debug, Default)]
struct Phases {
    aggregate: StdDuration,
    read: StdDuration,
    dirty: StdDuration,
    grading: StdDuration,
    update: StdDuration,
    history: StdDuration,
    commit: StdDuration,
}

/// Runs `work`, adding its time to `slot`.
async fn timed<T>(slot: &mut StdDuration, work: impl Future<Output = T>) -> T {
    let clock = Instant::now();
    let out = work.await;
    *slot += clock.elapsed();
    out
}

async fn full_pass<B: BulkStore>(
    db: &DatabaseConnection,
    run_id: Uuid,
    reason: Reason,
    actor: Option<Uuid>,
    as_of: NaiveDate,
) -> AppResult<()> {
    let (policy, _) = policy(db).await?;
    let rates = rates(db).await?;
    let pass_start = now();
    let mut spent = Phases::default();
    let mut all = timed(&mut spent.aggregate, facts(db, &policy, &rates, None, as_of))
        .instrument(tracing::info_span!("aggregate"))
        .await?;
    let cutoffs = cutoffs_of(&all, &policy, as_of);
    let catalogue = crate::category::Catalogue::load(db).await?;
    let total = customer::Entity::find().filter(customer::Column::DeletedAt.is_null()).count(db).await? as i64;
    set_progress(db, run_id, Some(total), 0, 0).await?;
    let (mut processed, mut changed) = (0i64, 0i64);
    let mut after: Option<Uuid> = None;
    loop {
        let started = Instant::now();
        let mut before_commit = StdDuration::ZERO;
        let step = write(db, async |txn| {
            let batch = timed(&mut spent.read, B::read_batch(txn, after, B::BATCH)).await?;
            let Some(last) = batch.last() else { return Ok(None) };
            let ids: Vec<Uuid> = batch.iter().map(|c| c.id).collect();
            let (dirty, mut fresh) = timed(&mut spent.dirty, async {
                let dirty = changed_since(txn, &ids, pass_start).await?;
                let fresh = if dirty.is_empty() {
                    HashMap::new()
                } else {
                    let dirty: Vec<Uuid> = dirty.iter().copied().collect();
                    facts(txn, &policy, &rates, Some(&dirty), as_of).await?
                };
                Ok::<_, AppError>((dirty, fresh))
            })
            .await?;
            let clock = Instant::now();
            let at = now();
            let changes: Vec<Change> = batch
                .iter()
                .filter_map(|c| {
                    let f =
                        if dirty.contains(&c.id) { fresh.remove(&c.id) } else { all.remove(&c.id) }.unwrap_or_default();
                    diff(c, &f, &policy, &cutoffs, as_of, &catalogue)
                })
                .collect();
            let counts = (last.id, batch.len() as i64, changes.len() as i64);
            spent.grading += clock.elapsed();
            let clock = Instant::now();
            let history = write_changes::<B>(txn, changes, reason, actor, at).await?;
            spent.update += clock.elapsed() - history;
            spent.history += history;
            before_commit = started.elapsed();
            Ok(Some(counts))
        })
        .instrument(tracing::debug_span!("batch", after = ?after))
        .await?;
        spent.commit += started.elapsed().saturating_sub(before_commit);
        let Some((last, batch_len, batch_changed)) = step else { break };
        after = Some(last);
        processed += batch_len;
        changed += batch_changed;
        if processed % (B::BATCH as i64 * 10) == 0 {
            set_progress(db, run_id, None, processed, changed).await?;
        }
    }
    set_progress(db, run_id, None, processed, changed).await?;
    classification_run::Entity::update_many()
        .col_expr(classification_run::Column::Status, Expr::value(RunStatus::Done.as_str()))
        .col_expr(classification_run::Column::FinishedAt, Expr::value(now()))
        .col_expr(classification_run::Column::State, Expr::value(serde_json::json!({ "rfm": cutoffs, "asOf": as_of })))
        .filter(classification_run::Column::Id.eq(run_id))
        .exec(db)
        .await?;
    let secs = |d: StdDuration| d.as_secs_f64();
    tracing::info!(
        run = %run_id,
        processed,
        changed,
        aggregate = secs(spent.aggregate),
        read = secs(spent.read),
        dirty = secs(spent.dirty),
        grading = secs(spent.grading),
        update = secs(spent.update),
        history = secs(spent.history),
        commit = secs(spent.commit),
        "reclassification done (seconds per phase)"
    );
    Ok(())
}

/// Customers of the batch whose deals or feedback were written since `since`. The
/// `updated_at` indexes make this cost what was written meanwhile (usually nothing).
async fn changed_since(
    txn: &impl ConnectionTrait,
    ids: &[Uuid],
    since: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // Only the time condition, so both databases walk the `updated_at` index; the batch's
    // customers are picked out here.
    use entity::{deal, feedback};
    use sea_orm::sea_query::{Query, UnionType};
    let mut q = Query::select();
    q.column(deal::Column::CustomerId).from(deal::Entity).and_where(deal::Column::UpdatedAt.gte(since)).union(
        UnionType::Distinct,
        Query::select()
            .column(feedback::Column::CustomerId)
            .from(feedback::Entity)
            .and_where(feedback::Column::UpdatedAt.gte(since))
            .to_owned(),
    );
    let rows = txn.query_all_raw(txn.get_database_backend().build(&q)).await?;
    let batch: std::collections::HashSet<&Uuid> = ids.iter().collect();
    let mut dirty = std::collections::HashSet::new();
    for row in rows {
        let id: Uuid = row.try_get("", "customer_id")?;
        if batch.contains(&id) {
            dirty.insert(id);
        }
    }
    Ok(dirty)
}

async fn set_progress(
    db: &DatabaseConnection,
    run_id: Uuid,
    total: Option<i64>,
    processed: i64,
    changed: i64,
) -> AppResult<()> {
    let mut update = classification_run::Entity::update_many()
        .col_expr(classification_run::Column::Processed, Expr::value(processed))
        .col_expr(classification_run::Column::Changed, Expr::value(changed));
    if let Some(t) = total {
        update = update.col_expr(classification_run::Column::Total, Expr::value(t));
    }
    update.filter(classification_run::Column::Id.eq(run_id)).exec(db).await?;
    Ok(())
}

/// Starts a full pass on request (admins).
///
/// # Errors
/// FORBIDDEN; CONFLICT while a pass runs.
pub async fn reclassify_all(db: &DatabaseConnection, actor: &Actor) -> AppResult<classification_run::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    start_full_pass(db, Reason::Reclassify, Some(actor.id())).await
}

/// Recent runs, newest first (admins).
///
/// # Errors
/// FORBIDDEN; VALIDATION for a `limit` outside 1 to 100.
pub async fn runs(db: &DatabaseConnection, actor: &Actor, limit: i32) -> AppResult<Vec<classification_run::Model>> {
    actor.require_all(Resource::Settings, Action::Read)?;
    if !(1..=100).contains(&limit) {
        return Err(AppError::invalid("first", "must be between 1 and 100"));
    }
    Ok(classification_run::Entity::find()
        .order_by_desc(classification_run::Column::StartedAt)
        .limit(limit as u64)
        .all(db)
        .await?)
}

/// Starts the daily pass once per day across all instances: the run id is derived from
/// the date, so a second instance's insert collides on the primary key.
pub async fn daily_pass(db: &DatabaseConnection, today: NaiveDate) -> AppResult<bool> {
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("crm-daily-reclassification-{today}").as_bytes());
    if classification_run::Entity::find_by_id(id).one(db).await?.is_some() {
        return Ok(false);
    }
    match create_run(db, id, Reason::TimePassed, None).await {
        Ok(_) => {}
        // Another pass is running, or another instance registered today's run first
        // (its id is derived from the date: the primary key decides).
        Err(AppError::Conflict(_) | AppError::Duplicate { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    run_full_pass(db, id, Reason::TimePassed, None, today).await?;
    Ok(true)
}
