//! The outbox: a domain event, written in the transaction of the change it records.
use crate::enums::WebhookEventKind;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_event")]
pub struct Model {
    /// The event's id: receivers deduplicate on it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: WebhookEventKind,
    /// The record the event is about (the customer, deal, feedback or reminder).
    pub record_id: Uuid,
    /// Its customer: filters, scope and erasure go by it.
    pub customer_id: Uuid,
    pub at: DateTimeUtc,
    /// When the event was fanned out to its subscribers.
    pub dispatched_at: Option<DateTimeUtc>,
    /// The W3C `traceparent` of the request that caused it, if it sent one.
    pub traceparent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
