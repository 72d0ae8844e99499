//! Bulk writes for partners (`docs/partners.md`): `createCustomers` and `upsertCustomers`
//! of up to 100 records, each in its own transaction, each with its own result, so one
//! bad record does not sink the batch. The outcomes are the import's (`ImportOutcome`):
//! a record is what the same line of a CSV import would have been.
use crate::access::Actor;
use crate::access::live::Events;
use crate::category::Catalogue;
use crate::customer::{self, CustomerPatch, NewCustomer};
use crate::error::{AppError, AppResult};
use crate::kernel::change::Verb;
use crate::kernel::store::{save, write};
use crate::kernel::vault::Keyring;
use entity::customer::Column as C;
use entity::enums::{Action, CustomerKind, ImportOutcome, Resource};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TryIntoModel};
use serde_json::Value as Json;

/// Most records one bulk call takes.
pub const MAX_ITEMS: usize = 100;

/// What became of one record.
pub struct Item {
    pub outcome: ImportOutcome,
    /// The record written, or the one left as it was (UNCHANGED).
    pub customer: Option<entity::customer::Model>,
    /// Why not (DUPLICATE, INVALID with every bad field, FAILED).
    pub error: Option<AppError>,
}

impl Item {
    fn done(outcome: ImportOutcome, m: entity::customer::Model) -> Self {
        Item { outcome, customer: Some(m), error: None }
    }

    fn refused(e: AppError) -> Self {
        let outcome = match &e {
            AppError::Duplicate { .. } => ImportOutcome::Duplicate,
            AppError::Validation(_) => ImportOutcome::Invalid,
            AppError::Internal(source) => {
                tracing::error!(error = %source, "bulk record failed");
                ImportOutcome::Failed
            }
            _ => ImportOutcome::Failed,
        };
        Item { outcome, customer: None, error: Some(e) }
    }
}

/// `given` laid over `stored` when both are objects (its null values give nothing, as an
/// upsert's null fields do); else `given`.
fn overlay(stored: Option<&Json>, given: Json) -> Json {
    match (stored, given) {
        (Some(Json::Object(stored)), Json::Object(given)) => {
            let mut merged = stored.clone();
            merged.extend(given.into_iter().filter(|(_, v)| !v.is_null()));
            Json::Object(merged)
        }
        (_, given) => given,
    }
}

fn check_size(count: usize) -> AppResult<()> {
    if count == 0 || count > MAX_ITEMS {
        return Err(AppError::invalid("inputs", format!("must hold 1 to {MAX_ITEMS} records")));
    }
    Ok(())
}

/// What a bulk call does with each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As `createCustomer` would (its checks, duplicates refused, audit, `newLead`).
    Create,
    /// By its natural keys (phone, e-mail, an organization's name), as an import line: no
    /// match creates; one match the caller may update takes the record's non-null fields
    /// (UPDATED, or UNCHANGED when they are what it holds); a match the caller may not
    /// change is DUPLICATE (staff learn its department); several matches of the caller's
    /// own are DUPLICATE (merge them first).
    Upsert,
}

/// Writes each record in order, each in its own transaction, each with its result.
///
/// # Errors
/// VALIDATION (an empty or oversized batch), FORBIDDEN (no create grant: an upsert may
/// create, and without that right it would only probe who holds what): nothing is
/// written. Each record's own refusal is in its result.
pub async fn customers(
    db: &DatabaseConnection,
    events: &Events,
    vault: &Keyring,
    actor: &Actor,
    mode: Mode,
    inputs: Vec<NewCustomer>,
) -> AppResult<Vec<Item>> {
    check_size(inputs.len())?;
    actor.require(Resource::Customer, Action::Create)?;
    let mut items = Vec::with_capacity(inputs.len());
    for input in inputs {
        items.push(match mode {
            Mode::Create => create_one(db, events, vault, actor, input).await,
            Mode::Upsert => upsert_one(db, events, vault, actor, input).await.unwrap_or_else(Item::refused),
        });
    }
    Ok(items)
}

async fn create_one(
    db: &DatabaseConnection,
    events: &Events,
    vault: &Keyring,
    actor: &Actor,
    input: NewCustomer,
) -> Item {
    match customer::create(db, events, vault, actor, input).await {
        Ok(m) => Item::done(ImportOutcome::Created, m),
        Err(e) => Item::refused(e),
    }
}

