//! Live customers counted by where they sit (PostgreSQL): `customer_tally`, kept by the
//! triggers of migration 28, answers a customer list's `totalCount` when the list has no
//! filter: the sum of the rows at the (department, owner) pairs the caller's row scope
//! reaches, [`Reach::condition`] rendered over the tally's two columns (the same rule as
//! over the customers, so the two counts cannot differ). A manager's count of a
//! four-department subtree read 10,068 index entries per request; the tally sums a few
//! hundred rows (BENCHMARKS.md, issue 29).
//!
//! The triggers append a row per change; [`fold`] replaces each pair's rows by their sum,
//! once when an instance starts and then every [`FOLD_EVERY`], from any number of
//! instances at once. SQLite counts the rows (`docs/architecture.md`).
use crate::access::Reach;
use crate::error::AppResult;
use entity::customer_tally::{self, Column};
use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityName};
use std::time::Duration;

/// How often an instance folds the appended changes.
pub const FOLD_EVERY: Duration = Duration::from_secs(10);

/// `SELECT` of the live customers `reach` reaches, as one `bigint` column, on `backend`:
/// None where there is no tally (SQLite).
pub fn count(backend: DatabaseBackend, reach: &Reach) -> Option<SelectStatement> {
    (backend == DatabaseBackend::Postgres).then(|| {
        Query::select()
            .expr(Expr::cust("coalesce(sum(n), 0)::bigint"))
            .from(customer_tally::Entity.table_ref())
            .cond_where(reach.condition(Column::OwnerId, Column::DepartmentId))
            .to_owned()
    })
}

/// Runs a [`count`].
///
/// # Errors
/// Database errors.
pub async fn total(db: &impl ConnectionTrait, count: &SelectStatement) -> AppResult<u64> {
    let row = db.query_one_raw(db.get_database_backend().build(count)).await?;
    let n = match row {
        Some(row) => row.try_get_by_index::<i64>(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One statement (one snapshot): every pair with appended changes loses its rows, and
/// gets one folded row of their sum (none when it is 0); a reader sees before or after.
/// One fold at a time over all instances (a transaction-scoped advisory lock; a fold that
/// does not get it does nothing): two folds deleting the same rows in different orders
/// could deadlock.
const FOLD: &str = "WITH turn AS (SELECT pg_try_advisory_xact_lock(7262554943184539905) AS mine), \
     moved AS (SELECT DISTINCT department_id, owner_id FROM customer_tally \
               WHERE NOT folded AND (SELECT mine FROM turn)), \
     gone AS (DELETE FROM customer_tally t USING moved m \
              WHERE t.department_id = m.department_id AND t.owner_id IS NOT DISTINCT FROM m.owner_id \
              RETURNING t.department_id, t.owner_id, t.n) \
     INSERT INTO customer_tally (department_id, owner_id, n, folded) \
     SELECT department_id, owner_id, sum(n), true FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0";

/// Folds the appended changes (nothing on SQLite); the rows written. Runs on the pool
/// underneath `db`, not through it: a fold is no request's statement (tests count those).
///
/// # Errors
/// Database errors.
pub async fn fold(db: &DatabaseConnection) -> AppResult<u64> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(0);
    }
    let done = sea_orm::sqlx::query(FOLD)
        .execute(db.get_postgres_connection_pool())
        .await
        .map_err(|e| sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into())))?;
    Ok(done.rows_affected())
}

/// Folds now, then every [`FOLD_EVERY`] in the background (PostgreSQL only). A failed
/// fold is logged, never a reason to refuse to start: the counts are right unfolded,
/// only slower to sum.
pub async fn keep_folded(db: &DatabaseConnection) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    if let Err(e) = fold(db).await {
        tracing::warn!(error = %e, "customer tally not folded at start");
    }
    let db = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = fold(&db).await {
                tracing::debug!(error = %e, "customer tally not folded");
            }
        }
    });
}
