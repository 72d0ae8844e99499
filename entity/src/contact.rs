//! A person at an organization customer (seed 004 contact template).
use crate::enums::{ContactRole, Gender};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "contact")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub name: String,
    pub gender: Option<Gender>,
    pub title: Option<String>,
    pub deal_role: Option<ContactRole>,
    pub birthday: Option<Date>,
    pub mobile: Option<String>,
    pub office_phone: Option<String>,
    pub email: Option<String>,
    /// Sealed at rest (`enc1:...`, api/src/vault.rs); the audit log holds it sealed.
    pub address: Option<String>,
    pub hometown: Option<String>,
    pub hobbies: Option<String>,
    /// Sensitive: sealed at rest (`enc1:...`), only exposed masked, kept out of the audit log.
    #[serde(skip_serializing)]
    pub id_number: Option<String>,
    /// Blind index of the ID number (HMAC under the data key), for duplicate checks.
    #[serde(skip_serializing)]
    pub id_number_index: Option<String>,
    pub notes: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
