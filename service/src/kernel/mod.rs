//! The kernel: what every rule stands on. Transactions and the versioned save (`store`),
//! the audit trail, lists (filter, sort, cursor pagination), money, normalisation, sealed
//! fields (`vault`), live events and the text and date checks every input goes through.
//! Nothing here knows a record family or an engine.
pub mod change;
pub mod counted;
pub mod db;
pub mod events;
pub mod filter;
pub mod idempotency;
pub mod interactive;
pub mod lane;
pub mod money;
pub mod normalize;
pub mod pagination;
pub mod replica;
pub mod setting;
pub mod sql;
pub mod store;
pub mod trace;
pub mod types;
pub mod vault;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

/// A new time-ordered id.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// The current time at microsecond precision, which both databases store exactly.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An optional text field: trimmed, blank becomes `None`, longer than `max` characters is
/// recorded as a violation.
pub fn optional_text(
    v: &mut crate::error::Violations,
    field: &str,
    value: Option<String>,
    max: usize,
) -> Option<String> {
    let value = clean(value);
    if value.as_ref().is_some_and(|s| s.chars().count() > max) {
        v.add(field, format!("must have at most {max} characters"));
    }
    if value.as_ref().is_some_and(|s| s.contains('\0')) {
        v.add(field, NUL_MESSAGE);
    }
    value
}

pub use crate::error::NUL_MESSAGE;

/// A required text field: trimmed, 1 to `max` characters.
pub fn required_text(v: &mut crate::error::Violations, field: &str, value: &str, max: usize) -> String {
    let value = value.trim().to_string();
    if value.is_empty() || value.chars().count() > max {
        v.add(field, format!("must have 1 to {max} characters"));
    }
    if value.contains('\0') {
        v.add(field, NUL_MESSAGE);
    }
    value
}

/// Trims a text field; blank becomes `None`.
pub fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// A calendar date as the API takes it: `YYYY-MM-DD`, a four-digit year. (chrono reads
/// years up to 262143 and signed ones; date arithmetic on those would overflow.)
///
/// # Errors
/// The message for the field.
pub fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    // The shape first: chrono alone also reads "+2026-01-1" (a sign, a one-digit day).
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| shaped && (1..=9999).contains(&chrono::Datelike::year(d)))
        .ok_or_else(|| "must be a date YYYY-MM-DD".to_string())
}

/// A birthday between 1900-01-01 and today.
pub fn plausible_birthday(b: chrono::NaiveDate) -> bool {
    chrono::NaiveDate::from_ymd_opt(1900, 1, 1).is_some_and(|min| b >= min) && b <= now().date_naive()
}

/// A patch of a nullable field: `None` leaves it, `Some(None)` clears it.
pub type Patch<T> = Option<Option<T>>;

/// A random 256-bit secret, base64url.
pub fn random_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Start of a UTC day.
pub fn day_start(day: chrono::NaiveDate) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}
