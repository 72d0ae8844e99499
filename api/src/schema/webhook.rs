//! Webhooks (`docs/webhooks.md`): administrators and API keys subscribe receiver URLs to
//! domain events and read each delivery's log.
use super::common::{actor, connection, db, page_args, parse_id, state};
use super::enums::{DeliveryStatus, Tier, WebhookEventKind};
use super::error::ResultExt;
use super::user::User;
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_attempt, webhook_delivery};
use service::webhook as svc;
use service::webhook::{NewWebhook, WebhookPatch, delivery};

/// Attempts shown per delivery.
const LOG_PER_DELIVERY: usize = 20;

/// A webhook, without its secret.
pub struct Webhook(pub webhook::Model);

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Where deliveries are POSTed.
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn events(&self) -> Vec<WebhookEventKind> {
        svc::events_of(&self.0).into_iter().map(Into::into).collect()
    }
    /// Only customers of this department and those below it; null: every department the
    /// account may read.
    async fn department_id(&self) -> Option<ID> {
        self.0.department_id.map(|d| ID(d.to_string()))
    }
    /// Only customers of these tiers; empty: every tier.
    async fn tiers(&self) -> Vec<Tier> {
        svc::tiers_of(&self.0).into_iter().map(Into::into).collect()
    }
    /// The API key the webhook belongs to; null for one an administrator made for
    /// themself.
    async fn api_key_id(&self) -> Option<ID> {
        self.0.api_key_id.map(|d| ID(d.to_string()))
    }
    /// Whose read access decides what the webhook hears and what its payloads hold.
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::loaders::user(ctx, self.0.account_id).await
    }
    /// False while disabled (by a person, a 410 answer, too many failures in a row, a
    /// revoked key): nothing is sent, and events meanwhile are not queued for it.
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }
    /// Failed attempts since the last delivered one.
    async fn consecutive_failures(&self) -> i32 {
        self.0.consecutive_failures
    }
    /// Until then the secret before the last rotation signs beside the current one.
    async fn previous_secret_until(&self) -> Option<DateTime<Utc>> {
        self.0.previous_secret.as_ref().and(self.0.previous_until)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

connection!(WebhookConnection, WebhookEdge, Webhook, "webhooks");

/// One attempt of a delivery.
#[derive(SimpleObject)]
pub struct WebhookAttempt {
    pub started_at: DateTime<Utc>,
    /// Null while in flight, or when its instance stopped before the answer.
    pub finished_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status; null when it did not answer.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: Option<i32>,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(a: webhook_attempt::Model) -> Self {
        WebhookAttempt {
            started_at: a.started_at,
            finished_at: a.finished_at,
            status_code: a.status_code,
            error: a.error,
            latency_ms: a.latency_ms,
        }
    }
}

/// One event to one webhook.
pub struct WebhookDelivery {
    row: webhook_delivery::Model,
    log: Vec<webhook_attempt::Model>,
}

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn webhook_id(&self) -> ID {
        ID(self.row.webhook_id.to_string())
    }
    /// The event's id, the same in every attempt: receivers deduplicate on it.
    async fn event_id(&self) -> ID {
        ID(self.row.event_id.to_string())
    }
    async fn event_type(&self) -> WebhookEventKind {
        self.row.event_kind.into()
    }
    async fn status(&self) -> DeliveryStatus {
        self.row.status.into()
    }
    /// Attempts made, redeliveries included.
    async fn attempts(&self) -> i32 {
        self.row.attempts
    }
    /// When the next attempt is due (PENDING).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.row.status == entity::enums::DeliveryStatus::Pending).then_some(self.row.next_attempt_at)
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.row.delivered_at
    }
    async fn last_status_code(&self) -> Option<i32> {
        self.row.last_status_code
    }
    async fn last_error(&self) -> Option<&str> {
        self.row.last_error.as_deref()
    }
    async fn last_latency_ms(&self) -> Option<i32> {
        self.row.last_latency_ms
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// The latest attempts, newest first (at most 20).
    async fn log(&self) -> Vec<WebhookAttempt> {
        self.log.iter().cloned().map(Into::into).collect()
    }
}

connection!(WebhookDeliveryConnection, WebhookDeliveryEdge, WebhookDelivery, "webhook deliveries");

/// A new webhook.
#[derive(InputObject)]
pub struct CreateWebhookInput {
    /// At most 100 characters.
    pub name: String,
    /// `https://` (plain `http://` and private addresses only where the server allows
    /// them), without credentials.
    pub url: String,
    /// At least one.
    pub events: Vec<WebhookEventKind>,
    /// Only customers of this department and those below it.
    pub department_id: Option<ID>,
    /// Only customers of these tiers.
    #[graphql(default)]
    pub tiers: Vec<Tier>,
    /// Administrators: the API key the webhook speaks for (its grants decide what is
    /// sent). An API key's webhooks are its own.
    pub api_key_id: Option<ID>,
}

