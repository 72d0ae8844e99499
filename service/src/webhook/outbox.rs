//! The outbox: domain events written in the transaction of the change, and their fan-out
//! to one delivery per subscribed webhook.
//!
//! An event is derived from the write's typed change (`kernel::change::Change::event`), so
//! every write of a customer, deal or feedback is covered wherever it happens (the API,
//! an import, a bulk call, a merge, the pool sweep); the due reminders come from the care
//! tick's claim (`care/schedule.rs`).
use crate::access::Actor;
use crate::access::scope::department_subtree;
use crate::error::AppResult;
use crate::kernel::store::write;
use crate::kernel::{new_id, now};
use crate::webhook::delivery;
use chrono::{DateTime, Utc};
use entity::enums::{Action, DeliveryStatus, Resource, WebhookEventKind as Kind};
use entity::{customer, reminder, webhook, webhook_delivery, webhook_event};
use sea_orm::sea_query::{OnConflict, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use uuid::Uuid;

/// Events fanned out per transaction.
const BATCH: u64 = 500;

/// The resource whose READ grant decides whether an account hears of an event.
pub fn resource_of(kind: Kind) -> Resource {
    match kind {
        Kind::DealWon | Kind::DealLost => Resource::Deal,
        Kind::FeedbackReceived => Resource::Feedback,
        _ => Resource::Customer,
    }
}

/// A webhook as the fan-out sees it: its account's rights and its filter's departments.
struct Subscriber {
    hook: webhook::Model,
    kinds: Vec<Kind>,
    tiers: Vec<entity::enums::Tier>,
    departments: Option<Vec<Uuid>>,
    actor: Actor,
}

impl Subscriber {
    /// Whether the webhook hears of `event` about customer `c`: subscribed to the kind,
    /// made before the event, inside its filter, and its account may read the record
    /// (a deleted customer as it was).
    fn hears(&self, event: &webhook_event::Model, c: &customer::Model, r: Option<&reminder::Model>) -> bool {
        // A reminder as `myReminders` shows it: the account's own only.
        if event.kind == Kind::ReminderDue && !r.is_some_and(|r| self.actor.holds_reminder(r, c)) {
            return false;
        }
        self.kinds.contains(&event.kind)
            && event.at >= self.hook.created_at
            && (self.tiers.is_empty() || self.tiers.contains(&c.tier))
            && self.departments.as_ref().is_none_or(|d| d.contains(&c.department_id))
            && self.actor.reach(resource_of(event.kind), Action::Read).admits(c.into())
    }
}

/// Fans the events not yet dispatched out to their webhooks, a batch per transaction:
/// the batch is claimed with a conditional UPDATE and its deliveries inserted in the same
/// transaction, so an instance that stops midway leaves the batch to the next, and two
/// instances never dispatch one event twice (one delivery per event and webhook, by a
/// unique index besides). Returns the events dispatched.
///
/// # Errors
/// Database errors.
pub async fn fan_out(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<u64> {
    let mut total = 0;
    loop {
        let n = write(db, async |txn| {
            use webhook_event::Column as E;
            let mut batch = Query::select();
            batch
                .column(E::Id)
                .from(webhook_event::Entity)
                .and_where(E::DispatchedAt.is_null())
                .order_by(E::At, Order::Asc)
                .limit(BATCH);
            let mut q = Query::update();
            q.table(webhook_event::Entity)
                .value(E::DispatchedAt, at)
                .and_where(E::DispatchedAt.is_null())
                .and_where(E::Id.in_subquery(batch))
                .returning_col(E::Id);
            let rows = txn.query_all_raw(txn.get_database_backend().build(&q)).await?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get::<Uuid>("", "id")).collect::<Result<_, _>>()?;
            if ids.is_empty() {
                return Ok(0);
            }
            let events = webhook_event::Entity::find().filter(E::Id.is_in(ids.clone())).all(txn).await?;
            let subscribers = subscribers(txn).await?;
            if !subscribers.is_empty() {
                let customers: HashMap<Uuid, customer::Model> = customer::Entity::find()
                    .filter(customer::Column::Id.is_in(events.iter().map(|e| e.customer_id).collect::<Vec<_>>()))
                    .all(txn)
                    .await?
                    .into_iter()
                    .map(|c| (c.id, c))
                    .collect();
                let reminder_ids: Vec<Uuid> =
                    events.iter().filter(|e| e.kind == Kind::ReminderDue).map(|e| e.record_id).collect();
                let reminders: HashMap<Uuid, reminder::Model> = if reminder_ids.is_empty() {
                    HashMap::new()
                } else {
                    reminder::Entity::find()
                        .filter(reminder::Column::Id.is_in(reminder_ids))
                        .all(txn)
                        .await?
                        .into_iter()
                        .map(|r| (r.id, r))
                        .collect()
                };
                let stamp = now();
                let mut rows = Vec::new();
                for event in &events {
                    let Some(c) = customers.get(&event.customer_id) else { continue };
                    let r = reminders.get(&event.record_id);
                    for s in subscribers.iter().filter(|s| s.hears(event, c, r)) {
                        rows.push(webhook_delivery::ActiveModel {
                            id: sea_orm::Set(new_id()),
                            webhook_id: sea_orm::Set(s.hook.id),
                            event_id: sea_orm::Set(event.id),
                            event_kind: sea_orm::Set(event.kind),
                            status: sea_orm::Set(DeliveryStatus::Pending),
                            body: sea_orm::Set(None),
                            attempts: sea_orm::Set(0),
                            round_attempts: sea_orm::Set(0),
                            next_attempt_at: sea_orm::Set(event.at),
                            lease_until: sea_orm::Set(None),
                            claim: sea_orm::Set(None),
                            last_status_code: sea_orm::Set(None),
                            last_error: sea_orm::Set(None),
                            last_latency_ms: sea_orm::Set(None),
                            delivered_at: sea_orm::Set(None),
                            created_at: sea_orm::Set(stamp),
                            updated_at: sea_orm::Set(stamp),
                        });
                    }
                }
                for chunk in rows.chunks(200) {
                    webhook_delivery::Entity::insert_many(chunk.to_vec())
                        .on_conflict(
                            OnConflict::columns([
                                webhook_delivery::Column::WebhookId,
                                webhook_delivery::Column::EventId,
                            ])
                            .do_nothing()
                            .to_owned(),
                        )
                        .exec_without_returning(txn)
                        .await?;
                }
            }
            Ok(ids.len() as u64)
        })
        .await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// The active webhooks with their accounts' rights; a webhook whose account can no longer
/// act (deactivated, its key revoked or expired) is disabled on the way.
async fn subscribers(txn: &sea_orm::DatabaseTransaction) -> AppResult<Vec<Subscriber>> {
    let hooks = webhook::Entity::find().filter(webhook::Column::Active.eq(true)).all(txn).await?;
    let mut actors: HashMap<Uuid, Actor> = HashMap::new();
    let mut subtrees: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut out = Vec::new();
    for hook in hooks {
        if let Some(why) = silenced(txn, &hook).await? {
            crate::webhook::disable(txn, sea_orm::Condition::all().add(webhook::Column::Id.eq(hook.id)), why).await?;
            continue;
        }
        let actor = match actors.entry(hook.account_id) {
            Entry::Occupied(known) => known.get().clone(),
            Entry::Vacant(slot) => slot.insert(Actor::load(txn, hook.account_id).await?).clone(),
        };
        let departments = match hook.department_id {
            Some(d) => Some(match subtrees.entry(d) {
                Entry::Occupied(known) => known.get().clone(),
                Entry::Vacant(slot) => slot.insert(department_subtree(txn, d).await?).clone(),
            }),
            None => None,
        };
        out.push(Subscriber {
            kinds: crate::webhook::events_of(&hook),
            tiers: crate::webhook::tiers_of(&hook),
            departments,
            actor,
            hook,
        });
    }
    Ok(out)
}

/// Why a webhook's account can no longer act, if it cannot: a deactivated person, a
/// revoked or expired key. Checked at the fan-out and again before every attempt.
///
/// # Errors
/// Database errors.
pub async fn silenced(db: &impl ConnectionTrait, hook: &webhook::Model) -> AppResult<Option<&'static str>> {
    let active = entity::user::Entity::find_by_id(hook.account_id).one(db).await?.is_some_and(|u| u.active);
    if !active {
        return Ok(Some("its account is no longer active"));
    }
    let Some(key_id) = hook.api_key_id else { return Ok(None) };
    Ok(match entity::api_key::Entity::find_by_id(key_id).one(db).await? {
        None => Some("its API key was revoked"),
        Some(k) if k.revoked_at.is_some() => Some("its API key was revoked"),
        Some(k) if k.expires_at.is_some_and(|e| e <= now()) => Some("its API key expired"),
        Some(_) => None,
    })
}

/// Forgets what the outbox holds about a customer whose personal data is erased: the
/// payloads of its deliveries, and the deliveries not yet made.
///
/// # Errors
/// Database errors.
pub(crate) async fn forget_customer(db: &impl ConnectionTrait, customer_id: Uuid) -> AppResult<()> {
    let events = Query::select()
        .column(webhook_event::Column::Id)
        .from(webhook_event::Entity)
        .and_where(webhook_event::Column::CustomerId.eq(customer_id))
        .to_owned();
    delivery::forget(db, events).await
}
