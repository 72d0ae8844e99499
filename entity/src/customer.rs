//! The customer archive.
use crate::enums::{
    CustomerKind, CustomerSource, Gender, Importance, Level, LifecycleStage, RelationshipType, Tier,
    TurnoverMarginClass,
};
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
    /// Sealed at rest (`enc1:...`, api/src/vault.rs); the audit log holds it sealed.
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
    /// Effective tier: the override when set, else the computed tier.
    pub tier: Tier,
    pub computed_tier: Option<Tier>,
    pub tier_override: Option<Tier>,
    pub tier_override_reason: Option<String>,
    pub rfm_recency: Option<i32>,
    pub rfm_frequency: Option<i32>,
    pub rfm_monetary: Option<i32>,
    pub rfm_score: Option<i32>,
    pub frequency_class: Option<Level>,
    pub value_class: Option<Level>,
    pub relationship_type: Option<RelationshipType>,
    pub turnover_margin_class: Option<TurnoverMarginClass>,
    pub first_purchase_on: Option<Date>,
    pub last_purchase_on: Option<Date>,
    /// Won deals in the trailing window.
    pub won_count: i32,
    /// Won revenue in the trailing window, base-currency minor units.
    pub revenue_minor: i64,
    /// Margin of that revenue (lines with a known cost), base-currency minor units.
    pub margin_minor: i64,
    pub classified_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    /// While set, the person's data cannot be erased (litigation, an audit, a tax claim).
    pub legal_hold: bool,
    pub legal_hold_reason: Option<String>,
    /// When the personal fields were erased (anonymised); the facts stay.
    pub erased_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// When the current owner got it (None in the pool, or owned before this was kept:
    /// the pool sweep stamps those).
    pub owned_since: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    /// Set with `deleted_at` when the record was merged into another (`mergeCustomers`):
    /// its contacts, deals and history live on there, and it cannot be restored.
    pub merged_into: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
