//! Indexes on `updated_at` of deals and feedback: a full reclassification asks, per batch,
//! which customers' deals or feedback changed since it began; with these the answer costs
//! what was written meanwhile, not a scan of the batch's deals.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX idx_deal_updated ON deal (updated_at)",
            "CREATE INDEX idx_feedback_updated ON feedback (updated_at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
