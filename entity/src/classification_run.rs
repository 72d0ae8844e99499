//! A full reclassification pass and its progress.
use crate::enums::{ClassificationReason, RunStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "classification_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub reason: ClassificationReason,
    pub status: RunStatus,
    pub total: i64,
    pub processed: i64,
    pub changed: i64,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub error: Option<String>,
    /// RFM cut-offs computed by this run.
    pub state: Option<Json>,
    /// Who asked for it (none: the scheduler or a deal write).
    pub started_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
