//! The share of the database that heavy reads may hold: reports, key lists, completeness,
//! CSV exports and report files. Each scans many rows and holds a pooled connection while
//! it does; unbounded, one analyst's aliased reports took every connection and a rep's
//! list waited for the pool's timeout. Two bounds, both waited on without holding a
//! connection:
//! - at most `share` heavy reads run at once on an instance (`CRM_HEAVY_READS`), the rest
//!   of the pool stays for everything else;
//! - one user runs one heavy read at a time, so the instance's queue (first come, first
//!   served) holds at most one read of each user: a user who sends 400 waits for their
//!   own, not in front of everyone else's.
//!
//! A read that cannot start within `wait` answers RATE_LIMITED with `retryAfter`.
//!
//! With a read replica (`kernel::replica`, `CRM_READ_DATABASE_URL`), a read runs on it
//! while it is within its lag bound, unless its user wrote on this instance within that
//! bound (a report right after one's own change shows the change); else on the primary.
//! The choice is made once per read, when it starts.
use crate::error::{AppError, AppResult};
use crate::kernel::replica::Replica;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// The gate of an instance's heavy reads (cheap to clone).
#[derive(Clone)]
pub struct HeavyReads(Arc<Inner>);

struct Inner {
    share: usize,
    /// The pool heavy reads run on (`kernel::db::heavy_pool`: a lower OS priority), if any.
    pool: Option<sea_orm::DatabaseConnection>,
    /// A read replica, if any.
    replica: Option<Replica>,
    /// When each user last committed a write on this instance (kept while within the
    /// replica's lag bound).
    wrote: Mutex<HashMap<Uuid, Instant>>,
    wait: Duration,
    all: Arc<Semaphore>,
    users: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl HeavyReads {
    /// At most `share` heavy reads at once (at least one), each waiting at most `wait`,
    /// running on `pool` when given.
    pub fn new(share: usize, wait: Duration, pool: Option<sea_orm::DatabaseConnection>) -> Self {
        Self::with_replica(share, wait, pool, None)
    }

    /// [`HeavyReads::new`], reading from `replica` while it is usable.
    pub fn with_replica(
        share: usize,
        wait: Duration,
        pool: Option<sea_orm::DatabaseConnection>,
        replica: Option<Replica>,
    ) -> Self {
        let share = share.max(1);
        HeavyReads(Arc::new(Inner {
            share,
            pool,
            replica,
            wrote: Mutex::default(),
            wait,
            all: Arc::new(Semaphore::new(share)),
            users: Mutex::default(),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// How many heavy reads may run at once.
    pub fn share(&self) -> usize {
        self.0.share
    }

    /// The most heavy reads that ran at once since the start (tests and `crm-bench`).
    /// The heavy reads' own pool, if they have one.
    pub fn pool(&self) -> Option<&sea_orm::DatabaseConnection> {
        self.0.pool.as_ref()
    }

    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }

    /// The read replica, if any.
    pub fn replica(&self) -> Option<&Replica> {
        self.0.replica.as_ref()
    }

    /// Notes that `user` committed a write: their heavy reads stay on the primary for the
    /// replica's lag bound.
    pub fn wrote(&self, user: Uuid) {
        let Some(replica) = &self.0.replica else { return };
        let now = Instant::now();
        let mut wrote = self.0.wrote.lock().unwrap_or_else(|e| e.into_inner());
        if wrote.len() >= 10_000 {
            wrote.retain(|_, at| now.duration_since(*at) <= replica.max_lag());
        }
        wrote.insert(user, now);
    }

    /// Whether a read of `user` starting now may run on the replica.
    fn on_replica(&self, user: Uuid) -> bool {
        let Some(replica) = &self.0.replica else { return false };
        let fresh = replica.db().is_some();
        let own_write = {
            let wrote = self.0.wrote.lock().unwrap_or_else(|e| e.into_inner());
            wrote.get(&user).is_some_and(|at| at.elapsed() <= replica.max_lag() + crate::kernel::replica::TICK)
        };
        fresh && !own_write
    }

    /// The store a search of `user` reads: the replica under the rule of a heavy read
    /// (caught up, and no write of the caller's on this instance within the lag bound),
    /// else `main`. No permit is taken: a search is interactive, not heavy. Counted in
    /// `crm_search_reads_total{store}` when there is a replica.
    pub fn search_store<'a>(
        &'a self,
        user: Uuid,
        main: &'a sea_orm::DatabaseConnection,
    ) -> &'a sea_orm::DatabaseConnection {
        let Some(replica) = &self.0.replica else { return main };
        let on = self.on_replica(user);
        metrics::counter!("crm_search_reads_total", "store" => if on { "replica" } else { "primary" }).increment(1);
        if on { replica.connection() } else { main }
    }

    /// Waits for `user`'s turn and a free share; the read runs while the permit lives.
    ///
    /// # Errors
    /// RATE_LIMITED when it could not start within the wait.
    pub async fn enter(&self, user: Uuid) -> AppResult<HeavyPermit> {
        self.take(user, Some(self.0.wait)).await
    }

    /// Waits for `user`'s turn however long it takes: the next page of a download already
    /// under way (its status is sent; giving up would cut the file).
    pub async fn next_turn(&self, user: Uuid) -> HeavyPermit {
        loop {
            if let Ok(permit) = self.take(user, None).await {
                return permit;
            }
        }
    }

    async fn take(&self, user: Uuid, wait: Option<Duration>) -> AppResult<HeavyPermit> {
        let own = {
            let mut users = self.0.users.lock().unwrap_or_else(|e| e.into_inner());
            users.entry(user).or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
        };
        let mut permit = HeavyPermit { gate: self.clone(), user, own: None, all: None, replica: false };
        let taken = tokio::time::timeout(wait.unwrap_or(Duration::MAX), async {
            permit.own = own.acquire_owned().await.ok();
            permit.all = self.0.all.clone().acquire_owned().await.ok();
        })
        .await;
        if taken.is_err() || permit.all.is_none() {
            metrics::counter!("crm_refused_total", "limit" => "heavy_reads").increment(1);
            return Err(AppError::RateLimited {
                retry_after: 2,
                message: format!(
                    "reports, key lists and exports are busy: {} run at once on this server and each person's one at a \
                     time; try again in a moment",
                    self.0.share
                ),
            });
        }
        let running = self.0.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.0.peak.fetch_max(running, Ordering::Relaxed);
        permit.replica = self.on_replica(user);
        if self.0.replica.is_some() {
            let store = if permit.replica { "replica" } else { "primary" };
            metrics::counter!("crm_heavy_reads_total", "store" => store).increment(1);
        }
        Ok(permit)
    }
}

/// One heavy read running; frees its place when dropped.
pub struct HeavyPermit {
    gate: HeavyReads,
    user: Uuid,
    own: Option<OwnedSemaphorePermit>,
    all: Option<OwnedSemaphorePermit>,
    /// Whether the read runs on the replica (chosen when it started).
    replica: bool,
}

impl HeavyPermit {
    /// The connection the read runs on: the replica when chosen, else the heavy pool, else
    /// `main`.
    pub fn db<'a>(&'a self, main: &'a sea_orm::DatabaseConnection) -> &'a sea_orm::DatabaseConnection {
        match (&self.gate.0.replica, self.replica) {
            (Some(replica), true) => replica.connection(),
            _ => self.gate.0.pool.as_ref().unwrap_or(main),
        }
    }

    /// Whether the read runs on the replica.
    pub fn on_replica(&self) -> bool {
        self.replica
    }
}

impl Drop for HeavyPermit {
    fn drop(&mut self) {
        if self.all.take().is_some() {
            self.gate.0.running.fetch_sub(1, Ordering::Relaxed);
        }
        let mut users = self.gate.0.users.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.own.take());
        // The map holds the last reference once nobody of the user waits or runs.
        if users.get(&self.user).is_some_and(|s| Arc::strong_count(s) == 1) {
            users.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_user_runs_one_at_a_time_and_the_share_bounds_everyone() {
        let gate = HeavyReads::new(2, Duration::from_millis(50), None);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let first = gate.enter(a).await.unwrap();
        // The same user's second read waits for the first, and gives up after the wait.
        assert_eq!(gate.enter(a).await.err().map(|e| e.code()), Some("RATE_LIMITED"));
        let second = gate.enter(b).await.unwrap();
        // The share is full: a third user waits too, and leaves nothing behind.
        assert!(gate.enter(c).await.is_err());
        assert!(!gate.0.users.lock().unwrap().contains_key(&c));
        drop(first);
        let third = gate.enter(c).await.unwrap();
        assert_eq!(gate.peak(), 2);
        drop((second, third));
        assert!(gate.0.users.lock().unwrap().is_empty(), "no user left behind");
    }
}
