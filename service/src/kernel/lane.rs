//! A lane of PostgreSQL connections for the compiled read path (`service/src/compiled.rs`):
//! one round trip per statement.
//!
//! sqlx's pool tests every connection it gets back with a ping (a `Sync` message and the
//! wait for the server's answer) before another task may take it: a second round trip for
//! every statement, which on the by-id lookup was a sixth of the server's samples and as
//! many wake-ups of PostgreSQL's backend as the statement itself (BENCHMARKS.md, issue
//! 29). That ping is how sqlx finds a connection left mid-answer by a dropped future;
//! here a connection goes back to the lane at once when its statement ran to the end (the
//! answer, or an error the server sent that did not end the session), is drained by a
//! task of its own when its request went away mid-answer (holding its permit until the
//! statement is over), and is closed after any other error. A connection idle for a
//! minute is pinged before use, as the main pool does (`db::connect_counted`). Its
//! sessions plan each statement once (`plan_cache_mode = force_generic_plan`).
//!
//! Hand-written because sqlx (0.9) has no setting that skips the ping on release; the
//! statements themselves are sqlx's (prepared and kept per connection by their text).
use crate::error::{AppError, AppResult};
use crate::kernel::db::StatementCounter;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection};
use sea_orm::sqlx::{self, ConnectOptions, Connection, Row};
use sea_query_sqlx::SqlxValues;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may sit idle before it is pinged on its next use.
const IDLE: Duration = Duration::from_secs(60);
/// The longest wait for a connection of the lane.
const WAIT: Duration = Duration::from_secs(10);

/// The lane (cheap to clone: one set of connections).
#[derive(Clone)]
pub struct Lane {
    inner: Arc<Inner>,
}

struct Inner {
    options: PgConnectOptions,
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    permits: Arc<Semaphore>,
    counter: StatementCounter,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("permits", &self.inner.permits.available_permits()).finish()
    }
}

impl Lane {
    /// At most `size` connections to the PostgreSQL server of `url`, opened when needed;
    /// each statement counted into `counter`.
    ///
    /// # Errors
    /// A URL sqlx cannot read.
    pub fn new(url: &str, size: u32, counter: StatementCounter) -> AppResult<Lane> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| AppError::Internal(format!("database URL: {e}").into()))?
            .disable_statement_logging()
            // One plan per statement text, made once per connection (a compiled
            // statement's text already holds its shape and page sizes; its values are the
            // caller's ids and scope): PostgreSQL otherwise planned a manager's page anew
            // for every request, the plan costing as much as the run (BENCHMARKS.md).
            .options([("plan_cache_mode", "force_generic_plan")]);
        Ok(Lane {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::default(),
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                counter,
            }),
        })
    }

    /// Runs `statement` (PostgreSQL, one text column) and returns the first row's text.
    ///
    /// # Errors
    /// Database errors; RATE_LIMITED when no connection came within 10 s (or none could
    /// be opened), as the main pool refuses.
    pub async fn text(&self, statement: sea_orm::Statement) -> AppResult<Option<String>> {
        let mut conn = self.take().await?;
        self.inner.counter.fetch_add(1, Ordering::Relaxed);
        let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), SqlxValues(values));
        let answer = query.fetch_optional(conn.as_mut()).await;
        // Here the statement ran to its end: the answer was read, or the server's error
        // (a FATAL one ends the session: that connection is closed).
        match &answer {
            Ok(_) => conn.give_back(),
            Err(sqlx::Error::Database(e))
                if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|e| e.severity() == sqlx::postgres::PgSeverity::Error) =>
            {
                conn.give_back();
            }
            Err(_) => conn.close(),
        }
        let query_err =
            |e: sqlx::Error| AppError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into())));
        answer.map_err(query_err)?.map(|r| r.try_get::<String, _>(0)).transpose().map_err(query_err)
    }

    /// A permit and an idle connection (pinged when it sat idle too long) or a new one.
    async fn take(&self) -> AppResult<Lent> {
        // Every connection taken for 10 s, or none to be had: refused as the main pool
        // refuses (RATE_LIMITED, `docs/limits.md`).
        let busy = || AppError::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout));
        let permit = tokio::time::timeout(WAIT, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        loop {
            let idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some((mut conn, since)) => {
                    if since.elapsed() >= IDLE && conn.ping().await.is_err() {
                        continue;
                    }
                    conn
                }
                None => match tokio::time::timeout(WAIT, PgConnection::connect_with(&self.inner.options)).await {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "compiled reads: cannot open a connection");
                        return Err(busy());
                    }
                    Err(_) => {
                        tracing::warn!("compiled reads: no connection opened within 10 s");
                        return Err(busy());
                    }
                },
            };
            return Ok(Lent { lane: self.clone(), conn: Some(conn), permit: Some(permit) });
        }
    }
}

/// A connection out of the lane with its permit. Dropped before its statement ended (the
/// request went away mid-answer), it is drained by a task of its own before it goes back:
/// PostgreSQL runs a statement to its end whether or not the client still listens, so
/// the permit is held until then, and the lane never has more statements running than
/// permits (sqlx's pool does the same with its ping).
struct Lent {
    lane: Lane,
    conn: Option<PgConnection>,
    permit: Option<OwnedSemaphorePermit>,
}

/// The longest a dropped connection's statement is waited for before the connection is
/// closed (its backend then stops at its next write to the client).
const DRAIN: Duration = Duration::from_secs(30);

impl Lent {
    fn as_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lent connection until given back")
    }

    fn give_back(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lane.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).push((conn, Instant::now()));
        }
        self.permit.take();
    }

    fn close(&mut self) {
        self.conn.take();
        self.permit.take();
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let (Some(mut conn), Some(permit)) = (self.conn.take(), self.permit.take()) else { return };
        let lane = self.lane.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            // The ping's answer comes after the rest of the statement's.
            if let Ok(Ok(())) = tokio::time::timeout(DRAIN, conn.ping()).await {
                lane.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).push((conn, Instant::now()));
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_out_of_reach_is_busy_not_internal() {
        // Nothing listens on port 1: the connection is refused at once.
        let lane = Lane::new("postgres://postgres@127.0.0.1:1/none", 1, StatementCounter::default()).unwrap();
        let statement = sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Postgres, "SELECT 'x'");
        let refused = lane.text(statement).await.unwrap_err();
        assert!(matches!(refused, AppError::RateLimited { .. }), "{refused:?}");
        assert_eq!(refused.code(), "RATE_LIMITED");
    }
}
