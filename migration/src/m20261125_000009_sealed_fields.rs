//! Sensitive fields sealed at rest (`docs/privacy.md`): contacts get the blind index of
//! their ID number, so duplicates are found without the plain value. The sealed values
//! themselves stay in their text columns (`enc1:...`); rows written before are sealed by
//! the server's re-seal pass.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contact {
    Table,
    CustomerId,
    IdNumberIndex,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Contact::Table).add_column(string_null(Contact::IdNumberIndex)).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_contact_id_number_index")
                    .table(Contact::Table)
                    .col(Contact::IdNumberIndex)
                    .col(Contact::CustomerId)
                    .to_owned(),
            )
            .await
    }
}
