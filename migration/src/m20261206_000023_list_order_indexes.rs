//! The default order of the contact and deal lists (newest first, `created_at` then `id`)
//! served by an index, as the customer list's is: without one every page of a list or an
//! export sorted the whole table (a 500,000-deal export read each 100-row page by a full
//! scan and a sort).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contact {
    Table,
    CreatedAt,
    Id,
}

#[derive(DeriveIden)]
enum Deal {
    Table,
    CreatedAt,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_contact_created")
                    .table(Contact::Table)
                    .col(Contact::CreatedAt)
                    .col(Contact::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_deal_created")
                    .table(Deal::Table)
                    .col(Deal::CreatedAt)
                    .col(Deal::Id)
                    .to_owned(),
            )
            .await
    }
}