/// Changes to a webhook; what is left out stays.
#[derive(InputObject)]
pub struct UpdateWebhookInput {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEventKind>>,
    /// Null removes the department filter.
    pub department_id: MaybeUndefined<ID>,
    pub tiers: Option<Vec<Tier>>,
    /// `true` enables a disabled webhook (its failure count starts over); `false`
    /// disables it.
    pub active: Option<bool>,
}

/// A webhook with its signing secret.
#[derive(SimpleObject)]
pub struct WebhookWithSecret {
    pub webhook: Webhook,
    /// The signing secret, shown this once: deliveries carry
    /// `X-CRM-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    pub secret: String,
}

fn optional_id(field: &str, id: Option<&ID>) -> Result<Option<uuid::Uuid>> {
    id.map(|id| parse_id(field, id)).transpose().gql()
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Webhooks, newest first: every one for administrators, its own for an API key.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WebhookConnection> {
        let page = svc::list(db(ctx), actor(ctx)?, &page_args(first, after)).await.gql()?;
        Ok(WebhookConnection(page.map(Webhook)))
    }

    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let id = parse_id("id", &id).gql()?;
        svc::get(db(ctx), actor(ctx)?, id).await.map(Webhook).gql()
    }

    /// A webhook's deliveries, newest first, with their latest attempts.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        #[graphql(default)] status: Vec<DeliveryStatus>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WebhookDeliveryConnection> {
        let id = parse_id("webhookId", &webhook_id).gql()?;
        let statuses: Vec<_> = status.into_iter().map(Into::into).collect();
        let page = delivery::list(db(ctx), actor(ctx)?, id, &statuses, &page_args(first, after)).await.gql()?;
        let ids = page.edges.iter().map(|(_, d)| d.id).collect();
        let mut logs = delivery::attempts(db(ctx), ids, LOG_PER_DELIVERY).await.gql()?;
        Ok(WebhookDeliveryConnection(
            page.map(|row| WebhookDelivery { log: logs.remove(&row.id).unwrap_or_default(), row }),
        ))
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Subscribes a receiver to events (user administrators, for themselves or an API
    /// key; an API key for itself). The secret is in the answer only.
    async fn create_webhook(&self, ctx: &Context<'_>, input: CreateWebhookInput) -> Result<WebhookWithSecret> {
        let new = NewWebhook {
            name: input.name,
            url: input.url,
            events: input.events.into_iter().map(Into::into).collect(),
            department_id: optional_id("departmentId", input.department_id.as_ref())?,
            tiers: input.tiers.into_iter().map(Into::into).collect(),
            api_key_id: optional_id("apiKeyId", input.api_key_id.as_ref())?,
        };
        let s = state(ctx);
        let made = svc::create(db(ctx), &s.privacy.keys, &s.webhooks, actor(ctx)?, new).await.gql()?;
        Ok(WebhookWithSecret { webhook: Webhook(made.webhook), secret: made.secret })
    }

    /// Changes a webhook if `version` is still its version (CONFLICT otherwise).
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i32,
        input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let id = parse_id("id", &id).gql()?;
        let department_id = match &input.department_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(parse_id("departmentId", d).gql()?)),
        };
        let patch = WebhookPatch {
            name: input.name,
            url: input.url,
            events: input.events.map(|e| e.into_iter().map(Into::into).collect()),
            department_id,
            tiers: input.tiers.map(|t| t.into_iter().map(Into::into).collect()),
            active: input.active,
        };
        svc::update(db(ctx), &state(ctx).webhooks, actor(ctx)?, id, version, patch).await.map(Webhook).gql()
    }

    /// A new signing secret, in the answer only; the old one keeps signing beside it
    /// (a second `v1=`) for 24 hours.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookWithSecret> {
        let id = parse_id("id", &id).gql()?;
        let made = svc::rotate_secret(db(ctx), &state(ctx).privacy.keys, actor(ctx)?, id).await.gql()?;
        Ok(WebhookWithSecret { webhook: Webhook(made.webhook), secret: made.secret })
    }

    /// Deletes a webhook with its deliveries and their log.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let id = parse_id("id", &id).gql()?;
        svc::delete(db(ctx), actor(ctx)?, id).await.map(Webhook).gql()
    }

    /// Sends a delivery again, now, with the same payload and event id and a fresh round
    /// of attempts. CONFLICT while an attempt is in flight.
    async fn redeliver_webhook(&self, ctx: &Context<'_>, delivery_id: ID) -> Result<WebhookDelivery> {
        let id = parse_id("deliveryId", &delivery_id).gql()?;
        let row = delivery::redeliver(db(ctx), actor(ctx)?, id).await.gql()?;
        let log = delivery::attempts(db(ctx), vec![row.id], LOG_PER_DELIVERY).await.gql()?.remove(&row.id);
        Ok(WebhookDelivery { row, log: log.unwrap_or_default() })
    }
}
