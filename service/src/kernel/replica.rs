//! A PostgreSQL streaming replica for heavy reads (`CRM_READ_DATABASE_URL`, docs/replica.md):
//! reports, key lists, completeness and CSV exports read from it while it is at most
//! `CRM_REPLICA_MAX_LAG_MS` behind the primary, and from the primary otherwise.
//!
//! The lag is measured in the primary's own terms, not by the replica's clock or its last
//! replayed commit's timestamp (which stands still on an idle primary): every tick the
//! watcher notes the primary's WAL position with the time it saw it, and asks the replica
//! how far it has replayed. A replica that has replayed everything the primary had written
//! at the last tick is caught up; otherwise it is behind by the age of the oldest noted
//! position it has not replayed. A replica that does not answer, or a primary that does
//! not, makes the replica unusable until the next good tick.
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the watcher measures the lag.
pub const TICK: Duration = Duration::from_millis(200);

/// A read replica and what the watcher last saw of it (cheap to clone).
#[derive(Clone)]
pub struct Replica(Arc<Inner>);

struct Inner {
    db: DatabaseConnection,
    max_lag: Duration,
    /// Whether the last measurement found the replica within `max_lag`.
    usable: AtomicBool,
    /// The last measured lag in milliseconds (`u64::MAX`: unknown).
    lag_ms: AtomicU64,
    /// Primary WAL positions with the time each was first seen, oldest first.
    seen: Mutex<VecDeque<(u64, Instant)>>,
}

impl Replica {
    /// A replica reached through `db`, usable while at most `max_lag` behind. Unusable
    /// until the first measurement.
    pub fn new(db: DatabaseConnection, max_lag: Duration) -> Replica {
        Replica(Arc::new(Inner {
            db,
            max_lag,
            usable: AtomicBool::new(false),
            lag_ms: AtomicU64::new(u64::MAX),
            seen: Mutex::default(),
        }))
    }

    /// The replica's connection while it is usable.
    pub fn db(&self) -> Option<&DatabaseConnection> {
        self.0.usable.load(Ordering::Acquire).then_some(&self.0.db)
    }

    /// The last measured lag, if the last measurement succeeded.
    pub fn lag(&self) -> Option<Duration> {
        match self.0.lag_ms.load(Ordering::Acquire) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Measures the lag against `primary` once and records the verdict (and the
    /// `crm_replica_lag_seconds` gauge, -1 when unknown).
    async fn measure(&self, primary: &DatabaseConnection) {
        let lag = self.lag_now(primary).await;
        self.record(lag);
    }

    /// Records a measured lag (`None`: unknown) and the verdict.
    fn record(&self, lag: Option<Duration>) {
        let usable = lag.is_some_and(|l| l <= self.0.max_lag);
        self.0.lag_ms.store(lag.map_or(u64::MAX, |l| l.as_millis() as u64), Ordering::Release);
        self.0.usable.store(usable, Ordering::Release);
        metrics::gauge!("crm_replica_lag_seconds").set(lag.map_or(-1.0, |l| l.as_secs_f64()));
        metrics::gauge!("crm_replica_usable").set(if usable { 1.0 } else { 0.0 });
        if let Some(l) = lag.filter(|_| !usable) {
            tracing::debug!(lag_ms = l.as_millis() as u64, "the read replica is behind: reading from the primary");
        }
    }

    async fn lag_now(&self, primary: &DatabaseConnection) -> Option<Duration> {
        let written = position(primary, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn").await;
        let now = Instant::now();
        let Some(written) = written else {
            tracing::warn!("cannot read the primary's WAL position: heavy reads stay on the primary");
            return None;
        };
        // NULL on a server that is not a standby: it is the primary itself, never behind.
        let replayed = match query_one(
            &self.0.db,
            "SELECT CASE WHEN pg_is_in_recovery() THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint \
             ELSE 9223372036854775807 END AS lsn",
        )
        .await
        {
            Some(Some(lsn)) => u64::try_from(lsn).unwrap_or(0),
            _ => return None,
        };
        let mut seen = self.0.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.back().is_none_or(|(lsn, _)| *lsn < written) {
            seen.push_back((written, now));
        }
        // Positions replayed are behind us; the oldest one left dates the lag.
        while seen.front().is_some_and(|(lsn, _)| *lsn <= replayed) {
            seen.pop_front();
        }
        // A replica this far behind is not used; keep the queue bounded.
        while seen.len() > 10_000 {
            seen.pop_front();
        }
        Some(seen.front().map_or(Duration::ZERO, |(_, at)| now.duration_since(*at)))
    }

    /// The replica's connection, usable or not (a read that chose it keeps it).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.0.db
    }

    /// How far behind the replica may be and still serve reads.
    pub fn max_lag(&self) -> Duration {
        self.0.max_lag
    }

    /// Measures every [`TICK`] until the process ends.
    pub fn watch(&self, primary: DatabaseConnection) -> tokio::task::JoinHandle<()> {
        let replica = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // A replica that hangs counts as unusable, not as a stalled watcher.
                if tokio::time::timeout(TICK * 5, replica.measure(&primary)).await.is_err() {
                    replica.record(None);
                }
            }
        })
    }
}

async fn query_one(db: &DatabaseConnection, sql: &str) -> Option<Option<i64>> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.ok()??;
    row.try_get::<Option<i64>>("", "lsn").ok()
}

async fn position(db: &DatabaseConnection, sql: &str) -> Option<u64> {
    query_one(db, sql).await.flatten().and_then(|v| u64::try_from(v).ok())
}
