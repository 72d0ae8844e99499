//! Indexes for a sales rep's customer list, "own rows or my department's pool, newest
//! first": one per part, each returning its part in the list's order, so the list reads
//! two short index ranges instead of filtering a backward scan of every customer by the
//! `OR` (issue 12: 6.4 ms for a rep's first page of 100,000 customers). The owner index
//! takes over from the plain one on `owner_id`.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX idx_customer_owner_created ON customer (owner_id, created_at, id)").await?;
        db.execute_unprepared(
            "CREATE INDEX idx_customer_pool_created ON customer (department_id, created_at, id) WHERE owner_id IS NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_customer_owner").await?;
        Ok(())
    }
}
