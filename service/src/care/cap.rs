//! The contact-frequency cap: at most N promotional touches per period outside the
//! holiday window; a reminder that would exceed it is kept SUPPRESSED with its reason.
use crate::care::calendar::near_holiday;
use crate::care::rules::{Candidate, Context};
use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};
use entity::enums::{ReminderRule, ReminderStatus};
use entity::reminder;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Applies the frequency cap to promotional candidates: a customer with `max_touches`
/// promotional reminders (neither suppressed nor dismissed) due within the last `days`
/// days, outside holiday windows, gets the new one SUPPRESSED with the reason.
pub(super) async fn apply_cap(db: &impl ConnectionTrait, cx: &Context, candidates: &mut [Candidate]) -> AppResult<()> {
    let cap = &cx.policy.frequency_cap;
    if near_holiday(&cx.holidays, cx.day, cap.holiday_window_days) {
        return Ok(());
    }
    let promotional: Vec<ReminderRule> = cx.policy.rules.iter().filter(|r| r.promotional).map(|r| r.kind).collect();
    let ids: Vec<Uuid> =
        candidates.iter().filter(|c| c.promotional).map(|c| c.customer).collect::<HashSet<_>>().into_iter().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let since = cx.due_at - Duration::days(i64::from(cap.days));
    let mut touches: HashMap<Uuid, Vec<(DateTime<Utc>, ReminderRule, String)>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows = reminder::Entity::find()
            .filter(reminder::Column::CustomerId.is_in(chunk.to_vec()))
            .filter(reminder::Column::Rule.is_in(promotional.clone()))
            .filter(reminder::Column::Status.is_not_in([ReminderStatus::Suppressed, ReminderStatus::Dismissed]))
            .filter(reminder::Column::DueAt.gt(since))
            .filter(reminder::Column::DueAt.lte(cx.due_at))
            .all(db)
            .await?;
        for r in rows {
            if near_holiday(&cx.holidays, r.due_at.date_naive(), cap.holiday_window_days) {
                continue;
            }
            touches.entry(r.customer_id).or_default().push((r.due_at, r.rule, r.occasion));
        }
    }
    for c in candidates.iter_mut().filter(|c| c.promotional) {
        let list = touches.entry(c.customer).or_default();
        // The reminder itself, from an earlier run of the same day, is not a touch against it.
        let others: Vec<_> =
            list.iter().filter(|(_, rule, occasion)| !(*rule == c.rule && *occasion == c.occasion)).collect();
        if others.len() >= cap.max_touches as usize {
            let latest = others.iter().map(|t| t.0).max().unwrap_or(cx.due_at);
            c.status = ReminderStatus::Suppressed;
            c.suppressed_reason = Some(format!(
                "frequency cap: {} promotional touch(es) already within {} days (latest due {}); at most {} per {} days outside holidays",
                others.len(),
                cap.days,
                latest.date_naive(),
                cap.max_touches,
                cap.days
            ));
        } else {
            list.push((cx.due_at, c.rule, c.occasion.clone()));
        }
    }
    Ok(())
}
