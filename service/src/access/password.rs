//! argon2id password hashing, run off the async executor.
use crate::error::{AppError, AppResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use std::sync::OnceLock;

/// Shortest accepted password.
pub const MIN_LENGTH: usize = 8;

/// Checks the password policy.
///
/// # Errors
/// A message when the password is too short or too long.
pub fn check_policy(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LENGTH {
        return Err(format!("must have at least {MIN_LENGTH} characters"));
    }
    if password.len() > 1024 {
        return Err("must have at most 1024 bytes".into());
    }
    Ok(())
}

/// Argon2 runs at most this many at once: each holds 19 MiB and a core for tens of
/// milliseconds, so a burst of logins queues here instead of exhausting memory and the
/// blocking pool.
const CONCURRENT_HASHES: usize = 4;

async fn hashing_slot() -> Option<tokio::sync::SemaphorePermit<'static>> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);
    SLOTS.acquire().await.ok()
}

/// Hashes a password into a PHC string.
///
/// # Errors
/// INTERNAL if hashing fails.
pub async fn hash(password: String) -> AppResult<String> {
    let _slot = hashing_slot().await;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(e.to_string().into()))
    })
    .await
    .map_err(AppError::internal)?
}

/// Verifies a password against a PHC string. With no hash (unknown user) it verifies
/// against a fixed dummy so that timing does not tell which e-mail addresses exist.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
    let _slot = hashing_slot().await;
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    ok && known
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"dummy password for timing", &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}
