//! Webhooks (`docs/webhooks.md`): subscriptions, the transactional outbox of domain events,
//! and one delivery per (event, subscription) with a log of its attempts.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Webhook {
    Table,
    Id,
    Name,
    Url,
    AccountId,
    ApiKeyId,
    Events,
    DepartmentId,
    Tiers,
    Secret,
    PreviousSecret,
    PreviousUntil,
    Active,
    DisabledReason,
    DisabledAt,
    ConsecutiveFailures,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum WebhookEvent {
    Table,
    Id,
    Kind,
    RecordId,
    CustomerId,
    At,
    DispatchedAt,
}

#[derive(DeriveIden)]
enum WebhookDelivery {
    Table,
    Id,
    WebhookId,
    EventId,
    EventKind,
    Status,
    Body,
    Attempts,
    RoundAttempts,
    NextAttemptAt,
    LeaseUntil,
    Claim,
    LastStatusCode,
    LastError,
    LastLatencyMs,
    DeliveredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempt {
    Table,
    Id,
    DeliveryId,
    StartedAt,
    FinishedAt,
    StatusCode,
    Error,
    LatencyMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Webhook::Table)
                    .col(uuid(Webhook::Id).primary_key())
                    .col(string(Webhook::Name))
                    .col(text(Webhook::Url))
                    .col(uuid(Webhook::AccountId))
                    .col(uuid_null(Webhook::ApiKeyId))
                    .col(text(Webhook::Events))
                    .col(uuid_null(Webhook::DepartmentId))
                    .col(string(Webhook::Tiers))
                    .col(text(Webhook::Secret))
                    .col(text_null(Webhook::PreviousSecret))
                    .col(timestamp_with_time_zone_null(Webhook::PreviousUntil))
                    .col(boolean(Webhook::Active))
                    .col(text_null(Webhook::DisabledReason))
                    .col(timestamp_with_time_zone_null(Webhook::DisabledAt))
                    .col(integer(Webhook::ConsecutiveFailures))
                    .col(uuid(Webhook::CreatedBy))
                    .col(timestamp_with_time_zone(Webhook::CreatedAt))
                    .col(timestamp_with_time_zone(Webhook::UpdatedAt))
                    .col(integer(Webhook::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEvent::Table)
                    .col(uuid(WebhookEvent::Id).primary_key())
                    .col(string(WebhookEvent::Kind))
                    .col(uuid(WebhookEvent::RecordId))
                    .col(uuid(WebhookEvent::CustomerId))
                    .col(timestamp_with_time_zone(WebhookEvent::At))
                    .col(timestamp_with_time_zone_null(WebhookEvent::DispatchedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDelivery::Table)
                    .col(uuid(WebhookDelivery::Id).primary_key())
                    .col(uuid(WebhookDelivery::WebhookId))
                    .col(uuid(WebhookDelivery::EventId))
                    .col(string(WebhookDelivery::EventKind))
                    .col(string(WebhookDelivery::Status))
                    .col(text_null(WebhookDelivery::Body))
                    .col(integer(WebhookDelivery::Attempts))
                    .col(integer(WebhookDelivery::RoundAttempts))
                    .col(timestamp_with_time_zone(WebhookDelivery::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::LeaseUntil))
                    .col(uuid_null(WebhookDelivery::Claim))
                    .col(integer_null(WebhookDelivery::LastStatusCode))
                    .col(text_null(WebhookDelivery::LastError))
                    .col(integer_null(WebhookDelivery::LastLatencyMs))
                    .col(timestamp_with_time_zone_null(WebhookDelivery::DeliveredAt))
                    .col(timestamp_with_time_zone(WebhookDelivery::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookDelivery::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempt::Table)
                    .col(uuid(WebhookAttempt::Id).primary_key())
                    .col(uuid(WebhookAttempt::DeliveryId))
                    .col(timestamp_with_time_zone(WebhookAttempt::StartedAt))
                    .col(timestamp_with_time_zone_null(WebhookAttempt::FinishedAt))
                    .col(integer_null(WebhookAttempt::StatusCode))
                    .col(text_null(WebhookAttempt::Error))
                    .col(integer_null(WebhookAttempt::LatencyMs))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in [
            // The fan-out's queue: events not yet dispatched, oldest first.
            "CREATE INDEX idx_webhook_event_pending ON webhook_event (dispatched_at, at)",
            "CREATE INDEX idx_webhook_event_customer ON webhook_event (customer_id)",
            // One delivery per event and subscription, whoever fans out.
            "CREATE UNIQUE INDEX idx_webhook_delivery_event ON webhook_delivery (webhook_id, event_id)",
            // The claim: pending deliveries by due time.
            "CREATE INDEX idx_webhook_delivery_due ON webhook_delivery (status, next_attempt_at)",
            "CREATE INDEX idx_webhook_delivery_log ON webhook_delivery (webhook_id, created_at)",
            "CREATE INDEX idx_webhook_delivery_event_id ON webhook_delivery (event_id)",
            "CREATE INDEX idx_webhook_attempt_delivery ON webhook_attempt (delivery_id, started_at)",
            "CREATE INDEX idx_webhook_account ON webhook (account_id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
