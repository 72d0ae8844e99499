//! The follow-up an interaction plans (`nextFollowUpOn`, 下次跟进): a reminder for the
//! customer's owner, due at the care policy's hour of that day. Planned in the
//! interaction's transaction, as part of logging it; the care engine plans the ones a
//! person sets for themself (`care::create_follow_up`) the same way and delivers both
//! (`docs/care.md`).
use crate::error::AppResult;
use crate::kernel::{day_start, new_id, now};
use crate::policy::care::policy;
use chrono::{Duration, NaiveDate};
use entity::enums::{AssigneeRole, ReminderRule, ReminderStatus};
use entity::{customer, interaction, reminder};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;

/// Plans a follow-up inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn plan(
    txn: &impl ConnectionTrait,
    customer: &customer::Model,
    target_id: Uuid,
    contact_id: Option<Uuid>,
    due_on: NaiveDate,
    assignee_id: Option<Uuid>,
    reason: String,
    message: String,
) -> AppResult<reminder::Model> {
    let (policy, _) = policy(txn).await?;
    let at = now();
    let due_at = std::cmp::max(day_start(due_on) + Duration::hours(i64::from(policy.due_hour_utc)), at);
    let row = reminder::ActiveModel {
        id: Set(new_id()),
        rule: Set(ReminderRule::FollowUp),
        target_id: Set(target_id),
        occasion: Set(due_on.to_string()),
        customer_id: Set(customer.id),
        contact_id: Set(contact_id),
        deal_id: Set(None),
        assignee_id: Set(assignee_id),
        assignee_role: Set(AssigneeRole::Owner),
        due_at: Set(due_at),
        status: Set(ReminderStatus::Pending),
        reason: Set(reason),
        message: Set(message),
        suppressed_reason: Set(None),
        dismissed_reason: Set(None),
        interaction_id: Set(None),
        notified_at: Set(None),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(txn)
    .await?;
    Ok(row)
}

/// The follow-up an interaction plans with `nextFollowUpOn`, for the customer's owner
/// (called in the interaction's transaction; a date before today plans nothing).
///
/// # Errors
/// Database errors.
pub async fn after_interaction(
    txn: &impl ConnectionTrait,
    customer: &customer::Model,
    logged: &interaction::Model,
) -> AppResult<Option<reminder::Model>> {
    let Some(due_on) = logged.next_follow_up_on.filter(|d| *d >= now().date_naive()) else { return Ok(None) };
    let summary: String = logged.summary.chars().take(200).collect();
    let reason = format!(
        "follow-up planned at the {} of {}",
        logged.kind.as_str().to_lowercase(),
        logged.occurred_at.date_naive()
    );
    let message = format!("跟进 Follow up: {summary}");
    plan(txn, customer, logged.id, logged.contact_id, due_on, None, reason, message).await.map(Some)
}
