//! Webhooks (`docs/webhooks.md`): subscriptions of receiver URLs to domain events.
//!
//! - A webhook speaks with the grants of its **account**: an API key's service account
//!   (a key manages its own webhooks; an administrator may make one for a key), or the
//!   administrator who made it. It hears only of records that account may read, and its
//!   payloads are what that account would read (`webhooks.rs` renders them through the
//!   GraphQL schema as the account).
//! - Events are written to an **outbox** in the transaction of the change ([`outbox`]),
//!   fanned out to one delivery per subscriber, and each delivery's attempts are claimed
//!   by one instance at a time ([`delivery`]).
//! - The signing secret (`whsec_…`) is shown when made or rotated and kept sealed; after a
//!   rotation the old one keeps signing beside the new for a day.
pub mod delivery;
pub mod outbox;
pub mod signing;
pub mod target;

use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::store::{save, write};
use crate::kernel::vault::Keyring;
use crate::kernel::{new_id, now, required_text};
use chrono::{DateTime, Utc};
use entity::enums::{Action, Resource, Tier, WebhookEventKind};
use entity::{api_key, department, webhook};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// How webhooks are delivered (`CRM_WEBHOOK_*`, `docs/webhooks.md`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Plain `http://` and private, loopback and link-local receivers (development, an
    /// intranet); off by default.
    pub allow_private: bool,
    /// Longest wait for a receiver's answer.
    pub timeout: std::time::Duration,
    /// The first retry's delay; each further one doubles, up to six hours.
    pub retry_base: std::time::Duration,
    /// Attempts of one delivery before it fails.
    pub max_attempts: i32,
    /// Failed attempts in a row after which a webhook is disabled.
    pub disable_after: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            timeout: std::time::Duration::from_secs(10),
            retry_base: std::time::Duration::from_secs(30),
            max_attempts: 12,
            disable_after: 50,
        }
    }
}

impl Settings {
    /// How long a claimed attempt is an instance's: the receiver's time, rendering and
    /// recording the outcome. After it another instance may try again.
    pub fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.timeout * 2).unwrap_or(chrono::Duration::minutes(1))
            + chrono::Duration::seconds(5)
    }
}

/// Most webhooks one account may have.
const MAX_PER_ACCOUNT: u64 = 25;

/// How long the old secret signs beside the new one after a rotation.
const ROTATION_OVERLAP_HOURS: i64 = 24;

/// The field a webhook's secret is sealed under.
pub(crate) const SECRET_FIELD: &str = "webhook_secret";

/// A new webhook.
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEventKind>,
    pub department_id: Option<Uuid>,
    pub tiers: Vec<Tier>,
    /// The key the webhook speaks for (administrators; a key's own webhooks are its own).
    pub api_key_id: Option<Uuid>,
}

/// Changes to a webhook; `None` leaves a field as it is.
#[derive(Default)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEventKind>>,
    /// `Some(None)` removes the department filter.
    pub department_id: Option<Option<Uuid>>,
    pub tiers: Option<Vec<Tier>>,
    /// `true` enables a disabled webhook again (its failure count starts over).
    pub active: Option<bool>,
}

/// A webhook with its secret, as made or rotated.
pub struct WithSecret {
    pub webhook: webhook::Model,
    pub secret: String,
}

/// Who manages webhooks: an administrator (user administration of scope ALL) all of them,
/// an API key its own.
enum Manager {
    Admin,
    /// The key's id.
    Key(Uuid),
}

async fn manager(db: &impl ConnectionTrait, actor: &Actor, action: Action) -> AppResult<Manager> {
    if actor.user.service_account {
        let key = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(actor.id()))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(db)
            .await?
            .ok_or(AppError::Forbidden("this account has no live API key".into()))?;
        return Ok(Manager::Key(key.id));
    }
    actor.require_all(Resource::User, action)?;
    Ok(Manager::Admin)
}

/// Whether `manager` may see and change `hook`.
fn manages(manager: &Manager, hook: &webhook::Model) -> bool {
    match manager {
        Manager::Admin => true,
        Manager::Key(key) => hook.api_key_id == Some(*key),
    }
}

