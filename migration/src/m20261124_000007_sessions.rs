//! Sessions and abuse limits: a session version per user (tokens carry it; bumping it ends
//! every earlier token), refresh tokens (stored as hashes, rotated, grouped in families so
//! that the reuse of a rotated one revokes the whole family), and the counters of failed
//! logins per account and per client address, kept in the database so that every instance
//! applies the same back-off.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    SessionVersion,
}

#[derive(DeriveIden)]
enum RefreshToken {
    Table,
    Id,
    FamilyId,
    UserId,
    TokenHash,
    SessionVersion,
    CreatedAt,
    ExpiresAt,
    ReplacedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Key,
    Failures,
    WindowStartedAt,
    BlockedUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(User::Table).add_column(integer(User::SessionVersion).default(1)).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshToken::Table)
                    .col(pk_uuid(RefreshToken::Id))
                    .col(uuid(RefreshToken::FamilyId))
                    .col(uuid(RefreshToken::UserId))
                    .col(string(RefreshToken::TokenHash).unique_key())
                    .col(integer(RefreshToken::SessionVersion))
                    .col(timestamp_with_time_zone(RefreshToken::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshToken::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshToken::ReplacedAt))
                    .col(timestamp_with_time_zone_null(RefreshToken::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refresh_token_user")
                            .from(RefreshToken::Table, RefreshToken::UserId)
                            .to(User::Table, User::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .col(string(LoginThrottle::Key).primary_key())
                    .col(integer(LoginThrottle::Failures).default(0))
                    .col(timestamp_with_time_zone(LoginThrottle::WindowStartedAt))
                    .col(timestamp_with_time_zone_null(LoginThrottle::BlockedUntil))
                    .col(timestamp_with_time_zone(LoginThrottle::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX idx_refresh_token_family ON refresh_token (family_id)",
            "CREATE INDEX idx_refresh_token_user ON refresh_token (user_id)",
            "CREATE INDEX idx_refresh_token_expires ON refresh_token (expires_at)",
            "CREATE INDEX idx_login_throttle_updated ON login_throttle (updated_at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
