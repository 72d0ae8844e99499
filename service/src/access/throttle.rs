//! Back-off for failed logins, per account and per client address, in the database so
//! that every instance counts the same failures.
//!
//! An attempt is counted as a failure **before** its password is checked, in one locked
//! transaction with the check of any block: a burst of parallel guesses cannot slip past
//! the limit between check and count. A success takes its own count back (the account's
//! counter starts over; the address's loses one, so that an office behind one address is
//! not blocked by its own colleagues' logins).
//!
//! - Free failures per window ([`WINDOW`]): `account` per e-mail address (known or not, so
//!   the limit does not reveal which addresses exist), `address` per client address.
//! - From the limit on, each further failure blocks the key for [`BASE`] doubled per
//!   failure beyond the limit, at most [`LONGEST`]; attempts while blocked are refused
//!   with RATE_LIMITED and `retryAfter` without checking the password (nor counting).
//! - Keys are stored as SHA-256 digests: a mistyped personal e-mail address is not kept.
use crate::error::{AppError, AppResult};
use crate::kernel::store::write;
use chrono::{DateTime, Duration, Utc};
use entity::login_throttle;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// How long failures are remembered.
pub const WINDOW: Duration = Duration::minutes(15);
/// The first block.
const BASE: Duration = Duration::seconds(30);
/// The longest block.
const LONGEST: Duration = Duration::minutes(15);

/// Free failures per window (`CRM_LOGIN_ACCOUNT_FAILURES`, `CRM_LOGIN_ADDRESS_FAILURES`).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub account: u32,
    pub address: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits { account: 5, address: 50 }
    }
}

/// The keys an attempt was counted under.
pub struct Attempt {
    keys: Vec<(String, u32)>,
}

fn key(kind: &str, value: &str) -> String {
    format!("{kind}:{:x}", Sha256::digest(value.as_bytes()))
}

/// The address as counted: an IPv4 address, or the /64 network of an IPv6 one (one
/// subscriber commonly holds a whole /64).
fn network(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Counts an attempt as a failure unless a key is blocked.
///
/// # Errors
/// RATE_LIMITED (with the seconds until the longest block ends).
pub async fn begin(
    db: &DatabaseConnection,
    limits: &LoginLimits,
    email: &str,
    address: Option<IpAddr>,
    at: DateTime<Utc>,
) -> AppResult<Attempt> {
    let mut keys = vec![(key("account", email), limits.account)];
    if let Some(a) = address {
        keys.push((key("address", &network(a)), limits.address));
    }
    write(db, async |txn| {
        let mut rows = Vec::with_capacity(keys.len());
        for (k, _) in &keys {
            // Make sure the row exists, then lock it (PostgreSQL; SQLite's write lock is taken at BEGIN).
            login_throttle::Entity::insert(login_throttle::ActiveModel {
                key: Set(k.clone()),
                failures: Set(0),
                window_started_at: Set(at),
                blocked_until: Set(None),
                updated_at: Set(at),
            })
            .on_conflict(OnConflict::column(login_throttle::Column::Key).do_nothing().to_owned())
            .exec_without_returning(txn)
            .await?;
            let row = login_throttle::Entity::find_by_id(k.clone())
                .lock_exclusive()
                .one(txn)
                .await?
                .ok_or_else(|| AppError::Internal("login throttle row vanished".into()))?;
            rows.push(row);
        }
        let wait = rows.iter().filter_map(|r| r.blocked_until).filter(|until| *until > at).max();
        if let Some(until) = wait {
            let seconds = (until - at).num_seconds().max(1) as u64;
            tracing::warn!(retry_after = seconds, "login refused: too many failures");
            metrics::counter!("crm_refused_total", "limit" => "login_backoff").increment(1);
            return Err(AppError::RateLimited {
                retry_after: seconds,
                message: format!("too many failed logins; try again in {seconds} seconds"),
            });
        }
        for (row, (_, free)) in rows.into_iter().zip(&keys) {
            let fresh = row.window_started_at + WINDOW <= at;
            let failures = if fresh { 1 } else { row.failures.saturating_add(1) };
            let mut am: login_throttle::ActiveModel = row.into();
            if fresh {
                am.window_started_at = Set(at);
            }
            am.failures = Set(failures);
            am.blocked_until = Set(block(failures, *free).map(|d| at + d));
            am.updated_at = Set(at);
            am.update(txn).await?;
        }
        Ok(())
    })
    .await?;
    Ok(Attempt { keys })
}

/// How long `failures` within a window block a key with `free` free failures.
fn block(failures: i32, free: u32) -> Option<Duration> {
    let beyond = u32::try_from(failures).ok()?.checked_sub(free)?;
    let factor = 1i32.checked_shl(beyond.min(20)).unwrap_or(i32::MAX);
    Some((BASE * factor).min(LONGEST))
}

/// Takes back the count of a successful attempt.
///
/// # Errors
/// Database errors.
pub async fn succeeded(db: &DatabaseConnection, attempt: Attempt, at: DateTime<Utc>) -> AppResult<()> {
    write(db, async |txn| {
        let mut keys = attempt.keys.iter();
        if let Some((account, _)) = keys.next() {
            login_throttle::Entity::delete_by_id(account.clone()).exec(txn).await?;
        }
        for (k, free) in keys {
            let Some(row) = login_throttle::Entity::find_by_id(k.clone()).lock_exclusive().one(txn).await? else {
                continue;
            };
            let failures = (row.failures - 1).max(0);
            let mut am: login_throttle::ActiveModel = row.into();
            am.failures = Set(failures);
            am.blocked_until = Set(block(failures, *free).map(|d| at + d));
            am.updated_at = Set(at);
            am.update(txn).await?;
        }
        Ok(())
    })
    .await
}

/// Deletes counters nobody has touched for a day (the scheduler calls it).
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<u64> {
    let gone = login_throttle::Entity::delete_many()
        .filter(login_throttle::Column::UpdatedAt.lt(at - Duration::days(1)))
        .exec(db)
        .await?;
    Ok(gone.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        assert_eq!(network("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(network("10.0.0.1".parse().unwrap()), "10.0.0.1");
    }

    #[test]
    fn back_off_doubles_from_the_limit_and_is_capped() {
        assert_eq!(block(4, 5), None);
        assert_eq!(block(5, 5), Some(Duration::seconds(30)));
        assert_eq!(block(6, 5), Some(Duration::seconds(60)));
        assert_eq!(block(9, 5), Some(Duration::seconds(480)));
        assert_eq!(block(10, 5), Some(Duration::minutes(15)));
        assert_eq!(block(i32::MAX, 5), Some(Duration::minutes(15)));
        assert_eq!(block(-1, 5), None);
    }
}