/// The stored list of event types.
fn join_events(events: &[WebhookEventKind]) -> String {
    let mut kinds: Vec<&str> = events.iter().map(|k| k.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(",")
}

/// A webhook's event types.
pub fn events_of(hook: &webhook::Model) -> Vec<WebhookEventKind> {
    hook.events.split(',').filter_map(WebhookEventKind::parse).collect()
}

fn join_tiers(tiers: &[Tier]) -> String {
    let mut t: Vec<&str> = tiers.iter().map(|t| t.as_str()).collect();
    t.sort_unstable();
    t.dedup();
    t.join(",")
}

/// A webhook's tier filter (empty: every tier).
pub fn tiers_of(hook: &webhook::Model) -> Vec<Tier> {
    hook.tiers.split(',').filter_map(Tier::parse).collect()
}

/// A new signing secret.
fn new_secret() -> String {
    format!("whsec_{}", crate::kernel::random_secret())
}

/// Checks the fields every write of a webhook shares.
async fn check(
    db: &impl ConnectionTrait,
    settings: &Settings,
    v: &mut Violations,
    url: Option<&str>,
    events: Option<&[WebhookEventKind]>,
    department_id: Option<Uuid>,
) -> AppResult<()> {
    if let Some(url) = url
        && let Err(message) = target::check_url(url, settings.allow_private)
    {
        v.add("url", message);
    }
    if events.is_some_and(<[_]>::is_empty) {
        v.add("events", "name at least one event");
    }
    if let Some(id) = department_id
        && department::Entity::find_by_id(id).one(db).await?.is_none()
    {
        v.add("departmentId", "no such department");
    }
    Ok(())
}

/// Makes a webhook; its secret is in the answer.
///
/// # Errors
/// FORBIDDEN (neither an administrator nor an API key; a key naming another key);
/// NOT_FOUND (the API key); VALIDATION (every bad field: name, URL, no events, unknown
/// department, too many webhooks).
pub async fn create(
    db: &DatabaseConnection,
    vault: &Keyring,
    settings: &Settings,
    actor: &Actor,
    input: NewWebhook,
) -> AppResult<WithSecret> {
    let by = manager(db, actor, Action::Create).await?;
    // The key the webhook speaks for, and whose grants (its account's) it reads with.
    let (key_id, account_id) = match (&by, input.api_key_id) {
        (Manager::Key(own), None) => (Some(*own), actor.id()),
        (Manager::Key(own), Some(id)) if id == *own => (Some(*own), actor.id()),
        (Manager::Key(_), Some(_)) => {
            return Err(AppError::Forbidden("an API key manages its own webhooks only".into()));
        }
        (Manager::Admin, Some(id)) => {
            let key = api_key::Entity::find_by_id(id)
                .filter(api_key::Column::RevokedAt.is_null())
                .one(db)
                .await?
                .ok_or(AppError::NotFound("API key"))?;
            (Some(key.id), key.user_id)
        }
        (Manager::Admin, None) => (None, actor.id()),
    };
    let mut v = Violations::new();
    let name = required_text(&mut v, "name", &input.name, 100);
    let url = input.url.trim().to_string();
    check(db, settings, &mut v, Some(&url), Some(&input.events), input.department_id).await?;
    let held =
        sea_orm::PaginatorTrait::count(webhook::Entity::find().filter(webhook::Column::AccountId.eq(account_id)), db)
            .await?;
    if held >= MAX_PER_ACCOUNT {
        v.add("url", format!("an account may have at most {MAX_PER_ACCOUNT} webhooks"));
    }
    v.into_result()?;
    let id = new_id();
    let secret = new_secret();
    let at = now();
    let hook = write(db, async |txn| {
        let hook = webhook::ActiveModel {
            id: Set(id),
            name: Set(name.clone()),
            url: Set(url.clone()),
            account_id: Set(account_id),
            api_key_id: Set(key_id),
            events: Set(join_events(&input.events)),
            department_id: Set(input.department_id),
            tiers: Set(join_tiers(&input.tiers)),
            secret: Set(vault.seal(SECRET_FIELD, id, &secret)),
            previous_secret: Set(None),
            previous_until: Set(None),
            active: Set(true),
            disabled_reason: Set(None),
            disabled_at: Set(None),
            consecutive_failures: Set(0),
            created_by: Set(actor.id()),
            created_at: Set(at),
            updated_at: Set(at),
            version: Set(1),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Webhook, hook.id, None, Some(&hook)).await?;
        Ok(hook)
    })
    .await?;
    Ok(WithSecret { webhook: hook, secret })
}

/// The webhook `id` if the caller manages it (NOT_FOUND otherwise: a key learns nothing
/// of others' webhooks).
async fn managed(
    db: &impl ConnectionTrait,
    actor: &Actor,
    action: Action,
    id: Uuid,
) -> AppResult<(Manager, webhook::Model)> {
    let by = manager(db, actor, action).await?;
    let hook = webhook::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|h| manages(&by, h))
        .ok_or(AppError::NotFound("webhook"))?;
    Ok((by, hook))
}

