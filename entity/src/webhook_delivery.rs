//! One event to one webhook: its payload (sealed, fixed at the first attempt) and where
//! its attempts stand.
use crate::enums::{DeliveryStatus, WebhookEventKind};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    /// The event's type (copied from the event, for the log).
    pub event_kind: WebhookEventKind,
    pub status: DeliveryStatus,
    /// The JSON body, sealed; rendered once, at the first attempt.
    pub body: Option<String>,
    /// Attempts ever made (redeliveries included).
    pub attempts: i32,
    /// Attempts since the delivery was (re)queued: the back-off counts these.
    pub round_attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// An instance's claim on the delivery runs until then.
    pub lease_until: Option<DateTimeUtc>,
    /// The current claim's token (the attempt's id): only its holder records the outcome.
    pub claim: Option<Uuid>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
