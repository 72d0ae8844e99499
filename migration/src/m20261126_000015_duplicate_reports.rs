//! Reported duplicates (seed 004's 举报: a wrongly entered customer is reported), a queue
//! that managers work through by merging or dismissing.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DuplicateReport {
    Table,
    Id,
    CustomerId,
    DuplicateOfId,
    Note,
    ReportedBy,
    Status,
    ResolvedBy,
    ResolvedAt,
    Resolution,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DuplicateReport::Table)
                    .col(pk_uuid(DuplicateReport::Id))
                    .col(uuid(DuplicateReport::CustomerId))
                    .col(uuid(DuplicateReport::DuplicateOfId))
                    .col(text_null(DuplicateReport::Note))
                    .col(uuid(DuplicateReport::ReportedBy))
                    .col(string(DuplicateReport::Status))
                    .col(uuid_null(DuplicateReport::ResolvedBy))
                    .col(timestamp_with_time_zone_null(DuplicateReport::ResolvedAt))
                    .col(text_null(DuplicateReport::Resolution))
                    .col(integer(DuplicateReport::Version).default(1))
                    .col(timestamp_with_time_zone(DuplicateReport::CreatedAt))
                    .col(timestamp_with_time_zone(DuplicateReport::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX idx_duplicate_report_status ON duplicate_report (status, created_at)")
            .await?;
        db.execute_unprepared("CREATE INDEX idx_duplicate_report_customer ON duplicate_report (customer_id)").await?;
        db.execute_unprepared("CREATE INDEX idx_duplicate_report_duplicate_of ON duplicate_report (duplicate_of_id)")
            .await?;
        Ok(())
    }
}
