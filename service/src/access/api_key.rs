//! API keys for integration partners (`docs/partners.md`).
//!
//! - A key is a credential of its own **service account** (a `user` row marked
//!   `service_account`): it owns what the key creates, is the actor of the key's audit rows,
//!   and goes through the same [`Actor`] and scope code as staff. It cannot log in, is not
//!   staff (it learns only that a duplicate exists, as the integration role does), and is
//!   listed with the keys, not the users.
//! - Its grants are **copied** when the key is made, from a role or given one by one, and
//!   none may reach further than the creator's own grant (scope order NONE < OWN <
//!   DEPARTMENT < ALL; DEPARTMENT and the pool only of a department the creator reaches):
//!   a key never widens afterwards, whatever happens to the role.
//! - The secret (`crm_<8 hex>_<256 random bits>`) is shown once and stored as its
//!   SHA-256 only: 256 random bits need no slow hash, and the lookup is one indexed read.
//! - Revoking deactivates the account and ends its sessions, which every instance hears
//!   at once ([`Signal::UserChanged`]): cached actors and keys are dropped, open
//!   WebSockets closed.
use crate::access::jwt::Verified;
use crate::access::live::Events;
use crate::access::{Actor, login as session};
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::store::write;
use crate::kernel::{new_id, now, required_text};
use chrono::{DateTime, Utc};
use entity::enums::{Action, Resource, Role, Scope};
use entity::{api_key, api_key_grant, department, role_permission, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How a key starts; what tells it from a JWT.
pub const KEY_PREFIX: &str = "crm_";

/// Most grants one key may carry (every resource and action is fewer).
const MAX_GRANTS: usize = 100;

/// The longest a key may live when it has an expiry.
const MAX_LIFETIME_DAYS: i64 = 3 * 366;

/// One grant of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGrant {
    pub resource: Resource,
    pub action: Action,
    pub scope: Scope,
    pub include_pool: bool,
}

impl From<&api_key_grant::Model> for KeyGrant {
    fn from(g: &api_key_grant::Model) -> Self {
        KeyGrant { resource: g.resource, action: g.action, scope: g.scope, include_pool: g.include_pool }
    }
}

