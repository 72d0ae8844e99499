//! A refresh token, stored as the SHA-256 of the opaque value the client holds. Each use
//! replaces it with a new one of the same family; presenting a replaced one again revokes
//! the family (someone copied it).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_token")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The login this token descends from.
    pub family_id: Uuid,
    pub user_id: Uuid,
    /// Hex SHA-256 of the token.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// The user's session version at login; a later one ends the family.
    pub session_version: i32,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set when the token was exchanged for its successor.
    pub replaced_at: Option<DateTimeUtc>,
    /// Set when the family was revoked (logout, reuse).
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
