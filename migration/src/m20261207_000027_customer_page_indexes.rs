//! The live customers' pages a caller reads most, each from an index that returns it in
//! order or counts it without the table (issue 29's benchmark): a sales rep's own
//! customers by name and their department's pool by name (the two parts of a rep's list,
//! `pagination::paginate_parts`; by name the rep's page scanned the name index past
//! ~3,500 other rows: 12 ms, now 0.6 ms), and the live customers of a department subtree
//! counted from the index alone (a manager's `totalCount` read ~3,400 table pages to skip
//! the trash: 33 ms cold, now 1.9 ms).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS idx_customer_owner_name ON customer (owner_id, name, id) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_customer_pool_name ON customer (department_id, name, id) \
     WHERE owner_id IS NULL AND deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS idx_customer_live_department ON customer (department_id) WHERE deleted_at IS NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for sql in INDEXES {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
