//! A customer merged into another (`mergeCustomers`) is soft-deleted and points at the
//! record that took its contacts, deals and history.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customer {
    Table,
    MergedInto,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Customer::Table).add_column(uuid_null(Customer::MergedInto)).to_owned())
            .await
    }
}
