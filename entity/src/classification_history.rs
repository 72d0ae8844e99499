//! Every change of a customer's tier or lifecycle stage, with its reason.
use crate::enums::ClassificationReason;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "classification_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    /// TIER or LIFECYCLE.
    pub field: String,
    pub from_value: Option<String>,
    pub to_value: String,
    /// DEAL_WON, DEAL_LOST, DEAL_CHANGED, OVERRIDE, POLICY_CHANGE, TIME_PASSED, RECLASSIFY.
    pub reason: ClassificationReason,
    pub actor_id: Option<Uuid>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
