//! Drops `idx_classification_history_at`: no query reads the history by time alone (a
//! customer's history and the tier-migration report both go by customer), and every full
//! reclassification paid for it on each of its history rows.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_classification_history_at").await?;
        Ok(())
    }
}
