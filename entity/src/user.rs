//! A staff member who logs in. Deactivated users keep their records.
use crate::enums::Role;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "user")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Login, stored lower-cased.
    pub email: String,
    pub name: String,
    /// argon2id PHC string; never leaves the service layer, nor enters the audit log.
    #[serde(skip_serializing)]
    pub password_hash: String,
    pub role: Role,
    pub department_id: Uuid,
    pub active: bool,
    /// Tokens carry it; raising it (password change, deactivation, `logoutEverywhere`) ends
    /// every token issued before.
    pub session_version: i32,
    /// The account of an API key (`api_key`): cannot log in, is not staff, is listed
    /// with the keys rather than the users.
    pub service_account: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
