//! An API key: a credential of its own service account, shown once, stored as its SHA-256.
use crate::enums::Role;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "api_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The key's service account (`user.service_account`): owner of what the key creates,
    /// actor of its audit rows.
    pub user_id: Uuid,
    pub name: String,
    /// The key's visible start (`crm_` and 8 hex digits), to recognise it in logs.
    pub prefix: String,
    /// SHA-256 of the whole key, hex; never leaves the service layer.
    #[serde(skip_serializing)]
    pub secret_hash: String,
    /// The role whose grants the key copied, or INTEGRATION for explicit grants.
    pub role: Role,
    pub department_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<Uuid>,
    /// When the key was last seen, to the minute (refreshed at most once a minute per
    /// instance).
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
