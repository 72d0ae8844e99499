//! A lane of PostgreSQL connections for the compiled read path (`service/src/compiled.rs`):
//! one round trip per statement.
//!
//! sqlx's pool tests every connection it gets back with a ping (a `Sync` message and the
//! wait for the server's answer) before another task may take it: a second round trip for
//! every statement, which on the by-id lookup was a sixth of the server's samples and as
//! many wake-ups of PostgreSQL's backend as the statement itself (BENCHMARKS.md, issue
//! 29). That ping is how sqlx finds a connection left mid-answer by a dropped future;
//! here a connection goes back to the lane only when its statement ran to the end (the
//! answer, or an error the server sent), and is closed otherwise. A connection idle for a
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
use tokio::sync::Semaphore;

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
    permits: Semaphore,
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
                permits: Semaphore::new(size.max(1) as usize),
                counter,
            }),
        })
    }

    /// Runs `statement` (PostgreSQL, one text column) and returns the first row's text.
    ///
    /// # Errors
    /// Database errors; RATE_LIMITED when no connection came within 10 s.
    pub async fn text(&self, statement: sea_orm::Statement) -> AppResult<Option<String>> {
        let inner = &self.inner;
        // Every connection taken for 10 s: refused as the main pool refuses (RATE_LIMITED).
        let busy = || AppError::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout));
        let _permit =
            tokio::time::timeout(WAIT, inner.permits.acquire()).await.map_err(|_| busy())?.map_err(|_| busy())?;
        let mut conn = self.take().await?;
        inner.counter.fetch_add(1, Ordering::Relaxed);
        let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), SqlxValues(values));
        let answer = query.fetch_optional(conn.as_mut()).await;
        // Here the statement ran to its end: the answer was read, or the server's error.
        match &answer {
            Ok(_) | Err(sqlx::Error::Database(_)) => conn.give_back(),
            Err(_) => {}
        }
        let row =
            answer.map_err(|e| AppError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))))?;
        row.map(|r| r.try_get::<String, _>(0))
            .transpose()
            .map_err(|e| AppError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))))
    }

    /// An idle connection (pinged when it sat idle too long) or a new one.
    async fn take(&self) -> AppResult<Lent> {
        let err = |e: sqlx::Error| AppError::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())));
        loop {
            let idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some((mut conn, since)) => {
                    if since.elapsed() < IDLE || conn.ping().await.is_ok() {
                        return Ok(Lent { lane: self.clone(), conn: Some(conn) });
                    }
                }
                None => {
                    let conn = PgConnection::connect_with(&self.inner.options).await.map_err(err)?;
                    return Ok(Lent { lane: self.clone(), conn: Some(conn) });
                }
            }
        }
    }
}

/// A connection out of the lane: closed when dropped, unless given back.
struct Lent {
    lane: Lane,
    conn: Option<PgConnection>,
}

impl Lent {
    fn as_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lent connection until given back")
    }

    fn give_back(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.lane.inner.idle.lock().unwrap_or_else(|e| e.into_inner()).push((conn, Instant::now()));
        }
    }
}