/// Changes a webhook if `version` is still its version.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND, VALIDATION, CONFLICT (a stale version).
pub async fn update(
    db: &DatabaseConnection,
    settings: &Settings,
    actor: &Actor,
    id: Uuid,
    version: i32,
    patch: WebhookPatch,
) -> AppResult<webhook::Model> {
    let (_, old) = managed(db, actor, Action::Update, id).await?;
    crate::kernel::store::check_version::<webhook::Entity>(&old, Some(version))?;
    let mut v = Violations::new();
    let name = patch.name.as_deref().map(|n| required_text(&mut v, "name", n, 100));
    let url = patch.url.as_deref().map(|u| u.trim().to_string());
    check(db, settings, &mut v, url.as_deref(), patch.events.as_deref(), patch.department_id.flatten()).await?;
    v.into_result()?;
    write(db, async |txn| {
        let mut am: webhook::ActiveModel = old.clone().into();
        if let Some(name) = name {
            am.name = Set(name);
        }
        if let Some(url) = url {
            am.url = Set(url);
        }
        if let Some(events) = &patch.events {
            am.events = Set(join_events(events));
        }
        if let Some(department_id) = patch.department_id {
            am.department_id = Set(department_id);
        }
        if let Some(tiers) = &patch.tiers {
            am.tiers = Set(join_tiers(tiers));
        }
        match patch.active {
            Some(true) if !old.active => {
                am.active = Set(true);
                am.disabled_reason = Set(None);
                am.disabled_at = Set(None);
                am.consecutive_failures = Set(0);
            }
            Some(false) if old.active => {
                am.active = Set(false);
                am.disabled_reason = Set(Some("disabled by a person".into()));
                am.disabled_at = Set(Some(now()));
            }
            _ => {}
        }
        save::<webhook::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await
    })
    .await
}

/// A new signing secret; the old one signs beside it for a day, so that receivers can
/// switch without losing a delivery.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn rotate_secret(db: &DatabaseConnection, vault: &Keyring, actor: &Actor, id: Uuid) -> AppResult<WithSecret> {
    let (_, old) = managed(db, actor, Action::Update, id).await?;
    let secret = new_secret();
    let hook = write(db, async |txn| {
        let mut am: webhook::ActiveModel = old.clone().into();
        am.previous_secret = Set(Some(old.secret.clone()));
        am.previous_until = Set(Some(now() + chrono::Duration::hours(ROTATION_OVERLAP_HOURS)));
        am.secret = Set(vault.seal(SECRET_FIELD, id, &secret));
        save::<webhook::Entity>(txn, Some(actor.id()), Verb::RotateSecret, &old, am).await
    })
    .await?;
    Ok(WithSecret { webhook: hook, secret })
}

/// Deletes a webhook with its deliveries and their log.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn delete(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<webhook::Model> {
    let (_, old) = managed(db, actor, Action::Delete, id).await?;
    write(db, async |txn| {
        delivery::delete_of(txn, id).await?;
        webhook::Entity::delete_by_id(id).exec(txn).await?;
        change::record(txn, Some(actor.id()), Verb::Delete, Subject::Webhook, id, Some(&old), None).await?;
        Ok(old.clone())
    })
    .await
}

