//! The search keys by zone first (issue 28's benchmark: a sales rep's two-letter search
//! read every key of its range, 68,476 for `gz` at 1,000,000 customers, to keep the ~300 of
//! the rep's zones: 25 ms). PostgreSQL only: its key rows carry no order of their own, and
//! a scoped search (`zone = ANY(ARRAY(...))`) now reads each reached zone's part of the
//! range. SQLite keeps one key order (its rebuild would pay a third sort of every key).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS idx_search_term_zone ON search_term (zone, term) \
                 INCLUDE (doc, field, head, contact, contacted_at)",
            )
            .await
            .map(|_| ())
    }
}
