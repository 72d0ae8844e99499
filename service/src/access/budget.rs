//! The matching budget: how many records a person may match against the whole base per
//! hour. Matching answers about customers the caller cannot read (a candidate outside your
//! scope names the department that owns it; an import line says "duplicate"), so without a
//! bound it is an existence oracle: 100 aliased `duplicateCandidates` checked 207,000
//! phone numbers a minute, a dry-run import 1,700 a second.
//!
//! Every matching path spends from one bucket per user: each `duplicateCandidates` and
//! `search` field (aliases each count), each line of an import, dry run or not. The bucket
//! holds `per_hour` checks and refills continuously; past it, RATE_LIMITED with
//! `retryAfter`. A caller who may read every record of the kind matched is not charged:
//! there is nothing they could learn. Lists are not charged: they return only what the
//! caller may read. The buckets are kept per instance (a user spread over N instances gets
//! N buckets; the budget bounds volume, not a single probe).
use crate::access::Actor;
use crate::error::{AppError, AppResult};
use entity::enums::{Action, Resource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

/// The budget of an instance (cheap to clone).
#[derive(Clone)]
pub struct MatchBudget(Arc<Inner>);

struct Inner {
    per_hour: u32,
    buckets: Mutex<HashMap<Uuid, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    left: f64,
    at: Instant,
}

impl MatchBudget {
    /// `per_hour` checks an hour per user (at least one).
    pub fn new(per_hour: u32) -> Self {
        MatchBudget(Arc::new(Inner { per_hour: per_hour.max(1), buckets: Mutex::default() }))
    }

    pub fn per_hour(&self) -> u32 {
        self.0.per_hour
    }

    /// Spends `checks` matches of `actor` against records of `resource`.
    ///
    /// # Errors
    /// RATE_LIMITED, with the seconds until enough has refilled.
    pub fn spend(&self, actor: &Actor, resource: Resource, checks: u32) -> AppResult<()> {
        if checks == 0 || actor.reach(resource, Action::Read).everything {
            return Ok(());
        }
        self.spend_at(actor.id(), checks, Instant::now())
    }

    fn spend_at(&self, user: Uuid, checks: u32, now: Instant) -> AppResult<()> {
        let full = f64::from(self.0.per_hour);
        let rate = full / 3600.0;
        let mut buckets = self.0.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            // Full buckets are as good as none.
            buckets.retain(|_, b| b.left + now.duration_since(b.at).as_secs_f64() * rate < full);
        }
        let bucket = buckets.entry(user).or_insert(Bucket { left: full, at: now });
        bucket.left = (bucket.left + now.duration_since(bucket.at).as_secs_f64() * rate).min(full);
        bucket.at = now;
        // A spend larger than the whole bucket (an import chunk under a small budget) costs
        // the whole bucket: it can pass once the bucket is full.
        let wanted = f64::from(checks).min(full);
        if bucket.left >= wanted {
            bucket.left -= wanted;
            return Ok(());
        }
        let wait = ((wanted - bucket.left) / rate).ceil().max(1.0);
        metrics::counter!("crm_refused_total", "limit" => "match_budget").increment(1);
        Err(AppError::RateLimited {
            retry_after: wait as u64,
            message: format!(
                "matching budget spent: at most {} checks against records you cannot read per hour (duplicate \
                 candidates, import lines); try again in {} s",
                self.0.per_hour, wait as u64
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_empties_and_refills_with_time() {
        let budget = MatchBudget::new(3600);
        let (user, t0) = (Uuid::new_v4(), Instant::now());
        budget.spend_at(user, 3000, t0).unwrap();
        budget.spend_at(user, 600, t0).unwrap();
        let refused = budget.spend_at(user, 10, t0).unwrap_err();
        assert!(matches!(refused, AppError::RateLimited { retry_after: 10, .. }), "{refused:?}");
        // One check a second comes back.
        budget.spend_at(user, 10, t0 + std::time::Duration::from_secs(10)).unwrap();
        // Another user has a bucket of their own.
        budget.spend_at(Uuid::new_v4(), 3600, t0).unwrap();
    }
}
