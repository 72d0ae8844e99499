//! A due action for a user about a customer, created once per (rule, target, occasion).
use crate::enums::{AssigneeRole, ReminderRule, ReminderStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "reminder")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub rule: ReminderRule,
    /// The customer or contact the reminder is about (part of the unique key).
    pub target_id: Uuid,
    /// What occasioned it: a deal id, a birthday, a holiday date, a last-contact date...
    pub occasion: String,
    pub customer_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub deal_id: Option<Uuid>,
    /// A named user (policy role other than the owner); `None`: the customer's current owner.
    pub assignee_id: Option<Uuid>,
    pub assignee_role: AssigneeRole,
    pub due_at: DateTimeUtc,
    pub status: ReminderStatus,
    pub reason: String,
    pub message: String,
    pub suppressed_reason: Option<String>,
    pub dismissed_reason: Option<String>,
    pub interaction_id: Option<Uuid>,
    /// When `reminderDue` was raised for the current due time.
    pub notified_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
