//! The customer archive: create, read, update, soft delete, restore, assign; duplicate
//! keys (phone, e-mail, organization name) enforced by named unique indexes.
pub mod bulk;
pub mod custom_filter;
pub mod duplicates;
pub mod merge;
mod ownership;
mod read;
pub mod tally;
mod write;

use crate::access::list::{ListQuery, Listing};
use crate::access::live::Events;
use crate::access::{Actor, Placement};
use crate::catalogue::{CUSTOMER, RecordCatalogue};
use crate::category::{self, Catalogue};
use crate::choice;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{Change, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::filter::{Field, Kind};
use crate::kernel::pagination::{Page, SortKey, SortValue, paginate, paginate_parts};
use crate::kernel::store::{check_version, save, write};
use crate::kernel::vault::Keyring;
use crate::kernel::{Patch, clean, new_id, normalize, now, optional_text, required_text};
use chrono::NaiveDate;
use entity::customer::{self, Column};
use entity::department;
use entity::enums::{Action, CustomerKind, CustomerSource, Gender, Importance, LifecycleStage, Resource, Tier};
pub use ownership::*;
pub use read::*;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Select, Set,
};
use serde_json::Value as Json;
use uuid::Uuid;
pub use write::*;

/// The category a customer gets when none is given (both are seeded; `docs/categories.md`).
pub fn default_category(kind: CustomerKind) -> &'static str {
    match kind {
        CustomerKind::Individual => "retail",
        CustomerKind::Organization => "partner",
    }
}

/// The field name a customer's address is sealed under (`vault`).
pub const ADDRESS: &str = "customer.address";

/// The plain address of a customer (opened; legacy plain text passes through).
///
/// # Errors
/// INTERNAL when it does not open.
pub fn address(vault: &Keyring, c: &customer::Model) -> AppResult<Option<String>> {
    c.address.as_deref().map(|v| vault.open(ADDRESS, c.id, v)).transpose()
}

/// A new customer as entered.
#[derive(Default, Clone)]
pub struct NewCustomer {
    pub kind: Option<CustomerKind>,
    pub category: Option<String>,
    pub name: String,
    pub gender: Option<Gender>,
    pub birthday: Option<NaiveDate>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub region: Option<String>,
    pub industry: Option<String>,
    pub source: Option<CustomerSource>,
    pub importance: Option<Importance>,
    pub credit_rating: Option<String>,
    pub cooperation_start_date: Option<NaiveDate>,
    pub soft_profile: Option<Json>,
    pub custom_fields: Option<Json>,
    pub lifecycle_stage: Option<LifecycleStage>,
}

/// Changes to a customer; `None` leaves a field, `Some(None)` clears it.
#[derive(Default, Clone)]
pub struct CustomerPatch {
    pub category: Option<String>,
    pub name: Option<String>,
    pub gender: Patch<Gender>,
    pub birthday: Patch<NaiveDate>,
    pub phone: Patch<String>,
    pub email: Patch<String>,
    pub address: Patch<String>,
    pub region: Patch<String>,
    pub industry: Patch<String>,
    pub source: Patch<CustomerSource>,
    pub importance: Patch<Importance>,
    pub credit_rating: Patch<String>,
    pub cooperation_start_date: Patch<NaiveDate>,
    pub soft_profile: Patch<Json>,
    pub custom_fields: Patch<Json>,
    pub lifecycle_stage: Option<LifecycleStage>,
}

/// The natural keys of a customer as entered, normalised: phone (E.164), e-mail, and an
/// organization's name (individuals may share a name). Values that do not normalise
/// are no key (the write will say why).
pub(crate) fn natural_keys(
    kind: CustomerKind,
    name: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
) -> Vec<(Column, String)> {
    let mut keys = Vec::new();
    if let Some(p) = phone.and_then(|p| normalize::phone_e164(p).ok()) {
        keys.push((Column::PhoneNorm, p.into()));
    }
    if let Some(e) = email.and_then(|e| normalize::email(e).ok()) {
        keys.push((Column::EmailNorm, e.into()));
    }
    if kind == CustomerKind::Organization
        && let Some(n) = name.map(normalize::org_name).filter(|n| !n.is_empty())
    {
        keys.push((Column::NameNorm, n));
    }
    keys
}

/// Why a customer matched by a natural key is not touched: it is someone else's; staff
/// learn its department (the ownership rule), a partner system only that it exists.
/// Returns the department named (staff) and the message.
///
/// # Errors
/// Database errors.
pub(crate) async fn held_by(
    db: &impl ConnectionTrait,
    actor: &Actor,
    m: &customer::Model,
) -> AppResult<(Option<String>, String)> {
    const MESSAGE: &str = "matches a customer you may not change";
    if !actor.is_staff() {
        return Ok((None, MESSAGE.to_string()));
    }
    let name = department::Entity::find_by_id(m.department_id).one(db).await?.map(|d| d.name).unwrap_or_default();
    let message = format!("{MESSAGE} (department: {name})");
    Ok((Some(name), message))
}

/// Loads a live customer for an action inside the caller's transaction.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN.
pub async fn load_for_action(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    id: Uuid,
    action: Action,
) -> AppResult<customer::Model> {
    load_for(txn, actor, id, action, false).await
}

/// Loads a customer for a write: NOT_FOUND if the caller cannot read it (deleted ones
/// included when `deleted`), FORBIDDEN if the action's scope does not cover it.
async fn load_for(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    id: Uuid,
    action: Action,
    deleted: bool,
) -> AppResult<customer::Model> {
    let live = if deleted { Column::DeletedAt.is_not_null() } else { Column::DeletedAt.is_null() };
    let row = customer::Entity::find_by_id(id)
        .filter(live.clone())
        .filter(actor.customer_condition(Resource::Customer, Action::Read))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("customer"))?;
    actor.require(Resource::Customer, action)?;
    let allowed = customer::Entity::find_by_id(id)
        .filter(live)
        .filter(actor.customer_condition(Resource::Customer, action))
        .count(txn)
        .await?;
    if allowed == 0 {
        return Err(AppError::Forbidden(format!("you may not {} this customer", action.as_str().to_lowercase())));
    }
    Ok(row)
}
