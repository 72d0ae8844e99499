//! A reported pair of customers that may be one (seed 004's 举报), waiting for a manager.
use crate::enums::DuplicateReportStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "duplicate_report")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The record reported as wrongly entered.
    pub customer_id: Uuid,
    /// The record it duplicates.
    pub duplicate_of_id: Uuid,
    pub note: Option<String>,
    pub reported_by: Uuid,
    pub status: DuplicateReportStatus,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTimeUtc>,
    pub resolution: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
