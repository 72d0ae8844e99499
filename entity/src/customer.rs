//! The customer archive.
use crate::enums::{CustomerKind, CustomerSource, Gender, Importance, LifecycleStage, Tier};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "customer")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: CustomerKind,
    pub category: String,
    pub name: String,
    /// Normalized organization name (duplicate key); NULL for individuals.
    pub name_norm: Option<String>,
    pub gender: Option<Gender>,
    pub birthday: Option<Date>,
    pub phone: Option<String>,
    /// E.164 form of `phone` (duplicate key).
    pub phone_norm: Option<String>,
    pub email: Option<String>,
    /// Lower-cased `email` (duplicate key).
    pub email_norm: Option<String>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub source: Option<CustomerSource>,
    pub importance: Option<Importance>,
    pub credit_rating: Option<String>,
    pub cooperation_start_date: Option<Date>,
    pub soft_profile: Option<Json>,
    pub custom_fields: Option<Json>,
    /// NULL: the customer is in its department's public pool.
    pub owner_id: Option<Uuid>,
    pub department_id: Uuid,
    pub lifecycle_stage: LifecycleStage,
    pub tier: Tier,
    pub created_by: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
