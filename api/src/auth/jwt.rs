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
}

/// Keys and settings for issuing and checking tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    /// Lifetime of issued access tokens.
    pub ttl: chrono::Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: String, audience: String, ttl: chrono::Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            audience,
            ttl,
        }
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
        let now = Utc::now();
        let expires = now + ttl.unwrap_or(self.ttl);
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role.to_string(),
            dept: user.department_id.to_string(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)?;
        Ok((token, expires))
    }

    /// Checks signature, algorithm, `exp`, `iss`, `aud` and `sub`; returns the user id.
    ///
    /// # Errors
    /// UNAUTHENTICATED for any invalid token.
    pub fn verify(&self, token: &str) -> Result<Uuid, AppError> {
        self.verify_until(token).map(|(id, _)| id)
    }

    /// As [`verify`](Self::verify), with the moment the token expires (a WebSocket closes
    /// then).
    ///
    /// # Errors
    /// UNAUTHENTICATED.
    pub fn verify_until(&self, token: &str) -> Result<(Uuid, chrono::DateTime<chrono::Utc>), AppError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            tracing::debug!(error = %e, "token refused");
            AppError::Unauthenticated("invalid or expired token")
        })?;
        let id =
            Uuid::parse_str(&data.claims.sub).map_err(|_| AppError::Unauthenticated("invalid or expired token"))?;
        let expires = chrono::DateTime::from_timestamp(data.claims.exp, 0).unwrap_or_else(chrono::Utc::now);
        Ok((id, expires))
    }
}
