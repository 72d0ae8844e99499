//! Idempotent writes (`docs/partners.md`): a request carrying `Idempotency-Key` is run once
//! per caller and key; a retry with the same body within 24 hours gets the first answer
//! again without running, one with another body is a CONFLICT, and one that arrives while
//! the first still runs is a CONFLICT too (its outcome is not known yet).
//!
//! The key is claimed before the request runs (an insert that one of several racing
//! requests wins, on any instance) and the answer stored after it. The request then runs
//! to its end in a task of its own, whether or not its client waits (a client that gives
//! up, the edge's timeout), so a retry finds its answer. Only a crash in between leaves the
//! key claimed without one: whether its write committed is unknown, so the key answers
//! CONFLICT until it expires rather than risk a second write.
//!
//! Answers are kept sealed (`vault.rs`, bound to the caller and key), at most
//! [`MAX_ANSWER`] bytes (a larger one is remembered as run, not replayed), and forgotten
//! when a person's data is erased (`personal::erase`): they may quote it.
use crate::error::{AppError, AppResult};
use crate::kernel::vault::Keyring;
use chrono::{DateTime, Duration, Utc};
use entity::idempotency_key::{self, Column};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a key holds its answer.
pub const KEEP_HOURS: i64 = 24;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Largest answer kept for a replay.
pub const MAX_ANSWER: usize = 1 << 20;

/// What an answer is sealed as: bound to its caller and key.
fn sealed_as(key: &str) -> String {
    format!("idempotency:{key}")
}

/// What a claimed key says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use: run the request, then [`finish`].
    Fresh,
    /// Already answered: send this (status, body) again.
    Replay(u16, String),
}

/// The stored form of a request body.
pub fn hash(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

/// Checks a key as sent: 1 to 255 visible ASCII characters.
///
/// # Errors
/// BAD_REQUEST.
pub fn check_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID, say)"
        )));
    }
    Ok(())
}

/// Claims `key` for `user`'s request with body hash `request_hash` at `at`.
///
/// # Errors
/// CONFLICT (another body, or the first request still running or cut off).
pub async fn claim(
    db: &DatabaseConnection,
    vault: &Keyring,
    user: Uuid,
    key: &str,
    request_hash: &str,
    at: DateTime<Utc>,
) -> AppResult<Claim> {
    for _ in 0..2 {
        let row = idempotency_key::ActiveModel {
            user_id: Set(user),
            key: Set(key.to_string()),
            request_hash: Set(request_hash.to_string()),
            status: Set(None),
            response: Set(None),
            created_at: Set(at),
            completed_at: Set(None),
        };
        let inserted = idempotency_key::Entity::insert(row)
            .on_conflict(OnConflict::columns([Column::UserId, Column::Key]).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
        if inserted == 1 {
            return Ok(Claim::Fresh);
        }
        let Some(old) = idempotency_key::Entity::find_by_id((user, key.to_string())).one(db).await? else {
            continue; // expired and pruned meanwhile
        };
        if old.created_at + Duration::hours(KEEP_HOURS) <= at {
            // Expired: the key starts over (only the row read here is removed).
            idempotency_key::Entity::delete_many()
                .filter(Column::UserId.eq(user))
                .filter(Column::Key.eq(key))
                .filter(Column::CreatedAt.eq(old.created_at))
                .exec(db)
                .await?;
            continue;
        }
        if old.request_hash != request_hash {
            return Err(AppError::Conflict(
                "this Idempotency-Key was used with another request body; use a new key for a new request".into(),
            ));
        }
        return match (old.status, old.response) {
            (Some(status), Some(body)) => {
                Ok(Claim::Replay(u16::try_from(status).unwrap_or(200), vault.open(&sealed_as(key), user, &body)?))
            }
            (Some(_), None) => Err(AppError::Conflict(
                "the request with this Idempotency-Key ran, and its answer was too large to keep (or was erased with \
                 a person's data); check, then use a new key"
                    .into(),
            )),
            _ => Err(AppError::Conflict(
                "a request with this Idempotency-Key is still running, or was cut off before it answered (its \
                 outcome is unknown: check, then retry with a new key)"
                    .into(),
            )),
        };
    }
    Err(AppError::Conflict("this Idempotency-Key is changing; retry".into()))
}

/// Stores the answer to a claimed key.
///
/// # Errors
/// Database errors.
pub async fn finish(
    db: &DatabaseConnection,
    vault: &Keyring,
    user: Uuid,
    key: &str,
    status: u16,
    body: &[u8],
) -> AppResult<()> {
    let kept = (body.len() <= MAX_ANSWER).then(|| vault.seal(&sealed_as(key), user, &String::from_utf8_lossy(body)));
    idempotency_key::Entity::update_many()
        .col_expr(Column::Status, sea_orm::sea_query::Expr::value(i32::from(status)))
        .col_expr(Column::Response, sea_orm::sea_query::Expr::value(kept))
        .col_expr(Column::CompletedAt, sea_orm::sea_query::Expr::value(crate::kernel::now()))
        .filter(Column::UserId.eq(user))
        .filter(Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives a claimed key up (the request was refused before it ran: nothing was written,
/// so a retry may run).
///
/// # Errors
/// Database errors.
pub async fn release(db: &DatabaseConnection, user: Uuid, key: &str) -> AppResult<()> {
    idempotency_key::Entity::delete_many()
        .filter(Column::UserId.eq(user))
        .filter(Column::Key.eq(key))
        .filter(Column::CompletedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets every kept answer (a person's data was erased, and answers may quote it); the
/// keys stay claimed, so a retry is told its request ran rather than run again.
///
/// # Errors
/// Database errors.
pub async fn forget_answers(db: &impl ConnectionTrait) -> AppResult<()> {
    idempotency_key::Entity::update_many()
        .col_expr(Column::Response, sea_orm::sea_query::Expr::value(Option::<String>::None))
        .filter(Column::Response.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Removes keys older than [`KEEP_HOURS`] (the scheduler's housekeeping).
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<u64> {
    let gone = idempotency_key::Entity::delete_many()
        .filter(Column::CreatedAt.lt(at - Duration::hours(KEEP_HOURS)))
        .exec(db)
        .await?;
    Ok(gone.rows_affected)
}
