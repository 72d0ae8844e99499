//! Sessions: login, refresh tokens, logout.
//!
//! - `login` checks the back-off ([`crate::access::throttle`]), then the password, and issues a
//!   short access token (a JWT carrying the user's session version) and a refresh token.
//! - A refresh token is opaque (256 random bits), stored as its SHA-256 only, and good for
//!   one exchange: `refresh` replaces it with a new one of the same family and issues a
//!   new access token. The successor is an HMAC of the presented token under the server's
//!   secret ([`JwtKeys::successor`]), so within a short grace (`refresh_grace`, 30 s) the
//!   same token presented again (a second browser tab refreshing at once, a retried
//!   request) gets the same new pair. Presenting a replaced token after the grace means two
//!   parties hold it: the whole family is revoked and the event audited (`refresh_reuse`).
//! - A password change, a deactivation and `logoutEverywhere` raise the user's session
//!   version ([`end_sessions`]): every earlier access token is refused and every refresh
//!   token revoked, on every instance (the change travels as
//!   [`Signal::UserChanged`](crate::kernel::events::Signal)).
use crate::access::live::Events;
use crate::access::throttle::{self, LoginLimits};
use crate::access::{Actor, JwtKeys, password};
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::store::{save, write};
use crate::kernel::{new_id, now};
use chrono::{DateTime, Utc};
use entity::enums::{Action, Resource};
use entity::{refresh_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use uuid::Uuid;

/// What a login or a refresh hands out.
pub struct Issued {
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub user: user::Model,
}

fn digest(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Checks e-mail and password and opens a session.
///
/// # Errors
/// RATE_LIMITED while the account or the client address is blocked; UNAUTHENTICATED for a
/// wrong e-mail or password or an inactive user (one message for all).
pub async fn login(
    db: &DatabaseConnection,
    keys: &JwtKeys,
    limits: &LoginLimits,
    email: &str,
    password_text: &str,
    address: Option<IpAddr>,
) -> AppResult<Issued> {
    let done = check_and_open(db, keys, limits, email, password_text, address).await;
    // Logins by outcome, for the operator's metrics (`crm_logins_total`).
    let outcome = match &done {
        Ok(_) => "success",
        Err(AppError::RateLimited { .. }) => "throttled",
        Err(AppError::Unauthenticated(_)) => "failure",
        Err(_) => "error",
    };
    metrics::counter!("crm_logins_total", "outcome" => outcome).increment(1);
    done
}

async fn check_and_open(
    db: &DatabaseConnection,
    keys: &JwtKeys,
    limits: &LoginLimits,
    email: &str,
    password_text: &str,
    address: Option<IpAddr>,
) -> AppResult<Issued> {
    let email = email.trim().to_lowercase();
    let attempt = throttle::begin(db, limits, &email, address, now()).await?;
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .filter(user::Column::ServiceAccount.eq(false))
        .one(db)
        .await?;
    let ok = password::verify(password_text.to_string(), found.as_ref().map(|u| u.password_hash.clone())).await;
    match found {
        Some(u) if ok && u.active => {
            throttle::succeeded(db, attempt, now()).await?;
            write(db, async |txn| issue(txn, keys, &u, new_id(), None).await).await
        }
        found => {
            // Logged and audited without the password (nor, for an unknown address, the
            // address: it may be someone's mistyped personal e-mail).
            match &found {
                Some(u) => {
                    tracing::warn!(user = %u.id, active = u.active, "failed login");
                    change::record::<user::Model>(db, None, Verb::LoginFailed, Subject::User, u.id, None, None).await?;
                }
                None => tracing::warn!("failed login for an unknown e-mail address"),
            }
            Err(AppError::Unauthenticated("wrong e-mail or password"))
        }
    }
}

/// Issues an access token and a new refresh token of `family`: `refresh_token` when given
/// (the successor of an exchanged one), else a random one.
async fn issue(
    db: &impl ConnectionTrait,
    keys: &JwtKeys,
    user: &user::Model,
    family: Uuid,
    refresh_token: Option<String>,
) -> AppResult<Issued> {
    use chrono::SubsecRound;
    // Whole seconds: a repeated exchange within the grace signs the same access token
    // from the stored `created_at`.
    let at = now().trunc_subsecs(0);
    let (access_token, expires_at) = keys.issue_at(user, None, at)?;
    let refresh_token = refresh_token.unwrap_or_else(|| format!("rt_{}", crate::kernel::random_secret()));
    let refresh_expires_at = at + keys.refresh_ttl;
    refresh_token::ActiveModel {
        id: Set(new_id()),
        family_id: Set(family),
        user_id: Set(user.id),
        token_hash: Set(digest(&refresh_token)),
        session_version: Set(user.session_version),
        created_at: Set(at),
        expires_at: Set(refresh_expires_at),
        replaced_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(Issued { access_token, expires_at, refresh_token, refresh_expires_at, user: user.clone() })
}

/// Exchanges a refresh token for a new access token and a new refresh token.
///
/// # Errors
/// UNAUTHENTICATED for an unknown, expired, revoked or already used token (the last also
/// revokes its family), or when the user's session has ended.
pub async fn refresh(db: &DatabaseConnection, keys: &JwtKeys, token: &str) -> AppResult<Issued> {
    let hash = digest(token.trim());
    // A refusal that revokes must still commit: the transaction returns it as a value.
    let outcome = write(db, async |txn| {
        let at = now();
        let Some(row) = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(&hash))
            .lock_exclusive()
            .one(txn)
            .await?
        else {
            return Ok(Err("invalid refresh token"));
        };
        if row.revoked_at.is_some() || row.expires_at <= at {
            return Ok(Err("refresh token expired or revoked; log in again"));
        }
        let user = user::Entity::find_by_id(row.user_id)
            .one(txn)
            .await?
            .filter(|u| u.active && u.session_version == row.session_version);
        let Some(user) = user else {
            revoke_family(txn, row.family_id, at).await?;
            return Ok(Err("this session has ended; log in again"));
        };
        // Only one exchange per token, also against a concurrent one.
        let replaced = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::ReplacedAt, Expr::value(at))
            .filter(refresh_token::Column::Id.eq(row.id))
            .filter(refresh_token::Column::ReplacedAt.is_null())
            .exec(txn)
            .await?;
        if replaced.rows_affected == 0 {
            // Two tabs (or a retried request) exchanging the same token at once: within
            // the grace the later ones get the pair the first got.
            if let Some(again) = again_within_grace(txn, keys, &user, &row, token.trim(), at).await? {
                return Ok(Ok(again));
            }
            revoke_family(txn, row.family_id, at).await?;
            tracing::warn!(user = %row.user_id, family = %row.family_id, "refresh token reused; family revoked");
            change::record::<user::Model>(txn, None, Verb::RefreshReuse, Subject::User, row.user_id, None, None)
                .await?;
            return Ok(Err("refresh token already used; this login has ended everywhere, log in again"));
        }
        Ok(Ok(issue(txn, keys, &user, row.family_id, Some(keys.successor(token.trim()))).await?))
    })
    .await?;
    outcome.map_err(AppError::Unauthenticated)
}

/// The pair an exchange of `row` handed out, when that exchange was at most the grace ago
/// and its successor is still live: the successor's refresh token is derived again from
/// the presented one, the access token signed again as of the successor's issue time.
async fn again_within_grace(
    txn: &impl ConnectionTrait,
    keys: &JwtKeys,
    user: &user::Model,
    row: &refresh_token::Model,
    token: &str,
    at: DateTime<Utc>,
) -> AppResult<Option<Issued>> {
    let Some(replaced_at) = row.replaced_at else { return Ok(None) };
    if at - replaced_at > keys.refresh_grace {
        return Ok(None);
    }
    let refresh_token = keys.successor(token);
    let successor = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(digest(&refresh_token)))
        .filter(refresh_token::Column::FamilyId.eq(row.family_id))
        .one(txn)
        .await?;
    // A successor already exchanged in turn is not handed out again: that is a reuse.
    let Some(successor) = successor.filter(|s| s.revoked_at.is_none() && s.replaced_at.is_none() && s.expires_at > at)
    else {
        return Ok(None);
    };
    let (access_token, expires_at) = keys.issue_at(user, None, successor.created_at)?;
    Ok(Some(Issued {
        access_token,
        expires_at,
        refresh_token,
        refresh_expires_at: successor.expires_at,
        user: user.clone(),
    }))
}

