//! A webhook: a subscription of a receiver URL to domain events, speaking with the grants
//! of its account (an API key's service account, or the admin who made it).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "webhook")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub url: String,
    /// Whose grants decide what the webhook hears and what its payloads hold.
    pub account_id: Uuid,
    /// The API key the webhook belongs to, if any (the key may manage it).
    pub api_key_id: Option<Uuid>,
    /// Event types, comma-separated (`customer.created,deal.won`).
    pub events: String,
    /// Only customers of this department's subtree, if set.
    pub department_id: Option<Uuid>,
    /// Only customers of these tiers, comma-separated; empty for every tier.
    pub tiers: String,
    /// The signing secret, sealed (`vault.rs`).
    #[serde(skip_serializing)]
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_until`.
    #[serde(skip_serializing)]
    pub previous_secret: Option<String>,
    pub previous_until: Option<DateTimeUtc>,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
