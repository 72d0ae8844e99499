//! The re-seal pass (`docs/privacy.md`): every sealed field not under the current data key
//! (plain text written before the field was sealed, or a value under an older key) is
//! opened and sealed again, a batch at a time. Each row is rewritten only if it still
//! holds what was read, so a concurrent edit is never overwritten, and the pass can run
//! on every instance at once and be run again at any time.
use crate::customer;
use crate::error::{AppError, AppResult};
use crate::kernel::store::write;
use crate::kernel::vault::Keyring;
use crate::records::contact;
use entity::{audit_log, contact as contact_row, customer as customer_row};
use sea_orm::DatabaseConnection;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::Value as Json;
use uuid::Uuid;

/// Rows read per batch.
const BATCH: u64 = 500;

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    pub contacts: u64,
    pub customers: u64,
    /// Audit rows whose sealed (or still plain) addresses were sealed again.
    pub audit_rows: u64,
    /// Webhook secrets and kept webhook payloads.
    pub webhooks: u64,
    /// Contacts left under their old key: their ID number is another live contact's.
    pub conflicts: u64,
}

/// `column` holds exactly `value` (NULL-safe).
fn holds(column: impl ColumnTrait, value: &Option<String>) -> Condition {
    Condition::all().add(match value {
        Some(v) => column.eq(v.clone()),
        None => column.is_null(),
    })
}

fn stale(vault: &Keyring, value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| !vault.is_current(v))
}

/// Re-seals every contact and customer field not under the current key.
///
/// # Errors
/// Database errors, or a value that does not open (its key is missing): the pass stops
/// there, and nothing it did is lost.
pub async fn reseal(db: &DatabaseConnection, vault: &Keyring) -> AppResult<Resealed> {
    let mut done = Resealed::default();
    let mut after = Uuid::nil();
    loop {
        let rows = contact_row::Entity::find()
            .filter(contact_row::Column::Id.gt(after))
            .filter(
                Condition::any()
                    .add(contact_row::Column::IdNumber.is_not_null())
                    .add(contact_row::Column::Address.is_not_null()),
            )
            .order_by_asc(contact_row::Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in rows {
            if !stale(vault, &row.id_number) && !stale(vault, &row.address) {
                continue;
            }
            let number = contact::id_number(vault, &row)?;
            let address = contact::address(vault, &row)?;
            let res = contact_row::Entity::update_many()
                .col_expr(
                    contact_row::Column::IdNumber,
                    Expr::value(number.as_ref().map(|n| vault.seal(contact::ID_NUMBER, row.id, n))),
                )
                .col_expr(
                    contact_row::Column::IdNumberIndex,
                    Expr::value(number.as_ref().map(|n| vault.index(contact::ID_NUMBER, n))),
                )
                .col_expr(
                    contact_row::Column::Address,
                    Expr::value(address.as_ref().map(|a| vault.seal(contact::ADDRESS, row.id, a))),
                )
                .filter(contact_row::Column::Id.eq(row.id))
                .filter(holds(contact_row::Column::IdNumber, &row.id_number))
                .filter(holds(contact_row::Column::Address, &row.address))
                .exec(db)
                .await
                .map_err(AppError::from);
            match res {
                Ok(res) => done.contacts += res.rows_affected,
                // Two live contacts of one customer with one ID number, sealed under two
                // keys (made while a rotation was under way): leave this one under its old
                // key for a person to resolve, and go on with the others.
                Err(AppError::Duplicate { .. }) => {
                    tracing::warn!(contact = %row.id, customer = %row.customer_id, "ID number shared with another live contact of the customer; left under its old key");
                    done.conflicts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut after = Uuid::nil();
    loop {
        let rows: Vec<(Uuid, Option<String>)> = customer_row::Entity::find()
            .select_only()
            .columns([customer_row::Column::Id, customer_row::Column::Address])
            .filter(customer_row::Column::Id.gt(after))
            .filter(customer_row::Column::Address.is_not_null())
            .order_by_asc(customer_row::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, stored) in rows {
            let Some(value) = stored.as_deref().filter(|v| !vault.is_current(v)) else { continue };
            let plain = vault.open(customer::ADDRESS, id, value)?;
            let res = customer_row::Entity::update_many()
                .col_expr(customer_row::Column::Address, Expr::value(vault.seal(customer::ADDRESS, id, &plain)))
                .filter(customer_row::Column::Id.eq(id))
                .filter(holds(customer_row::Column::Address, &stored))
                .exec(db)
                .await?;
            done.customers += res.rows_affected;
        }
    }
    done.audit_rows = reseal_audit(db, vault).await?;
    done.webhooks = crate::webhook::reseal(db, vault).await?;
    Ok(done)
}

/// The address of an audit value sealed again under the current key, if it needs it
/// (sealed under an older key, or plain from before addresses were sealed).
fn resealed_address(vault: &Keyring, field: &str, record: Uuid, values: &Option<Json>) -> AppResult<Option<Json>> {
    let Some(v) = values else { return Ok(None) };
    let Some(stored) = v.get("address").and_then(Json::as_str) else { return Ok(None) };
    if vault.is_current(stored) || stored == crate::personal::ERASED {
        return Ok(None);
    }
    let plain = vault.open(field, record, stored)?;
    let mut out = v.clone();
    out["address"] = Json::String(vault.seal(field, record, &plain));
    Ok(Some(out))
}

/// Re-seals the addresses held in audit rows (customers and contacts), a locked batch at
/// a time: an erasure scrubbing the same rows waits for the batch, or the batch for it.
async fn reseal_audit(db: &DatabaseConnection, vault: &Keyring) -> AppResult<u64> {
    let mut done = 0;
    let mut after = Uuid::nil();
    loop {
        let ids: Vec<Uuid> = audit_log::Entity::find()
            .select_only()
            .column(audit_log::Column::Id)
            .filter(audit_log::Column::Id.gt(after))
            .filter(audit_log::Column::Entity.is_in(["customer", "contact"]))
            .order_by_asc(audit_log::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(last) = ids.last() else { break };
        after = *last;
        done += write(db, async |txn| {
            let rows = audit_log::Entity::find()
                .filter(audit_log::Column::Id.is_in(ids.clone()))
                .lock_exclusive()
                .all(txn)
                .await?;
            let mut changed = 0;
            for row in rows {
                let field = if row.entity == "customer" { customer::ADDRESS } else { contact::ADDRESS };
                let old = resealed_address(vault, field, row.record_id, &row.old_values)?;
                let new = resealed_address(vault, field, row.record_id, &row.new_values)?;
                if old.is_none() && new.is_none() {
                    continue;
                }
                audit_log::Entity::update_many()
                    .col_expr(audit_log::Column::OldValues, Expr::value(old.or(row.old_values)))
                    .col_expr(audit_log::Column::NewValues, Expr::value(new.or(row.new_values)))
                    .filter(audit_log::Column::Id.eq(row.id))
                    .exec(txn)
                    .await?;
                changed += 1;
            }
            Ok(changed)
        })
        .await?;
    }
    Ok(done)
}
