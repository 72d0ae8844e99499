//! API keys for integration partners (`docs/partners.md`): each key is a credential of its
//! own service account (a `user` row marked `service_account`, which cannot log in), with
//! its grants copied when the key is made (`api_key_grant`), so a key never widens after
//! its creator checked it.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    ServiceAccount,
}

#[derive(DeriveIden)]
enum ApiKey {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    SecretHash,
    Role,
    DepartmentId,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    RevokedBy,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum ApiKeyGrant {
    Table,
    ApiKeyId,
    Resource,
    Action,
    Scope,
    IncludePool,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(User::Table).add_column(boolean(User::ServiceAccount).default(false)).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKey::Table)
                    .col(pk_uuid(ApiKey::Id))
                    .col(uuid(ApiKey::UserId).unique_key())
                    .col(string(ApiKey::Name))
                    .col(string(ApiKey::Prefix).unique_key())
                    .col(string(ApiKey::SecretHash).unique_key())
                    .col(string(ApiKey::Role))
                    .col(uuid(ApiKey::DepartmentId))
                    .col(uuid(ApiKey::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKey::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKey::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKey::RevokedAt))
                    .col(uuid_null(ApiKey::RevokedBy))
                    .col(timestamp_with_time_zone_null(ApiKey::LastUsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeyGrant::Table)
                    .col(uuid(ApiKeyGrant::ApiKeyId))
                    .col(string(ApiKeyGrant::Resource))
                    .col(string(ApiKeyGrant::Action))
                    .col(string(ApiKeyGrant::Scope))
                    .col(boolean(ApiKeyGrant::IncludePool).default(false))
                    .primary_key(
                        Index::create().col(ApiKeyGrant::ApiKeyId).col(ApiKeyGrant::Resource).col(ApiKeyGrant::Action),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("CREATE INDEX idx_api_key_created ON api_key (created_at)").await?;
        Ok(())
    }
}