/// What a new key needs: its grants from a role or listed.
pub struct NewApiKey {
    pub name: String,
    pub role: Option<Role>,
    pub grants: Option<Vec<KeyGrant>>,
    /// The account's department (DEPARTMENT scopes and the pool): the creator's by default.
    pub department_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key as made: the secret exists only here.
pub struct Created {
    pub key: api_key::Model,
    pub secret: String,
}

/// The stored form of a key.
pub fn digest(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// Whether a grant is for people only: administering users (a key could otherwise make
/// a person, who outlives the key) and changing settings (role grants among them).
pub fn for_people(resource: Resource, action: Action) -> bool {
    (resource == Resource::User && action != Action::Read)
        || (resource == Resource::Settings && action == Action::Update)
}

fn rank(scope: Scope) -> u8 {
    match scope {
        Scope::NoAccess => 0,
        Scope::Own => 1,
        Scope::Department => 2,
        Scope::All => 3,
    }
}

/// Who may manage keys: user administration of scope ALL, as a person (a key makes no keys).
fn require_admin(actor: &Actor, action: Action) -> AppResult<()> {
    if actor.user.service_account {
        return Err(AppError::Forbidden("an API key may not manage API keys".into()));
    }
    actor.require_all(Resource::User, action)
}

/// Makes a key. The secret is in the answer and nowhere else.
///
/// # Errors
/// FORBIDDEN (not a user administrator, or a grant wider than the creator's, each named);
/// VALIDATION (every bad field: name, neither or both of role and grants, a repeated or
/// meaningless grant, an expiry in the past or beyond three years, an unknown
/// department).
pub async fn create(db: &DatabaseConnection, actor: &Actor, input: NewApiKey) -> AppResult<Created> {
    require_admin(actor, Action::Create)?;
    let mut v = Violations::new();
    required_text(&mut v, "name", &input.name, 100);
    let department_id = input.department_id.unwrap_or(actor.user.department_id);
    if department::Entity::find_by_id(department_id).one(db).await?.is_none() {
        v.add("departmentId", "no such department");
    }
    let at = now();
    if let Some(expires) = input.expires_at {
        if expires <= at {
            v.add("expiresAt", "must be in the future");
        } else if expires > at + chrono::Duration::days(MAX_LIFETIME_DAYS) {
            v.add("expiresAt", "must be within three years");
        }
    }
    let (role, grants) = match (input.role, input.grants) {
        (Some(role), None) => {
            let rows = role_permission::Entity::find().filter(role_permission::Column::Role.eq(role)).all(db).await?;
            // A role's people-only grants stay with the role's people.
            let grants = rows
                .iter()
                .filter(|p| !for_people(p.resource, p.action))
                .map(|p| KeyGrant {
                    resource: p.resource,
                    action: p.action,
                    scope: p.scope,
                    include_pool: p.include_pool,
                })
                .collect();
            (role, grants)
        }
        (None, Some(grants)) => {
            if grants.is_empty() || grants.len() > MAX_GRANTS {
                v.add("grants", format!("must hold 1 to {MAX_GRANTS} grants"));
            }
            let mut seen = std::collections::HashSet::new();
            for g in &grants {
                if !seen.insert((g.resource, g.action)) {
                    v.add("grants", format!("{} {} is given twice", g.resource, g.action));
                } else if for_people(g.resource, g.action) && g.scope != Scope::NoAccess {
                    v.add("grants", format!("{} {} is for people, not API keys", g.resource, g.action));
                } else if let Err(AppError::Validation(errors)) =
                    crate::access::permission::check(g.resource, g.action, g.include_pool)
                {
                    for e in errors {
                        v.add("grants", format!("{} {}: {}", g.resource, g.action, e.message));
                    }
                }
            }
            (Role::Integration, grants)
        }
        _ => {
            v.add("role", "give either a role or grants");
            (Role::Integration, Vec::new())
        }
    };
    v.into_result()?;
    // No grant beyond the creator's own: no wider scope, and a key's department (its
    // DEPARTMENT scopes and pool) one the creator reaches.
    let reaches_department =
        |mine: Scope| mine == Scope::All || (mine == Scope::Department && actor.subtree.contains(&department_id));
    let wider: Vec<String> = grants
        .iter()
        .filter(|g| {
            let mine = actor.grant(g.resource, g.action);
            rank(g.scope) > rank(mine.scope)
                || (g.scope == Scope::Department && !reaches_department(mine.scope))
                || (g.include_pool
                    && !reaches_department(mine.scope)
                    && !(mine.include_pool && department_id == actor.user.department_id))
        })
        .map(|g| {
            format!("{} {} {}{}", g.resource, g.action, g.scope, if g.include_pool { " with the pool" } else { "" })
        })
        .collect();
    if !wider.is_empty() {
        return Err(AppError::Forbidden(format!("a key may not reach further than you: {}", wider.join(", "))));
    }
    let grants: Vec<KeyGrant> = grants.into_iter().filter(|g| g.scope != Scope::NoAccess || g.include_pool).collect();
    if grants.is_empty() {
        return Err(AppError::invalid("grants", "a key needs at least one grant beyond NONE"));
    }

    let prefix = format!("{KEY_PREFIX}{:08x}", rand::random::<u32>());
    let secret = format!("{prefix}_{}", crate::kernel::random_secret());
    let name = input.name.trim().to_string();
    let key = write(db, async |txn| {
        let account = user::ActiveModel {
            id: Set(new_id()),
            email: Set(format!("{prefix}@api-keys.invalid")),
            name: Set(format!("API key: {name}")),
            password_hash: Set(String::new()),
            role: Set(role),
            department_id: Set(department_id),
            active: Set(true),
            session_version: Set(1),
            service_account: Set(true),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(txn)
        .await?;
        let key = api_key::ActiveModel {
            id: Set(new_id()),
            user_id: Set(account.id),
            name: Set(name.clone()),
            prefix: Set(prefix.clone()),
            secret_hash: Set(digest(&secret)),
            role: Set(role),
            department_id: Set(department_id),
            created_by: Set(actor.id()),
            created_at: Set(at),
            expires_at: Set(input.expires_at),
            revoked_at: Set(None),
            revoked_by: Set(None),
            last_used_at: Set(None),
        }
        .insert(txn)
        .await?;
        if !grants.is_empty() {
            api_key_grant::Entity::insert_many(grants.iter().map(|g| api_key_grant::ActiveModel {
                api_key_id: Set(key.id),
                resource: Set(g.resource),
                action: Set(g.action),
                scope: Set(g.scope),
                include_pool: Set(g.include_pool),
            }))
            .exec(txn)
            .await?;
        }
        change::record(txn, Some(actor.id()), Verb::Create, Subject::ApiKey, key.id, None, Some(&key)).await?;
        Ok(key)
    })
    .await?;
    Ok(Created { key, secret })
}

/// Revokes a key on every instance at once (revoking a revoked key changes nothing).
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn revoke(db: &DatabaseConnection, events: &Events, actor: &Actor, id: Uuid) -> AppResult<api_key::Model> {
    require_admin(actor, Action::Update)?;
    let (key, changed) = write(db, async |txn| {
        // Locked: concurrent revocations wait and then find it revoked.
        let old =
            api_key::Entity::find_by_id(id).lock_exclusive().one(txn).await?.ok_or(AppError::NotFound("API key"))?;
        if old.revoked_at.is_some() {
            return Ok((old, false));
        }
        let at = now();
        let mut am: api_key::ActiveModel = old.clone().into();
        am.revoked_at = Set(Some(at));
        am.revoked_by = Set(Some(actor.id()));
        let key = am.update(txn).await?;
        if let Some(account) = user::Entity::find_by_id(key.user_id).one(txn).await? {
            let mut am: user::ActiveModel = account.clone().into();
            am.active = Set(false);
            session::end_sessions(txn, &account, &mut am).await?;
            am.updated_at = Set(at);
            am.update(txn).await?;
            // What the key entered goes to its department's pool, as a departing person's.
            crate::access::user::hand_over(txn, actor.id(), &account, None).await?;
            // Its webhooks stop with it: the revocation's change says so (`Change::silences`).
        }
        change::record(txn, Some(actor.id()), Verb::Revoke, Subject::ApiKey, key.id, Some(&old), Some(&key)).await?;
        Ok((key, true))
    })
    .await?;
    if changed {
        events.publish(Signal::UserChanged(key.user_id)).await;
    }
    Ok(key)
}

/// Keys, newest first; revoked ones only when asked for.
///
/// # Errors
/// FORBIDDEN, VALIDATION (paging).
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    include_revoked: bool,
    args: &PageArgs,
) -> AppResult<Page<api_key::Model>> {
    require_admin(actor, Action::Read)?;
    let mut q = api_key::Entity::find();
    if !include_revoked {
        q = q.filter(api_key::Column::RevokedAt.is_null());
    }
    let keys = [SortKey::new("createdAt", api_key::Column::CreatedAt, true, |m: &api_key::Model| {
        SortValue::Time(m.created_at)
    })];
    paginate(db, q, &keys, api_key::Column::Id, |m| m.id, args).await
}

/// One key (administrators).
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn get(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<api_key::Model> {
    require_admin(actor, Action::Read)?;
    api_key::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("API key"))
}

/// A key's grants, by resource and action.
///
/// # Errors
/// Database errors.
pub async fn grants(db: &impl ConnectionTrait, key_id: Uuid) -> AppResult<Vec<api_key_grant::Model>> {
    Ok(api_key_grant::Entity::find()
        .filter(api_key_grant::Column::ApiKeyId.eq(key_id))
        .order_by_asc(api_key_grant::Column::Resource)
        .order_by_asc(api_key_grant::Column::Action)
        .all(db)
        .await?)
}

/// The grants of a service account (its key's), for [`Actor::load`].
///
/// # Errors
/// Database errors.
pub async fn grants_of_account(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Vec<api_key_grant::Model>> {
    let Some(key) = api_key::Entity::find().filter(api_key::Column::UserId.eq(user_id)).one(db).await? else {
        return Ok(Vec::new());
    };
    grants(db, key.id).await
}

/// Checks a presented key: what a verified token would say about its account (its
/// session version, and the key's expiry or a distant one). Records the use.
///
/// # Errors
/// UNAUTHENTICATED for anything but a live, unexpired key of an active account (one
/// message for unknown, revoked and malformed keys).
pub async fn verify(db: &DatabaseConnection, presented: &str) -> AppResult<Verified> {
    let unknown = AppError::Unauthenticated("unknown or revoked API key");
    if !presented.starts_with(KEY_PREFIX) || presented.len() > 128 {
        return Err(unknown);
    }
    let Some(key) = api_key::Entity::find().filter(api_key::Column::SecretHash.eq(digest(presented))).one(db).await?
    else {
        return Err(unknown);
    };
    let at = now();
    if key.revoked_at.is_some() {
        return Err(unknown);
    }
    if key.expires_at.is_some_and(|e| e <= at) {
        return Err(AppError::Unauthenticated("this API key has expired"));
    }
    let account = user::Entity::find_by_id(key.user_id).one(db).await?.filter(|u| u.active).ok_or(unknown)?;
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(at))
        .filter(api_key::Column::Id.eq(key.id))
        .exec(db)
        .await?;
    Ok(Verified {
        user_id: account.id,
        session_version: account.session_version,
        // A key without an expiry lasts until revoked; a WebSocket re-checks it anyway.
        expires: key.expires_at.unwrap_or(at + chrono::Duration::days(MAX_LIFETIME_DAYS)),
    })
}
