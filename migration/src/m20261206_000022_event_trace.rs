//! The W3C `traceparent` of the request that caused an outbox event, so that its webhook
//! deliveries continue the caller's trace (`docs/operations.md`).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEvent {
    Table,
    Traceparent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(WebhookEvent::Table).add_column(string_null(WebhookEvent::Traceparent)).to_owned(),
            )
            .await
    }
}
