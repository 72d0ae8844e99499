//! Imports of customer books (`POST /imports/customers`): one row per run with its
//! counters (updated per chunk, so progress is pollable), one row per line with its
//! outcome.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ImportRun {
    Table,
    Id,
    Kind,
    DryRun,
    Status,
    FileName,
    Encoding,
    StartedBy,
    LinesRead,
    Created,
    Updated,
    Unchanged,
    Duplicate,
    Invalid,
    Failed,
    Error,
    StartedAt,
    HeartbeatAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum ImportLine {
    Table,
    Id,
    RunId,
    Line,
    Outcome,
    RecordId,
    Message,
    Problems,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportRun::Table)
                    .col(pk_uuid(ImportRun::Id))
                    .col(string(ImportRun::Kind))
                    .col(boolean(ImportRun::DryRun))
                    .col(string(ImportRun::Status))
                    .col(text_null(ImportRun::FileName))
                    .col(string(ImportRun::Encoding))
                    .col(uuid(ImportRun::StartedBy))
                    .col(big_integer(ImportRun::LinesRead).default(0))
                    .col(big_integer(ImportRun::Created).default(0))
                    .col(big_integer(ImportRun::Updated).default(0))
                    .col(big_integer(ImportRun::Unchanged).default(0))
                    .col(big_integer(ImportRun::Duplicate).default(0))
                    .col(big_integer(ImportRun::Invalid).default(0))
                    .col(big_integer(ImportRun::Failed).default(0))
                    .col(text_null(ImportRun::Error))
                    .col(timestamp_with_time_zone(ImportRun::StartedAt))
                    .col(timestamp_with_time_zone(ImportRun::HeartbeatAt))
                    .col(timestamp_with_time_zone_null(ImportRun::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ImportLine::Table)
                    .col(pk_uuid(ImportLine::Id))
                    .col(uuid(ImportLine::RunId))
                    .col(big_integer(ImportLine::Line))
                    .col(string(ImportLine::Outcome))
                    .col(uuid_null(ImportLine::RecordId))
                    .col(text_null(ImportLine::Message))
                    .col(json_null(ImportLine::Problems))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX idx_import_run_started_by ON import_run (started_by, started_at)").await?;
        db.execute_unprepared("CREATE INDEX idx_import_line_run ON import_line (run_id, line)").await?;
        Ok(())
    }
}