async fn revoke_family(db: &impl ConnectionTrait, family: Uuid, at: DateTime<Utc>) -> AppResult<u64> {
    let done = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(at))
        .filter(refresh_token::Column::FamilyId.eq(family))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Ends the login a refresh token belongs to (this device). The access tokens already
/// issued stay valid until they expire; `logoutEverywhere` ends those too.
///
/// # Errors
/// Database errors. An unknown token is not an error: logging out twice is fine.
pub async fn logout(db: &DatabaseConnection, token: &str) -> AppResult<bool> {
    let hash = digest(token.trim());
    write(db, async |txn| {
        let row = refresh_token::Entity::find().filter(refresh_token::Column::TokenHash.eq(&hash)).one(txn).await?;
        match row {
            Some(row) => Ok(revoke_family(txn, row.family_id, now()).await? > 0),
            None => Ok(false),
        }
    })
    .await
}

/// Ends every session of a user (yourself, or anyone for an admin): earlier access tokens
/// are refused, refresh tokens revoked, open WebSockets closed.
///
/// # Errors
/// FORBIDDEN (another user, not an admin), NOT_FOUND.
pub async fn logout_everywhere(
    db: &DatabaseConnection,
    events: &Events,
    actor: &Actor,
    user_id: Option<Uuid>,
) -> AppResult<user::Model> {
    let id = user_id.unwrap_or(actor.id());
    if id != actor.id() {
        actor.require_all(Resource::User, Action::Update)?;
    }
    let saved = write(db, async |txn| {
        let old = crate::access::user::staff(txn, id).await?;
        let mut am: user::ActiveModel = old.clone().into();
        end_sessions(txn, &old, &mut am).await?;
        save::<user::Entity>(txn, Some(actor.id()), Verb::LogoutEverywhere, &old, am).await
    })
    .await?;
    events.publish(Signal::UserChanged(id)).await;
    Ok(saved)
}

/// Raises the user's session version in `am` and revokes the user's refresh tokens, in the
/// caller's transaction. The caller publishes `Signal::UserChanged` after commit.
pub async fn end_sessions(db: &impl ConnectionTrait, old: &user::Model, am: &mut user::ActiveModel) -> AppResult<()> {
    am.session_version = Set(old.session_version + 1);
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now()))
        .filter(refresh_token::Column::UserId.eq(old.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes refresh tokens that expired more than a day ago, stale login counters and
/// idempotency keys past their 24 hours (the scheduler calls it).
///
/// # Errors
/// Database errors.
pub async fn prune(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<u64> {
    let gone = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(at - chrono::Duration::days(1)))
        .exec(db)
        .await?;
    Ok(gone.rows_affected + throttle::prune(db, at).await? + crate::kernel::idempotency::prune(db, at).await?)
}
