//! Complaints, suggestions, praise, survey answers and service requests.
use crate::enums::{FeedbackChannel, FeedbackKind, FeedbackStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "feedback")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub kind: FeedbackKind,
    pub channel: FeedbackChannel,
    pub rating: Option<i32>,
    pub nps: Option<i32>,
    pub content: String,
    pub status: FeedbackStatus,
    pub handler_id: Option<Uuid>,
    pub resolution: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
