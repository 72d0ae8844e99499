//! The audit trail: every write adds a row in the same transaction as the write.
use crate::error::AppResult;
use entity::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;
use uuid::Uuid;

/// Appends one audit row. `old`/`new` are the record before and after.
pub async fn record<T: Serialize>(
    db: &impl ConnectionTrait,
    actor_id: Option<Uuid>,
    action: &str,
    entity: &str,
    record_id: Uuid,
    old: Option<&T>,
    new: Option<&T>,
) -> AppResult<()> {
    let to_json = |v: Option<&T>| v.and_then(|v| serde_json::to_value(v).ok());
    audit_log::ActiveModel {
        id: Set(super::new_id()),
        actor_id: Set(actor_id),
        action: Set(action.to_string()),
        entity: Set(entity.to_string()),
        record_id: Set(record_id),
        old_values: Set(to_json(old)),
        new_values: Set(to_json(new)),
        at: Set(super::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