/// The webhooks the caller manages, newest first.
///
/// # Errors
/// FORBIDDEN, VALIDATION (paging).
pub async fn list(db: &DatabaseConnection, actor: &Actor, args: &PageArgs) -> AppResult<Page<webhook::Model>> {
    let by = manager(db, actor, Action::Read).await?;
    let mut q = webhook::Entity::find();
    if let Manager::Key(key) = &by {
        q = q.filter(webhook::Column::ApiKeyId.eq(*key));
    }
    let keys = [SortKey::new("createdAt", webhook::Column::CreatedAt, true, |m: &webhook::Model| {
        SortValue::Time(m.created_at)
    })];
    paginate(db, q, &keys, webhook::Column::Id, |m| m.id, args).await
}

/// One webhook the caller manages.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn get(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<webhook::Model> {
    managed(db, actor, Action::Read, id).await.map(|(_, h)| h)
}

/// The secrets a delivery is signed with: the current one, and the previous one while its
/// overlap lasts.
///
/// # Errors
/// A secret that cannot be unsealed (a data key gone).
pub fn signing_secrets(vault: &Keyring, hook: &webhook::Model, at: DateTime<Utc>) -> AppResult<Vec<String>> {
    let mut out = vec![vault.open(SECRET_FIELD, hook.id, &hook.secret)?];
    if let (Some(previous), Some(until)) = (&hook.previous_secret, hook.previous_until)
        && at < until
    {
        out.push(vault.open(SECRET_FIELD, hook.id, previous)?);
    }
    Ok(out)
}

pub use crate::kernel::change::disable_webhooks as disable;

/// The field a delivery's kept payload is sealed under (bound to the delivery).
pub fn payload_field(delivery: Uuid) -> String {
    format!("webhook_payload:{delivery}")
}

/// Re-seals under the current data key the webhook secrets and kept payloads sealed under
/// an older one (`seal::reseal`, after a data key rotation). Returns the rows re-sealed.
///
/// # Errors
/// A value that no key opens; database errors.
pub async fn reseal(db: &DatabaseConnection, vault: &Keyring) -> AppResult<u64> {
    use sea_orm::sea_query::Expr;
    let mut done = 0;
    for hook in webhook::Entity::find().all(db).await? {
        let stale = |v: &str| !vault.is_current(v);
        if !stale(&hook.secret) && !hook.previous_secret.as_deref().is_some_and(stale) {
            continue;
        }
        let again = |v: &str| -> AppResult<String> {
            Ok(vault.seal(SECRET_FIELD, hook.id, &vault.open(SECRET_FIELD, hook.id, v)?))
        };
        let previous = hook.previous_secret.as_deref().map(again).transpose()?;
        // Only if unchanged meanwhile (a rotation wins).
        done += webhook::Entity::update_many()
            .col_expr(webhook::Column::Secret, Expr::value(again(&hook.secret)?))
            .col_expr(webhook::Column::PreviousSecret, Expr::value(previous))
            .filter(webhook::Column::Id.eq(hook.id))
            .filter(webhook::Column::Secret.eq(hook.secret.clone()))
            .exec(db)
            .await?
            .rows_affected;
    }
    let mut after = Uuid::nil();
    loop {
        use entity::webhook_delivery::{Column as D, Entity as Deliveries};
        let rows: Vec<(Uuid, Uuid, Option<String>)> = sea_orm::QuerySelect::limit(
            sea_orm::QueryOrder::order_by_asc(
                sea_orm::QuerySelect::columns(
                    sea_orm::QuerySelect::select_only(Deliveries::find()),
                    [D::Id, D::EventId, D::Body],
                )
                .filter(D::Id.gt(after))
                .filter(D::Body.is_not_null()),
                D::Id,
            ),
            500,
        )
        .into_tuple()
        .all(db)
        .await?;
        let Some(last) = rows.last() else { return Ok(done) };
        after = last.0;
        for (id, event, body) in rows {
            let Some(stored) = body.filter(|b| !vault.is_current(b)) else { continue };
            let field = payload_field(id);
            let plain = vault.open(&field, event, &stored)?;
            done += Deliveries::update_many()
                .col_expr(D::Body, Expr::value(vault.seal(&field, event, &plain)))
                .filter(D::Id.eq(id))
                .filter(D::Body.eq(stored))
                .exec(db)
                .await?
                .rows_affected;
        }
    }
}
