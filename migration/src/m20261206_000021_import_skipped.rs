//! Import lines that match a customer the importer may read but not change (their
//! department's pool) are SKIPPED, not DUPLICATE: a run counts them apart.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ImportRun {
    Table,
    Skipped,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ImportRun::Table)
                    .add_column(big_integer(ImportRun::Skipped).default(0))
                    .to_owned(),
            )
            .await
    }
}
