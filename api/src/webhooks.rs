//! The webhook worker (`docs/webhooks.md`): fans the outbox out, claims due deliveries,
//! renders each payload as the webhook's account would read it, signs and sends it.
//!
//! Payloads are rendered through the GraphQL schema, as a query run by the webhook's
//! account: the same scope, field groups and sealed fields as any read, so a webhook never
//! carries what its account could not have asked for. The payload is rendered once, at the
//! first attempt, and kept (sealed) for later attempts and redeliveries.
//!
//! Every instance may run the worker: a batch of events is fanned out by one instance, and
//! each attempt is claimed by one (`service/src/webhook/delivery.rs`).
use crate::schema::{CrmSchema, loaders};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use entity::enums::{Action, DeliveryStatus, Resource, WebhookEventKind as Kind};
use entity::{customer, reminder};
use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait};
use serde_json::{Value, json};
use service::access::Actor;
use service::error::{AppError, AppResult};
use service::webhook::delivery::{self, Claimed, Outcome};
use service::webhook::{outbox, payload_field, signing_secrets, target};
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

/// Attempts an instance has in flight at most.
const BATCH: u64 = 32;

use service::webhook::signing::{SIGNATURE_HEADER, signature_header};

const CUSTOMER_FIELDS: &str = "id kind category name gender phone email region industry source importance \
    lifecycleStage tier ownerId departmentId inPublicPool customFields version createdAt updatedAt";

/// What one tick did.
#[derive(Debug, Default, Clone)]
pub struct Tick {
    /// Events fanned out.
    pub dispatched: u64,
    /// Deliveries attempted, with where each now stands.
    pub attempted: Vec<(Uuid, DeliveryStatus)>,
}

/// An instance's webhook worker.
#[derive(Clone)]
pub struct Worker {
    state: AppState,
    schema: CrmSchema,
    client: reqwest::Client,
}

