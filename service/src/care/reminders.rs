//! A user's reminders: list, complete (logging the contact), snooze, dismiss.
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::Verb;
use crate::kernel::now;
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::store::{save, write};
use crate::kernel::types::Id;
use crate::records::interaction::{self, NewInteraction};
use chrono::{DateTime, Duration, Utc};
use entity::enums::ReminderStatus;
use entity::reminder;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// The caller's reminders, soonest due first.
///
/// # Errors
/// VALIDATION (paging).
pub async fn my_reminders(
    db: &DatabaseConnection,
    actor: &Actor,
    status: Option<Vec<ReminderStatus>>,
    due_before: Option<DateTime<Utc>>,
    args: &PageArgs,
) -> AppResult<Page<reminder::Model>> {
    let status = status.unwrap_or_else(|| vec![ReminderStatus::Pending, ReminderStatus::Snoozed]);
    let mut q =
        reminder::Entity::find().filter(actor.reminder_condition()).filter(reminder::Column::Status.is_in(status));
    if let Some(b) = due_before {
        q = q.filter(reminder::Column::DueAt.lt(b));
    }
    let keys =
        [SortKey::<reminder::Entity>::new("dueAt", reminder::Column::DueAt, false, |m| SortValue::Time(m.due_at))];
    paginate(db, q, &keys, reminder::Column::Id, |m| m.id, args).await
}

/// One of the caller's reminders inside a write transaction.
async fn load_mine(txn: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<reminder::Model> {
    reminder::Entity::find_by_id(id)
        .filter(actor.reminder_condition())
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("reminder"))
}

fn open(r: &reminder::Model) -> AppResult<()> {
    match r.status {
        ReminderStatus::Pending | ReminderStatus::Snoozed => Ok(()),
        s => Err(AppError::Conflict(format!(
            "the reminder is {}; only pending or snoozed reminders change",
            s.as_str().to_lowercase()
        ))),
    }
}

/// Completes a reminder by logging the contact made (its customer, and its contact
/// unless another is named), in one transaction.
///
/// # Errors
/// NOT_FOUND, CONFLICT (not open), and the interaction's own errors.
pub async fn complete(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    mut input: NewInteraction,
) -> AppResult<(reminder::Model, entity::interaction::Model)> {
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        input.customer_id = Id::new(r.customer_id);
        if input.contact_id.is_none() {
            input.contact_id = r.contact_id.map(Id::new);
        }
        let logged = interaction::create_in(txn, actor, input).await?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Done),
            interaction_id: Set(Some(logged.id)),
            ..Default::default()
        };
        Ok((save::<reminder::Entity>(txn, Some(actor.id()), Verb::Update, &r, am).await?, logged))
    })
    .await
}

/// Puts a reminder off until `until` (in the future, within a year); it is announced
/// again then.
///
/// # Errors
/// NOT_FOUND, VALIDATION, CONFLICT.
pub async fn snooze(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    until: DateTime<Utc>,
) -> AppResult<reminder::Model> {
    let t = now();
    if until <= t || until > t + Duration::days(366) {
        return Err(AppError::invalid("until", "must be in the future and within a year"));
    }
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Snoozed),
            due_at: Set(until),
            notified_at: Set(None),
            ..Default::default()
        };
        save::<reminder::Entity>(txn, Some(actor.id()), Verb::Update, &r, am).await
    })
    .await
}

/// Dismisses a reminder with a reason.
///
/// # Errors
/// NOT_FOUND, VALIDATION (reason), CONFLICT.
pub async fn dismiss(db: &DatabaseConnection, actor: &Actor, id: Uuid, reason: &str) -> AppResult<reminder::Model> {
    let mut v = Violations::new();
    let reason = crate::kernel::required_text(&mut v, "reason", reason, 500);
    v.into_result()?;
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Dismissed),
            dismissed_reason: Set(Some(reason)),
            ..Default::default()
        };
        save::<reminder::Entity>(txn, Some(actor.id()), Verb::Update, &r, am).await
    })
    .await
}
