//! When a customer's current owner got it: with the last contact, it decides when an
//! untended customer returns to its department's pool (`docs/access.md`). Empty for
//! customers owned before: the pool sweep starts their clock when it first sees them.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customer {
    Table,
    OwnedSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Customer::Table)
                    .add_column(timestamp_with_time_zone_null(Customer::OwnedSince))
                    .to_owned(),
            )
            .await
    }
}
