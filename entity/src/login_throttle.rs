//! Failed logins per key (an account or a client address, hashed) and the back-off they
//! earned. Kept in the database so every instance applies the same limits.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_throttle")]
pub struct Model {
    /// `account:<sha256>` or `address:<sha256>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Failures since `window_started_at`.
    pub failures: i32,
    pub window_started_at: DateTimeUtc,
    /// No attempt is checked before this moment.
    pub blocked_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
