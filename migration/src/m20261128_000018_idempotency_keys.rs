//! Idempotency keys (`docs/partners.md`): the first answer to a caller's key, replayed for
//! 24 hours to a retry with the same body.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKey {
    Table,
    UserId,
    Key,
    RequestHash,
    Status,
    Response,
    CreatedAt,
    CompletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKey::Table)
                    .col(uuid(IdempotencyKey::UserId))
                    .col(string(IdempotencyKey::Key))
                    .col(string(IdempotencyKey::RequestHash))
                    .col(integer_null(IdempotencyKey::Status))
                    .col(text_null(IdempotencyKey::Response))
                    .col(timestamp_with_time_zone(IdempotencyKey::CreatedAt))
                    .col(timestamp_with_time_zone_null(IdempotencyKey::CompletedAt))
                    .primary_key(Index::create().col(IdempotencyKey::UserId).col(IdempotencyKey::Key))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX idx_idempotency_key_created ON idempotency_key (created_at)").await?;
        Ok(())
    }
}