impl Worker {
    /// A worker for this instance.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(state: &AppState) -> Result<Worker, String> {
        install_tls();
        let settings = state.webhooks;
        let client = reqwest::Client::builder()
            .user_agent(concat!("crm-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Admitted { allow_private: settings.allow_private }))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        let schema = crate::schema::builder(state.limits).data(state.clone()).finish();
        Ok(Worker { state: state.clone(), schema, client })
    }

    /// One round at `at`: fans out the events not yet dispatched, then claims the
    /// deliveries due by `at` and makes their attempts (concurrently), until none is left
    /// due. The worker calls it with the current time; tests with the time they need.
    ///
    /// # Errors
    /// Database errors.
    pub async fn tick(&self, at: DateTime<Utc>) -> AppResult<Tick> {
        let mut out = Tick { dispatched: outbox::fan_out(&self.state.db, at).await?, ..Tick::default() };
        loop {
            // Each batch at its own time: a lease counts from its claim, not from the round's
            // start (a long round would hand out leases already run out).
            let at = std::cmp::max(at, Utc::now());
            let claimed = delivery::claim(&self.state.db, &self.state.webhooks, at, BATCH).await?;
            if claimed.is_empty() {
                return Ok(out);
            }
            let done: Vec<AppResult<(Uuid, DeliveryStatus)>> = futures::stream::iter(claimed)
                .map(|c| async move {
                    let id = c.delivery.id;
                    self.attempt(c).await.map(|s| (id, s))
                })
                .buffer_unordered(BATCH as usize)
                .collect()
                .await;
            for d in done {
                out.attempted.push(d?);
            }
        }
    }

    /// The running worker: every half second, and whenever an attempt ends, it fans the
    /// outbox out and claims as many deliveries as it has free places (of [`BATCH`]), each
    /// attempt a task of its own. A slow attempt holds its place only, never a round: the
    /// places it does not hold go to the next claim, which is fair per webhook and per
    /// account (`delivery::claim`); a fast receiver's next delivery is claimed as soon as
    /// its last attempt ends.
    async fn pump(self) {
        let places = Arc::new(tokio::sync::Semaphore::new(BATCH as usize));
        let ended = Arc::new(tokio::sync::Notify::new());
        let mut every = tokio::time::interval(std::time::Duration::from_millis(500));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = ended.notified() => {}
            }
            let at = Utc::now();
            if let Err(e) = outbox::fan_out(&self.state.db, at).await {
                tracing::error!(error = %e, "webhook fan-out failed");
                continue;
            }
            let free = places.available_permits() as u64;
            if free == 0 {
                continue;
            }
            let claimed = match delivery::claim(&self.state.db, &self.state.webhooks, at, free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "webhook claim failed");
                    continue;
                }
            };
            for c in claimed {
                let Ok(place) = places.clone().try_acquire_owned() else { break };
                let (worker, ended) = (self.clone(), ended.clone());
                tokio::spawn(async move {
                    let id = c.delivery.id;
                    match worker.attempt(c).await {
                        Ok(status) => tracing::debug!(delivery = %id, ?status, "webhook attempt"),
                        Err(e) => tracing::error!(error = %e, delivery = %id, "webhook attempt not recorded"),
                    }
                    drop(place);
                    ended.notify_one();
                });
            }
        }
    }

    /// Makes one claimed attempt and records its outcome; a fault on the way (a payload
    /// that cannot be rendered or opened) counts as a failed attempt, backed off like any.
    async fn attempt(&self, c: Claimed) -> AppResult<DeliveryStatus> {
        let outcome = match self.prepare_and_send(&c).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, delivery = %c.delivery.id, "webhook attempt failed before sending");
                Outcome::Unreachable { error: format!("the delivery could not be prepared: {e}"), latency_ms: 0 }
            }
        };
        let status = delivery::finish(&self.state.db, &self.state.webhooks, &c, &outcome).await?;
        let outcome = match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
            DeliveryStatus::Pending => "retry",
        };
        metrics::counter!("crm_webhook_deliveries_total", "outcome" => outcome).increment(1);
        Ok(status)
    }

    async fn prepare_and_send(&self, c: &Claimed) -> AppResult<Outcome> {
        // The account must still be able to act at every attempt (a kept payload too): a
        // deactivated person's or an expired key's webhook stops here.
        if let Some(why) = outbox::silenced(&self.state.db, &c.webhook).await? {
            service::webhook::disable(
                &self.state.db,
                sea_orm::Condition::all().add(entity::webhook::Column::Id.eq(c.webhook.id)),
                why,
            )
            .await?;
            return Ok(Outcome::Skipped(why.into()));
        }
        let vault = &self.state.privacy.keys;
        let sealed_as = payload_field(c.delivery.id);
        let body = match &c.delivery.body {
            Some(sealed) => Some(vault.open(&sealed_as, c.delivery.event_id, sealed)?),
            None => match self.render(c).await? {
                Some(body) => {
                    delivery::keep_body(&self.state.db, c, vault.seal(&sealed_as, c.delivery.event_id, &body)).await?;
                    Some(body)
                }
                None => None,
            },
        };
        match body {
            Some(body) => self.send(c, body).await,
            None => Ok(Outcome::Skipped("the webhook's account may not read this record (any more)".into())),
        }
    }

    /// The payload, as the webhook's account may read it now; `None` when it may not.
    async fn render(&self, c: &Claimed) -> AppResult<Option<String>> {
        let db = &self.state.db;
        let actor = match Actor::load(db, c.webhook.account_id).await {
            Ok(a) => a,
            Err(AppError::Unauthenticated(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let e = &c.event;
        let data = match e.kind {
            Kind::CustomerCreated | Kind::CustomerUpdated | Kind::CustomerAssigned => {
                let doc = format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}");
                self.read(&actor, &doc, e.record_id, "customer").await?.map(|c| json!({ "customer": c }))
            }
            Kind::CustomerDeleted | Kind::CustomerMerged => {
                let Some(gone) = customer::Entity::find_by_id(e.record_id).one(db).await? else { return Ok(None) };
                if !actor.reach(Resource::Customer, Action::Read).admits((&gone).into()) {
                    return Ok(None);
                }
                // The survivor's id only to an account that may read the survivor.
                let survivor = match gone.merged_into {
                    Some(id) => customer::Entity::find_by_id(id)
                        .one(db)
                        .await?
                        .filter(|s| actor.may(Resource::Customer, Action::Read, s))
                        .map(|s| s.id),
                    None => None,
                };
                Some(json!({ "customer": { "id": gone.id, "deletedAt": gone.deleted_at, "mergedInto": survivor } }))
            }
            Kind::DealWon | Kind::DealLost => {
                let doc = format!(
                    "query($id: ID!) {{ deal(id: $id) {{ id customerId title stage amount {{ amount currency }} \
                     expectedCloseDate actualCloseDate lostReason version createdAt updatedAt \
                     customer {{ {CUSTOMER_FIELDS} }} }} }}"
                );
                self.read(&actor, &doc, e.record_id, "deal").await?.map(|d| json!({ "deal": d }))
            }
            Kind::FeedbackReceived => {
                let doc = format!(
                    "query($id: ID!) {{ feedback(id: $id) {{ id customerId kind channel rating nps content status \
                     handlerId version createdAt updatedAt customer {{ {CUSTOMER_FIELDS} }} }} }}"
                );
                self.read(&actor, &doc, e.record_id, "feedback").await?.map(|f| json!({ "feedback": f }))
            }
            Kind::ReminderDue => {
                let Some(r) = reminder::Entity::find_by_id(e.record_id).one(db).await? else { return Ok(None) };
                // As `myReminders`: the account's own reminders only (their reasons may
                // quote a birthday or a person's note).
                let Some(owner) = customer::Entity::find_by_id(r.customer_id).one(db).await? else { return Ok(None) };
                if !actor.holds_reminder(&r, &owner) {
                    return Ok(None);
                }
                let doc = format!("query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}");
                self.read(&actor, &doc, r.customer_id, "customer").await?.map(|customer| {
                    json!({
                        "reminder": {
                            "id": r.id, "rule": r.rule, "dueAt": r.due_at, "status": r.status,
                            "reason": r.reason, "message": r.message, "assigneeId": r.assignee_id,
                            "assigneeRole": r.assignee_role, "customerId": r.customer_id, "dealId": r.deal_id,
                        },
                        "customer": customer,
                    })
                })
            }
        };
        Ok(data.map(|data| {
            json!({
                "id": e.id,
                "type": e.kind.as_str(),
                "occurredAt": e.at,
                "webhookId": c.webhook.id,
                "data": data,
            })
            .to_string()
        }))
    }

    /// Runs a read as `actor`; the record, or `None` when the account may not read it.
    async fn read(&self, actor: &Actor, doc: &str, id: Uuid, field: &str) -> AppResult<Option<Value>> {
        let request = async_graphql::Request::new(doc)
            .variables(async_graphql::Variables::from_json(json!({ "id": id })))
            .data(loaders::new_loader(self.state.db.clone(), Some(actor.clone())))
            .data(actor.clone());
        let response = self.schema.execute(request).await;
        let data = response.data.into_json().map_err(|e| AppError::Internal(format!("webhook payload: {e}").into()))?;
        let record = data.get(field).cloned().filter(|v| !v.is_null());
        if record.is_none()
            && let Some(error) = response.errors.iter().find(|e| !is_refusal(e))
        {
            // Not a refusal (NOT_FOUND, FORBIDDEN): a fault to retry.
            return Err(AppError::Internal(format!("webhook payload: {}", error.message).into()));
        }
        Ok(record)
    }

    /// Sends a payload; the receiver's answer or why there was none.
    async fn send(&self, c: &Claimed, body: String) -> AppResult<Outcome> {
        let started = std::time::Instant::now();
        let elapsed = || i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        // Checked again: the URL was checked under the settings of its time.
        if let Err(why) = target::check_url(&c.webhook.url, self.state.webhooks.allow_private) {
            return Ok(Outcome::Unreachable { error: format!("the URL is refused: {why}"), latency_ms: 0 });
        }
        let at = Utc::now();
        let secrets = signing_secrets(&self.state.privacy.keys, &c.webhook, at)?;
        let signature = signature_header(&secrets, at.timestamp(), body.as_bytes());
        let sent = self
            .client
            .post(&c.webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("x-crm-event-id", c.event.id.to_string())
            .header("x-crm-event-type", c.event.kind.as_str())
            .header("x-crm-delivery-id", c.delivery.id.to_string())
            .header("x-crm-webhook-id", c.webhook.id.to_string())
            .headers(trace_headers(&c.event))
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        Ok(match sent {
            // The answer's body is not read: only its status counts.
            Ok(resp) => Outcome::Answered { status: resp.status().as_u16(), latency_ms: elapsed() },
            Err(e) => Outcome::Unreachable { error: describe(&e, &self.state.webhooks), latency_ms: elapsed() },
        })
    }
}

/// Makes ring the process's TLS provider (see api/Cargo.toml): reqwest is built without
/// one, and any client in the process (the tests' too) needs it before it is built.
/// Installing it again is harmless; the first wins.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether a GraphQL error says the record is not (or no longer) readable.
fn is_refusal(e: &async_graphql::ServerError) -> bool {
    let code = e.extensions.as_ref().and_then(|x| x.get("code")).cloned();
    matches!(code, Some(async_graphql::Value::String(c)) if c == "NOT_FOUND" || c == "FORBIDDEN")
}

/// Why a request got no answer, without the URL (it may carry a token in its query).
fn describe(e: &reqwest::Error, settings: &service::webhook::Settings) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", settings.timeout.as_millis());
    }
    let mut message = if e.is_connect() { "cannot connect".to_string() } else { "the request failed".to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message.chars().take(500).collect()
}

/// Why a receiver's name gave no address to connect to, whatever the reason.
const UNREACHABLE: &str = "the name resolves to no address a webhook may reach";

/// Name resolution that drops the addresses a webhook may not reach, so that a name
/// resolving to a private address (or changing to one after the URL was checked) is
/// never connected to.
struct Admitted {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Admitted {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            // An unknown name and a name of the inside read the same in the delivery log:
            // its reader (a key) should not map the inside's names.
            let found: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(found) => found.collect(),
                Err(_) => Vec::new(),
            };
            let admitted: Vec<SocketAddr> =
                found.iter().copied().filter(|a| target::admitted(a.ip(), allow_private).is_ok()).collect();
            if admitted.is_empty() {
                return Err(UNREACHABLE.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(admitted.into_iter());
            Ok(addrs)
        })
    }
}

/// Runs the worker until the process ends: a round every second, at once again while
/// rounds find full batches.
pub fn spawn(state: &AppState) -> Result<tokio::task::JoinHandle<()>, String> {
    let worker = Worker::new(state)?;
    Ok(tokio::spawn(worker.pump()))
}

/// The delivery continues the trace of the request that caused its event: the same trace
/// id, a span of its own (`traceparent`).
fn trace_headers(event: &entity::webhook_event::Model) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(child) = event.traceparent.as_deref().and_then(service::kernel::trace::child_of)
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&child)
    {
        headers.insert("traceparent", value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;
    use std::str::FromStr;

    async fn why(host: &str) -> String {
        let name = reqwest::dns::Name::from_str(host).unwrap();
        let resolver = Admitted { allow_private: false };
        match resolver.resolve(name).await {
            Ok(_) => "resolved".into(),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn an_unknown_name_and_an_inside_name_read_the_same() {
        assert_eq!(why("localhost").await, UNREACHABLE);
        assert_eq!(why("no-such-host.invalid").await, UNREACHABLE);
    }
}
