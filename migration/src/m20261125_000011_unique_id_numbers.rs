//! Two live contacts of one customer cannot share an ID number, even when created at the
//! same instant on two instances: the blind index becomes a partial unique index (the
//! service's own check, which also matches the hash under older keys during a rotation,
//! stays in front of it).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ix_contact_id_number_index").await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_contact_id_number ON contact (customer_id, id_number_index) \
             WHERE deleted_at IS NULL AND id_number_index IS NOT NULL",
        )
        .await?;
        Ok(())
    }
}