async fn upsert_one(
    db: &DatabaseConnection,
    events: &Events,
    vault: &Keyring,
    actor: &Actor,
    input: NewCustomer,
) -> AppResult<Item> {
    let kind = input.kind.unwrap_or(CustomerKind::Individual);
    let keys = customer::natural_keys(kind, Some(&input.name), input.phone.as_deref(), input.email.as_deref());
    let mut matched = Vec::<entity::customer::Model>::new();
    for (column, value) in keys {
        let found =
            entity::customer::Entity::find().filter(C::DeletedAt.is_null()).filter(column.eq(value)).one(db).await?;
        if let Some(m) = found
            && !matched.iter().any(|x| x.id == m.id)
        {
            matched.push(m);
        }
    }
    if matched.is_empty() {
        return Ok(create_one(db, events, vault, actor, input).await);
    }
    let result = write(db, async |txn| {
        // Each match must be one the caller may change; else it is someone else's, and
        // the caller learns no more (not how many match, nor which key).
        let mut writable = Vec::with_capacity(matched.len());
        for m in &matched {
            match customer::load_for_action(txn, actor, m.id, Action::Update).await {
                Ok(m) => writable.push(m),
                Err(AppError::NotFound(_) | AppError::Forbidden(_)) => {
                    // One the caller may read but not change (a partner's key sending its
                    // own leads again): UNCHANGED when the record already holds what was
                    // sent, so a re-run answers as a re-run; else as someone else's.
                    if matched.len() == 1
                        && let Ok(readable) = customer::load_for_action(txn, actor, m.id, Action::Read).await
                        && same_as_stored(txn, vault, actor, &readable, &input).await
                    {
                        return Ok(Item::done(ImportOutcome::Unchanged, readable));
                    }
                    let (department, message) = customer::held_by(txn, actor, m).await?;
                    return Err(AppError::Duplicate { key: "customer", department, message });
                }
                Err(e) => return Err(e),
            }
        }
        let old = match writable.as_slice() {
            [one] => one.clone(),
            many => {
                let message = format!("matches {} of your customers; merge them first", many.len());
                return Err(AppError::Duplicate { key: "customer", department: None, message });
            }
        };
        if input.kind.is_some_and(|k| k != old.kind) {
            return Err(AppError::invalid("kind", format!("the customer this record matches is {}", old.kind)));
        }
        let catalogue = Catalogue::load(txn).await?;
        let am = customer::patched(txn, &catalogue, vault, actor, &old, patch_of(&old, input)).await?;
        if am.clone().try_into_model().is_ok_and(|new| new == old) {
            return Ok(Item::done(ImportOutcome::Unchanged, old));
        }
        let saved = save::<entity::customer::Entity>(txn, Some(actor.id()), Verb::Upsert, &old, am).await?;
        Ok(Item::done(ImportOutcome::Updated, saved))
    })
    .await;
    Ok(result.unwrap_or_else(Item::refused))
}

/// Whether `input` would leave `old` as it is (checked as an update would be; any refusal
/// counts as a change).
async fn same_as_stored(
    txn: &impl sea_orm::ConnectionTrait,
    vault: &Keyring,
    actor: &Actor,
    old: &entity::customer::Model,
    input: &NewCustomer,
) -> bool {
    if input.kind.is_some_and(|k| k != old.kind) {
        return false;
    }
    let Ok(catalogue) = Catalogue::load(txn).await else { return false };
    match customer::patched(txn, &catalogue, vault, actor, old, patch_of(old, input.clone())).await {
        Ok(am) => am.try_into_model().is_ok_and(|new| new == *old),
        Err(_) => false,
    }
}

/// The patch an upserted record makes of its match.
fn patch_of(old: &entity::customer::Model, input: NewCustomer) -> CustomerPatch {
    let set = |v: Option<String>| v.map(Some);
    CustomerPatch {
        category: input.category.map(|c| c.trim().to_lowercase()).filter(|c| *c != old.category),
        name: Some(input.name),
        gender: input.gender.map(Some),
        birthday: input.birthday.map(Some),
        phone: set(input.phone),
        email: set(input.email),
        address: set(input.address),
        region: set(input.region),
        industry: set(input.industry),
        source: input.source.map(Some),
        importance: input.importance.map(Some),
        credit_rating: set(input.credit_rating),
        cooperation_start_date: input.cooperation_start_date.map(Some),
        // Objects given are laid over the stored ones, key by key, as an import line's
        // custom fields are: keys not sent stay.
        soft_profile: input.soft_profile.map(|g| Some(overlay(old.soft_profile.as_ref(), g))),
        custom_fields: input.custom_fields.map(|g| Some(overlay(old.custom_fields.as_ref(), g))),
        // The stage moves with deals once past PROSPECT; restating it is no change.
        lifecycle_stage: input.lifecycle_stage.filter(|s| *s != old.lifecycle_stage),
    }
}
