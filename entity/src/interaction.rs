//! The activity log: visits, calls, messages and more.
use crate::enums::{Direction, InteractionKind};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "interaction")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub contact_id: Option<Uuid>,
    /// The staff member who made the contact.
    pub user_id: Uuid,
    pub kind: InteractionKind,
    pub direction: Direction,
    pub occurred_at: DateTimeUtc,
    pub summary: String,
    pub outcome: Option<String>,
    pub next_follow_up_on: Option<Date>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
