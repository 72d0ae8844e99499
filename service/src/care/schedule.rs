//! The scheduler's tick: each day's rules evaluated once across instances, and due
//! reminders claimed (one instance each) and announced as `reminderDue`.
use crate::access::live::Events;
use crate::care::rules::evaluate;
use crate::error::AppResult;
use crate::kernel::events::Signal;
use crate::kernel::now;
use crate::kernel::store::write;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{ReminderStatus, WebhookEventKind};
use entity::{care_run, reminder};
use sea_orm::sea_query::{Expr, OnConflict, Order, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Days whose rules this instance evaluated.
    pub evaluated: Vec<NaiveDate>,
    pub created: u64,
    /// Reminders that fell due and were announced by this instance.
    pub delivered: Vec<Uuid>,
}

/// Days evaluated in arrears after a pause (the scheduler was down).
const CATCH_UP_DAYS: i64 = 3;

/// One tick at `at`: evaluates the rules of each day up to `at` not yet evaluated (once
/// per day across instances: the day's `care_run` row), then claims and returns the
/// reminders due by `at`. The caller raises `reminderDue` for them.
///
/// # Errors
/// Database errors.
pub async fn tick(db: &DatabaseConnection, events: &Events, at: DateTime<Utc>) -> AppResult<Tick> {
    let mut out = Tick::default();
    let today = at.date_naive();
    for back in (0..CATCH_UP_DAYS).rev() {
        let day = today - Duration::days(back);
        if claim_day(db, day, at).await? {
            let created = evaluate(db, day).await?;
            care_run::Entity::update_many()
                .col_expr(care_run::Column::FinishedAt, Expr::value(now()))
                .col_expr(care_run::Column::Created, Expr::value(i32::try_from(created).unwrap_or(i32::MAX)))
                .filter(care_run::Column::Day.eq(day))
                .exec(db)
                .await?;
            out.evaluated.push(day);
            out.created += created;
        }
    }
    out.delivered = deliver(db, at).await?;
    for id in &out.delivered {
        events.publish(Signal::ReminderDue(*id)).await;
    }
    Ok(out)
}

/// Takes the evaluation of `day`: the first instance to insert its row; a run that has
/// not finished within 30 minutes is taken over (its instance stopped).
async fn claim_day(db: &DatabaseConnection, day: NaiveDate, at: DateTime<Utc>) -> AppResult<bool> {
    let mut q = Query::insert();
    q.into_table(care_run::Entity)
        .columns([care_run::Column::Day, care_run::Column::StartedAt, care_run::Column::Created])
        .values_panic([Expr::val(day), Expr::val(at), Expr::val(0)])
        .on_conflict(OnConflict::column(care_run::Column::Day).do_nothing().to_owned());
    let inserted = db.execute(&q).await?.rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let stale = at - Duration::minutes(30);
    let taken = care_run::Entity::update_many()
        .col_expr(care_run::Column::StartedAt, Expr::value(at))
        .filter(care_run::Column::Day.eq(day))
        .filter(care_run::Column::FinishedAt.is_null())
        .filter(care_run::Column::StartedAt.lt(stale))
        .exec(db)
        .await?
        .rows_affected;
    Ok(taken == 1)
}

/// Claims the reminders due by `at` that were not announced yet (a snoozed one comes
/// back as PENDING), a bounded batch at a time; each is claimed by one instance only.
pub async fn deliver(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
    let mut out = Vec::new();
    loop {
        use reminder::Column as R;
        let due = || {
            Condition::all()
                .add(R::NotifiedAt.is_null())
                .add(R::DueAt.lte(at))
                .add(R::Status.is_in([ReminderStatus::Pending, ReminderStatus::Snoozed]))
        };
        let mut batch = Query::select();
        batch.column(R::Id).from(reminder::Entity).cond_where(due()).order_by(R::DueAt, Order::Asc).limit(1000);
        let stamp = now();
        // The condition is repeated on the UPDATE itself: a row another instance claimed
        // between the subquery and the update no longer matches, so each is claimed once.
        let mut q = Query::update();
        q.table(reminder::Entity)
            .value(R::NotifiedAt, stamp)
            .value(R::Status, ReminderStatus::Pending.as_str())
            .value(R::UpdatedAt, stamp)
            .cond_where(due())
            .and_where(R::Id.in_subquery(batch))
            .returning(Query::returning().columns([R::Id, R::CustomerId]));
        // The claim and the webhooks' `reminder.due` events commit together.
        let claimed = write(db, async |txn| {
            let rows = txn.query_all_raw(txn.get_database_backend().build(&q)).await?;
            let mut ids = Vec::with_capacity(rows.len());
            for r in rows {
                let (id, customer_id) = (r.try_get::<Uuid>("", "id")?, r.try_get::<Uuid>("", "customer_id")?);
                crate::kernel::change::raise(txn, WebhookEventKind::ReminderDue, id, customer_id).await?;
                ids.push(id);
            }
            Ok(ids)
        })
        .await?;
        let n = claimed.len();
        out.extend(claimed);
        if n < 1000 {
            return Ok(out);
        }
    }
}
