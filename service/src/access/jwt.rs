//! HS256 access tokens. Required claims: `sub`, `exp`, `iss`, `aud`; the role and
//! department in a token are informational, the database decides.
use crate::error::AppError;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims we issue.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub dept: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The user's session version when the token was issued; a token whose version is
    /// behind the user's is refused. Tokens issued before versions existed count as 1.
    #[serde(default = "first_version")]
    pub sv: i32,
}

fn first_version() -> i32 {
    1
}

/// What a valid token says.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub user_id: Uuid,
    pub session_version: i32,
    pub expires: DateTime<Utc>,
}

/// The longest lifetime of a token (`crm token --ttl`, `CRM_ACCESS_TOKEN_TTL`): 30 days.
/// Longer-lived machine access is for API keys, which can be revoked one by one.
pub const MAX_TTL_SECS: i64 = 30 * 86_400;

/// Keys and settings for issuing and checking tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    /// Lifetime of issued access tokens.
    pub ttl: chrono::Duration,
    /// Lifetime of a refresh token (each exchange starts a new one).
    pub refresh_ttl: chrono::Duration,
    /// How long after an exchange the same refresh token is answered with the same new
    /// pair instead of ending the login (two browser tabs refreshing at once).
    pub refresh_grace: chrono::Duration,
    /// Key of the refresh-token successor derivation ([`JwtKeys::successor`]).
    successor_key: Vec<u8>,
    /// Tokens that verified lately, by their text ([`JwtKeys::verify`]).
    verified: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Box<str>, Verified>>>,
}

/// Most tokens [`JwtKeys::verify`] remembers (a few MB): past it, the expired ones are
/// forgotten, and if that is not enough, all.
const REMEMBERED: usize = 10_000;

/// Seconds a token is still accepted after its `exp` (clock skew).
const LEEWAY: i64 = 5;

impl JwtKeys {
    pub fn new(
        secret: &[u8],
        issuer: String,
        audience: String,
        ttl: chrono::Duration,
        refresh_ttl: chrono::Duration,
    ) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            audience,
            ttl,
            refresh_ttl,
            refresh_grace: chrono::Duration::seconds(30),
            successor_key: secret.to_vec(),
            verified: std::sync::Arc::default(),
        }
    }

    /// The same keys with another refresh grace (`CRM_REFRESH_GRACE_SECS`).
    #[must_use]
    pub fn with_refresh_grace(mut self, grace: chrono::Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// The refresh token that replaces `token`: an HMAC of it under the server's secret, so
    /// a second exchange of the same token within the grace can hand out the same
    /// successor without the server keeping any token in the clear.
    pub fn successor(&self, token: &str) -> String {
        use base64::Engine;
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.successor_key) else {
            // HMAC takes a key of any length; this branch is never taken.
            return format!("rt_{}", crate::kernel::random_secret());
        };
        mac.update(b"crm refresh successor\0");
        mac.update(token.as_bytes());
        format!("rt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Signs a token for a user.
    ///
    /// # Errors
    /// INTERNAL if signing fails.
    pub fn issue(
        &self,
        user: &entity::user::Model,
        ttl: Option<chrono::Duration>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        self.issue_at(user, ttl, Utc::now())
    }

    /// Signs a token for a user as of `now` (whole seconds count): the same user, lifetime
    /// and time give the same token.
    ///
    /// # Errors
    /// INTERNAL if signing fails.
    pub fn issue_at(
        &self,
        user: &entity::user::Model,
        ttl: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        use chrono::SubsecRound;
        let ttl = ttl.unwrap_or(self.ttl);
        if ttl > chrono::Duration::seconds(MAX_TTL_SECS) || ttl < chrono::Duration::seconds(60) {
            return Err(AppError::invalid("ttl", format!("must be 60 to {MAX_TTL_SECS} seconds")));
        }
        let now = now.trunc_subsecs(0);
        let expires = now + ttl;
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role.to_string(),
            dept: user.department_id.to_string(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sv: user.session_version,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)?;
        Ok((token, expires))
    }

    /// Checks signature, algorithm, `exp`, `iss`, `aud` and `sub`. Whether the session
    /// version still holds is for the caller ([`crate::access::Sessions::actor`]).
    ///
    /// A token that verified is remembered by its text until it expires: the same text
    /// verifies the same way (the keys are the process's), and the signature check and the
    /// claims' decoding were 5% of the server's samples on a by-id lookup.
    ///
    /// # Errors
    /// UNAUTHENTICATED for any invalid token.
    pub fn verify(&self, token: &str) -> Result<Verified, AppError> {
        let now = Utc::now();
        let fresh = |v: &Verified| now <= v.expires + chrono::Duration::seconds(LEEWAY);
        let remembered = self.verified.lock().unwrap_or_else(|e| e.into_inner()).get(token).copied();
        if let Some(v) = remembered.filter(fresh) {
            return Ok(v);
        }
        let verified = self.decode(token)?;
        let mut tokens = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if tokens.len() >= REMEMBERED {
            tokens.retain(|_, v| fresh(v));
            if tokens.len() >= REMEMBERED {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), verified);
        Ok(verified)
    }

    fn decode(&self, token: &str) -> Result<Verified, AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY.unsigned_abs();
        let data = decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            AppError::Unauthenticated("invalid or expired token")
        })?;
        let user_id =
            Uuid::parse_str(&data.claims.sub).map_err(|_| AppError::Unauthenticated("invalid or expired token"))?;
        let expires = DateTime::from_timestamp(data.claims.exp, 0).unwrap_or_else(Utc::now);
        Ok(Verified { user_id, session_version: data.claims.sv, expires })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> entity::user::Model {
        let now = Utc::now();
        entity::user::Model {
            id: Uuid::now_v7(),
            email: "a@example.com".into(),
            name: "a".into(),
            password_hash: String::new(),
            role: entity::enums::Role::Admin,
            department_id: Uuid::now_v7(),
            active: true,
            session_version: 3,
            service_account: false,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn lifetimes_are_capped_and_expiry_is_read_back() {
        let keys = JwtKeys::new(
            b"0123456789abcdef0123456789abcdef",
            "crm".into(),
            "crm-api".into(),
            chrono::Duration::hours(1),
            chrono::Duration::days(30),
        );
        let u = user();
        for days in [31, 365 * 10] {
            let refused = keys.issue(&u, Some(chrono::Duration::days(days))).unwrap_err();
            assert_eq!(refused.code(), "VALIDATION", "{days} days");
        }
        assert_eq!(keys.issue(&u, Some(chrono::Duration::seconds(59))).unwrap_err().code(), "VALIDATION");
        let (token, expires) = keys.issue(&u, Some(chrono::Duration::days(30))).unwrap();
        let read = keys.verify(&token).unwrap();
        assert_eq!((read.user_id, read.expires.timestamp(), read.session_version), (u.id, expires.timestamp(), 3));
    }
}
