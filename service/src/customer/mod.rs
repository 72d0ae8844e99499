//! The customer archive: create, read, update, soft delete, restore, assign; duplicate
//! keys (phone, e-mail, organization name) enforced by named unique indexes.
pub mod bulk;
pub mod custom_filter;
pub mod duplicates;
pub mod merge;
use crate::access::list::{self, ListQuery, Listing};
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
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Set,
};
use serde_json::Value as Json;
use uuid::Uuid;

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

/// Sortable fields of the customer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortField {
    Name,
    CreatedAt,
    UpdatedAt,
    Category,
    Kind,
    LifecycleStage,
    Tier,
    Revenue,
    WonDealCount,
    /// A custom field of the category templates, by key.
    Custom(String),
}

/// The keyset sort key of a field.
///
/// # Errors
/// VALIDATION for a custom field the templates open to the caller do not define, or
/// one of a type without an order.
pub fn sort_key(
    field: &SortField,
    descending: bool,
    custom: Option<&custom_filter::Custom>,
) -> AppResult<SortKey<customer::Entity>> {
    let (name, column, value): (_, _, fn(&customer::Model) -> SortValue) = match field {
        SortField::Name => ("name", Column::Name, |m| SortValue::Text(m.name.clone())),
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
        SortField::UpdatedAt => ("updatedAt", Column::UpdatedAt, |m| SortValue::Time(m.updated_at)),
        SortField::Category => ("category", Column::Category, |m| SortValue::Text(m.category.clone())),
        SortField::Kind => ("kind", Column::Kind, |m| SortValue::Text(m.kind.to_string())),
        SortField::LifecycleStage => {
            ("lifecycleStage", Column::LifecycleStage, |m| SortValue::Text(m.lifecycle_stage.to_string()))
        }
        SortField::Tier => ("tier", Column::Tier, |m| SortValue::Text(m.tier.to_string())),
        SortField::Revenue => ("revenue", Column::RevenueMinor, |m| SortValue::Int(m.revenue_minor)),
        SortField::WonDealCount => ("wonDealCount", Column::WonCount, |m| SortValue::Int(m.won_count as i64)),
        SortField::Custom(key) => {
            let custom = custom.ok_or_else(|| AppError::invalid("orderBy.customField", "no custom fields here"))?;
            return crate::customer::custom_filter::sort_key(custom, key, descending);
        }
    };
    Ok(SortKey::new(name, column, descending, value))
}

impl Listing for customer::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::CUSTOMER;
    type Custom = custom_filter::Custom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::CreatedAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("id", Column::Id, Kind::Id),
        Field::new("name", Column::Name, Kind::Text),
        Field::new("kind", Column::Kind, choice!(CustomerKind)),
        Field::new("category", Column::Category, Kind::Text),
        Field::new("phone", Column::PhoneNorm, Kind::Phone),
        Field::new("email", Column::EmailNorm, Kind::Email),
        Field::new("region", Column::Region, Kind::Text),
        Field::new("industry", Column::Industry, Kind::Text),
        Field::new("source", Column::Source, choice!(CustomerSource)),
        Field::new("importance", Column::Importance, choice!(Importance)),
        Field::new("lifecycleStage", Column::LifecycleStage, choice!(LifecycleStage)),
        Field::new("tier", Column::Tier, choice!(Tier)),
        Field::new("ownerId", Column::OwnerId, Kind::Id),
        Field::new("departmentId", Column::DepartmentId, Kind::Id),
        Field::new("createdAt", Column::CreatedAt, Kind::Time),
        Field::new("updatedAt", Column::UpdatedAt, Kind::Time),
        Field::new("frequencyClass", Column::FrequencyClass, choice!(entity::enums::Level)),
        Field::new("valueClass", Column::ValueClass, choice!(entity::enums::Level)),
        Field::new("relationshipType", Column::RelationshipType, choice!(entity::enums::RelationshipType)),
        Field::new("turnoverMarginClass", Column::TurnoverMarginClass, choice!(entity::enums::TurnoverMarginClass)),
        Field::new("rfmScore", Column::RfmScore, Kind::Int),
        Field::new("wonDealCount", Column::WonCount, Kind::Int),
        Field::new("lastPurchaseOn", Column::LastPurchaseOn, Kind::Day),
        // Won revenue in the window, in the base currency.
        Field::new("revenue", Column::RevenueMinor, Kind::Amount { currency: None }),
    ];
    const CUSTOMER_COLUMN: Option<Column> = None;
    fn sort_key(field: &SortField, descending: bool, custom: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        sort_key(field, descending, custom)
    }
}

/// Normalized duplicate keys of a customer.
struct Keys {
    name_norm: Option<String>,
    phone: Option<String>,
    phone_norm: Option<String>,
    email: Option<String>,
    email_norm: Option<String>,
}

fn category_key(category: &str) -> String {
    category.trim().to_lowercase()
}

fn check_json_object(v: &mut Violations, field: &str, value: &Option<Json>) {
    if let Some(j) = value {
        if !j.is_object() {
            v.add(field, "must be a JSON object");
        } else if j.to_string().len() > 16 * 1024 {
            v.add(field, "must be at most 16 KiB");
        }
    }
}

fn check_birthday(v: &mut Violations, kind: CustomerKind, field: &str, birthday: Option<NaiveDate>) {
    if let Some(b) = birthday {
        if kind == CustomerKind::Organization {
            v.add(field, "only individuals have a birthday");
        } else if !crate::kernel::plausible_birthday(b) {
            v.add(field, "must be between 1900-01-01 and today");
        }
    }
}

fn check_entered_stage(v: &mut Violations, stage: Option<LifecycleStage>) {
    if let Some(s) = stage
        && !matches!(s, LifecycleStage::Target | LifecycleStage::Prospect)
    {
        v.add("lifecycleStage", "only TARGET or PROSPECT can be set; later stages follow from deals");
    }
}

fn keys(v: &mut Violations, kind: CustomerKind, name: &str, phone: Option<String>, email: Option<String>) -> Keys {
    let phone = clean(phone);
    let email = clean(email);
    let phone_norm = phone.as_deref().and_then(|p| v.check("phone", normalize::phone_e164(p)));
    let email_norm = email.as_deref().and_then(|e| v.check("email", normalize::email(e)));
    let name_norm = (kind == CustomerKind::Organization).then(|| normalize::org_name(name)).filter(|n| !n.is_empty());
    Keys { name_norm, phone, phone_norm, email, email_norm }
}

/// Creates a customer owned by the caller in the caller's department.
///
/// # Errors
/// FORBIDDEN (no create grant), VALIDATION (every bad field), DUPLICATE (phone, e-mail or
/// organization name of a live customer; names the owning department only).
pub async fn create(
    db: &DatabaseConnection,
    events: &Events,
    vault: &Keyring,
    actor: &Actor,
    input: NewCustomer,
) -> AppResult<customer::Model> {
    actor.require(Resource::Customer, Action::Create)?;
    let catalogue = Catalogue::load(db).await?;
    let model = prepare(db, vault, actor, &catalogue, input).await?;
    let created = write(db, async |txn| insert_in(txn, actor, Verb::Create, model.clone()).await).await;
    match created {
        Ok((m, signal)) => {
            if let Some(signal) = signal {
                events.publish(signal).await;
            }
            Ok(m)
        }
        Err(e) => Err(explain_duplicate(db, actor, e, &model).await),
    }
}

/// Checks a new customer of the caller (every bad field listed) and returns the row to
/// insert: owned by the caller, in the caller's department. The caller holds the create
/// grant.
///
/// # Errors
/// VALIDATION; database errors.
pub(crate) async fn prepare(
    db: &impl ConnectionTrait,
    vault: &Keyring,
    actor: &Actor,
    catalogue: &Catalogue,
    input: NewCustomer,
) -> AppResult<customer::ActiveModel> {
    let mut v = Violations::new();
    let kind = match input.kind {
        Some(k) => k,
        None => {
            v.add("kind", "is required");
            CustomerKind::Individual
        }
    };
    let name = required_text(&mut v, "name", &input.name, 200);
    let category = category_key(input.category.as_deref().unwrap_or(default_category(kind)));
    let templated =
        category::check_assignable(db, &mut v, catalogue, &category, actor.user.department_id, None).await?;
    if input.gender.is_some() && kind == CustomerKind::Organization {
        v.add("gender", "only individuals have a gender");
    }
    check_birthday(&mut v, kind, "birthday", input.birthday);
    check_json_object(&mut v, "softProfile", &input.soft_profile);
    check_json_object(&mut v, "customFields", &input.custom_fields);
    check_entered_stage(&mut v, input.lifecycle_stage);
    let k = keys(&mut v, kind, &name, input.phone, input.email);
    let address = optional_text(&mut v, "address", input.address, 500);
    let region = optional_text(&mut v, "region", input.region, 100);
    let industry = optional_text(&mut v, "industry", input.industry, 100);
    let credit_rating = optional_text(&mut v, "creditRating", input.credit_rating, 20);

    let now = now();
    let id = new_id();
    let model = customer::ActiveModel {
        id: Set(id),
        kind: Set(kind),
        category: Set(category.clone()),
        name: Set(name),
        name_norm: Set(k.name_norm),
        gender: Set(input.gender),
        birthday: Set(input.birthday),
        phone: Set(k.phone),
        phone_norm: Set(k.phone_norm),
        email: Set(k.email),
        email_norm: Set(k.email_norm),
        address: Set(address.map(|a| vault.seal(ADDRESS, id, &a))),
        region: Set(region),
        industry: Set(industry),
        source: Set(input.source),
        importance: Set(input.importance),
        credit_rating: Set(credit_rating),
        cooperation_start_date: Set(input.cooperation_start_date),
        soft_profile: Set(input.soft_profile),
        custom_fields: Set(input.custom_fields),
        owner_id: Set(Some(actor.id())),
        owned_since: Set(Some(now)),
        department_id: Set(actor.user.department_id),
        lifecycle_stage: Set(input.lifecycle_stage.unwrap_or(LifecycleStage::Target)),
        tier: Set(Tier::D),
        // No deals yet: D, as a classification pass would say.
        computed_tier: Set(Some(Tier::D)),
        created_by: Set(Some(actor.id())),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        // Grades start empty; classification fills them.
        ..Default::default()
    };
    if templated {
        category::check_record(&mut v, &catalogue.template(&category), &category, &model, None);
    }
    v.into_result()?;
    Ok(model)
}

/// Inserts a prepared customer with its change (`verb`: create, import); returns the row
/// and the live signal to publish once committed.
///
/// # Errors
/// DUPLICATE (a unique key, not yet explained), database errors.
pub(crate) async fn insert_in(
    txn: &DatabaseTransaction,
    actor: &Actor,
    verb: Verb,
    model: customer::ActiveModel,
) -> AppResult<(customer::Model, Option<Signal>)> {
    if let sea_orm::ActiveValue::Set(Some(owner)) | sea_orm::ActiveValue::Unchanged(Some(owner)) = model.owner_id {
        crate::care::check_holding_cap(txn, owner, actor.role()).await?;
    }
    let m = model.insert(txn).await?;
    let signal = Change::new(Subject::Customer, verb, m.id, Some(actor.id()), None, Some(&m)).record(txn).await?;
    Ok((m, signal))
}

/// Turns a bare DUPLICATE into one that names the key and, for staff, the owning
/// department of the live customer holding it, and nothing else about that customer. A
/// partner system (the integration role) learns only the colliding key.
pub(crate) async fn explain_duplicate(
    db: &impl ConnectionTrait,
    actor: &Actor,
    e: AppError,
    attempted: &customer::ActiveModel,
) -> AppError {
    let AppError::Duplicate { key, .. } = e else { return e };
    if !actor.is_staff() {
        let message = format!("a customer with this {} already exists", key_label(key));
        return AppError::Duplicate { key, department: None, message };
    }
    let value_of = |v: &sea_orm::ActiveValue<Option<String>>| v.try_as_ref().cloned().flatten();
    let (column, value) = match key {
        "phone" => (Column::PhoneNorm, value_of(&attempted.phone_norm)),
        "email" => (Column::EmailNorm, value_of(&attempted.email_norm)),
        _ => (Column::NameNorm, value_of(&attempted.name_norm)),
    };
    let own_id = attempted.id.try_as_ref().copied();
    let holder = async {
        let Some(value) = value else { return Ok::<_, AppError>(None) };
        let c = customer::Entity::find()
            .filter(Column::DeletedAt.is_null())
            .filter(column.eq(value))
            .filter(Column::Id.ne(own_id.unwrap_or_default()))
            .one(db)
            .await?;
        let Some(c) = c else { return Ok(None) };
        Ok(department::Entity::find_by_id(c.department_id).one(db).await?.map(|d| d.name))
    }
    .await
    .unwrap_or(None);
    let label = key_label(key);
    let message = match &holder {
        Some(d) => format!("a customer with this {label} already exists (department: {d})"),
        None => format!("a customer with this {label} already exists"),
    };
    AppError::Duplicate { key, department: holder, message }
}

/// FORBIDDEN when a change touches fields of a group (`(group, touched)`) that the
/// caller does not see on a record of `over` placed at `placement`: what one cannot read,
/// one does not overwrite blindly.
///
/// # Errors
/// FORBIDDEN.
pub fn may_change_fields(
    actor: &Actor,
    record: &RecordCatalogue,
    placement: Placement,
    fields: &[(&str, bool)],
) -> AppResult<()> {
    let groups = fields.iter().filter(|(_, touched)| *touched).filter_map(|(name, _)| record.group(name));
    for group in groups {
        if !actor.field_access(group, record.resource).admits(placement) {
            let what = match group {
                Resource::ContactDetails => "contact details",
                Resource::PersonalDetails => "personal details",
                _ => "amounts",
            };
            return Err(AppError::Forbidden(format!("you may not change the {what} of this record")));
        }
    }
    Ok(())
}

/// How a duplicate key is named in messages.
fn key_label(key: &str) -> &'static str {
    match key {
        "phone" => "phone number",
        "email" => "e-mail address",
        _ => "organization name",
    }
}

/// A live customer the caller may read.
///
/// # Errors
/// NOT_FOUND when absent, deleted or out of scope.
pub async fn get(db: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<customer::Model> {
    customer::Entity::find_by_id(id)
        .filter(Column::DeletedAt.is_null())
        .filter(actor.customer_condition(Resource::Customer, Action::Read))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("customer"))
}

/// The live customers among `ids` that the caller may read, for batched loads.
pub async fn readable_by_ids(
    db: &DatabaseConnection,
    actor: &Actor,
    ids: Vec<Uuid>,
) -> AppResult<Vec<customer::Model>> {
    Ok(customer::Entity::find()
        .filter(Column::Id.is_in(ids))
        .filter(Column::DeletedAt.is_null())
        .filter(actor.customer_condition(Resource::Customer, Action::Read))
        .all(db)
        .await?)
}

/// Where each of these customers sits (owner, department), whoever asks: used only to
/// decide which field groups show on records the caller already reads.
///
/// # Errors
/// Database errors.
pub async fn placements(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> AppResult<Vec<(Uuid, Placement)>> {
    let rows: Vec<(Uuid, Option<Uuid>, Uuid)> = customer::Entity::find()
        .select_only()
        .columns([Column::Id, Column::OwnerId, Column::DepartmentId])
        .filter(Column::Id.is_in(ids))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, owner_id, department_id)| (id, Placement { owner_id, department_id })).collect())
}

/// Lists the customers the caller may read that match the query; the trash with `deleted`.
///
/// # Errors
/// VALIDATION (filter, paging), FORBIDDEN (revenue without the right to see amounts).
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &ListQuery<SortField>,
) -> AppResult<Page<customer::Model>> {
    // Custom fields are typed by the templates of the categories open to the caller.
    let custom = if crate::kernel::filter::mentions(query.filter.as_ref(), "customFields")
        || query.order.iter().any(|(f, _)| matches!(f, SortField::Custom(_)))
    {
        let catalogue = Catalogue::load(db).await?;
        let mut kinds = std::collections::HashMap::new();
        for c in category::visible(db, actor, &catalogue).await? {
            for f in &c.fields {
                kinds.entry(f.key.clone()).or_insert(f.kind);
            }
        }
        Some(custom_filter::Custom { backend: db.get_database_backend(), kinds })
    } else {
        None
    };
    let (filter, keys) = list::plan::<customer::Entity>(actor, Resource::Customer, query, custom.as_ref())?;
    let live = if query.deleted { Column::DeletedAt.is_not_null() } else { Column::DeletedAt.is_null() };
    let q = customer::Entity::find().filter(live).filter(filter);
    // A sales rep's "own rows or my department's pool" reads each part from its index
    // (`idx_customer_owner_created`, `idx_customer_pool_created`) instead of filtering a
    // scan of every customer by the OR.
    match actor.customer_parts(Resource::Customer, Action::Read) {
        Some(parts) => paginate_parts(db, q, parts, &keys, Column::Id, |m| m.id, &query.page).await,
        None => {
            let q = q.filter(actor.customer_condition(Resource::Customer, Action::Read));
            paginate(db, q, &keys, Column::Id, |m| m.id, &query.page).await
        }
    }
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
        keys.push((Column::PhoneNorm, p));
    }
    if let Some(e) = email.and_then(|e| normalize::email(e).ok()) {
        keys.push((Column::EmailNorm, e));
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

/// Updates a customer; `version` must be the current one.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, VALIDATION, DUPLICATE, CONFLICT (stale version).
pub async fn update(
    db: &DatabaseConnection,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
    version: i32,
    patch: CustomerPatch,
) -> AppResult<customer::Model> {
    let mut attempted = None;
    let result = write(db, async |txn| {
        let old = load_for(txn, actor, id, Action::Update, false).await?;
        check_version::<customer::Entity>(&old, Some(version))?;
        let am = patched(txn, &Catalogue::load(txn).await?, vault, actor, &old, patch).await?;
        attempted = Some(am.clone());
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await
    })
    .await;
    match (result, attempted) {
        (Err(e @ AppError::Duplicate { .. }), Some(mut am)) => {
            am.id = Set(id);
            Err(explain_duplicate(db, actor, e, &am).await)
        }
        (r, _) => r,
    }
}

/// The row a patch makes of a stored customer the caller may update, checked: fields of
/// a group the caller cannot read are not overwritten (FORBIDDEN), every bad field is
/// listed (VALIDATION), the category's template applies (`category::check_update`).
///
/// # Errors
/// FORBIDDEN, VALIDATION, database errors.
pub(crate) async fn patched(
    txn: &impl ConnectionTrait,
    catalogue: &Catalogue,
    vault: &Keyring,
    actor: &Actor,
    old: &customer::Model,
    patch: CustomerPatch,
) -> AppResult<customer::ActiveModel> {
    let touched = [
        ("phone", patch.phone.is_some()),
        ("email", patch.email.is_some()),
        ("address", patch.address.is_some()),
        ("birthday", patch.birthday.is_some()),
        ("softProfile", patch.soft_profile.is_some()),
        ("gender", patch.gender.is_some()),
    ];
    may_change_fields(actor, &CUSTOMER, old.into(), &touched)?;
    let mut v = Violations::new();
    let am = apply_patch(&mut v, vault, old, patch);
    category::check_update(txn, catalogue, &mut v, old, &am).await?;
    v.into_result()?;
    Ok(am)
}

fn apply_patch(v: &mut Violations, vault: &Keyring, old: &customer::Model, p: CustomerPatch) -> customer::ActiveModel {
    let mut am: customer::ActiveModel = old.clone().into();
    let kind = old.kind;
    let name = match p.name {
        Some(n) => required_text(v, "name", &n, 200),
        None => old.name.clone(),
    };
    if let Some(c) = p.category {
        am.category = Set(category_key(&c));
    }
    if let Some(g) = p.gender {
        if g.is_some() && kind == CustomerKind::Organization {
            v.add("gender", "only individuals have a gender");
        }
        am.gender = Set(g);
    }
    if let Some(b) = p.birthday {
        check_birthday(v, kind, "birthday", b);
        am.birthday = Set(b);
    }
    let phone = p.phone.unwrap_or_else(|| old.phone.clone());
    let email = p.email.unwrap_or_else(|| old.email.clone());
    let k = keys(v, kind, &name, phone, email);
    am.name = Set(name);
    am.name_norm = Set(k.name_norm);
    am.phone = Set(k.phone);
    am.phone_norm = Set(k.phone_norm);
    am.email = Set(k.email);
    am.email_norm = Set(k.email_norm);
    if let Some(a) = p.address {
        let a = optional_text(v, "address", a, 500);
        // Sealing takes a fresh nonce: the same address is kept as stored, not a change.
        if address(vault, old).ok().flatten() != a {
            am.address = Set(a.map(|a| vault.seal(ADDRESS, old.id, &a)));
        }
    }
    if let Some(r) = p.region {
        am.region = Set(optional_text(v, "region", r, 100));
    }
    if let Some(i) = p.industry {
        am.industry = Set(optional_text(v, "industry", i, 100));
    }
    if let Some(c) = p.credit_rating {
        am.credit_rating = Set(optional_text(v, "creditRating", c, 20));
    }
    if let Some(s) = p.source {
        am.source = Set(s);
    }
    if let Some(i) = p.importance {
        am.importance = Set(i);
    }
    if let Some(d) = p.cooperation_start_date {
        am.cooperation_start_date = Set(d);
    }
    if let Some(s) = p.soft_profile {
        check_json_object(v, "softProfile", &s);
        am.soft_profile = Set(s);
    }
    if let Some(c) = p.custom_fields {
        check_json_object(v, "customFields", &c);
        am.custom_fields = Set(c);
    }
    if let Some(stage) = p.lifecycle_stage {
        check_entered_stage(v, Some(stage));
        if !matches!(old.lifecycle_stage, LifecycleStage::Target | LifecycleStage::Prospect) {
            v.add("lifecycleStage", "stages after PROSPECT follow from deals");
        }
        am.lifecycle_stage = Set(stage);
    }
    am
}

/// Soft-deletes a customer; its contacts, deals and history stay and come back on restore.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, CONFLICT (stale version when one is given).
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    version: Option<i32>,
) -> AppResult<customer::Model> {
    write(db, async |txn| {
        let old = load_for(txn, actor, id, Action::Delete, false).await?;
        check_version::<customer::Entity>(&old, version)?;
        let mut am: customer::ActiveModel = old.clone().into();
        am.deleted_at = Set(Some(now()));
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Delete, &old, am).await
    })
    .await
}

/// Restores a soft-deleted customer unless a live customer took one of its keys meanwhile.
///
/// # Errors
/// NOT_FOUND (no deleted customer in scope), FORBIDDEN, DUPLICATE.
pub async fn restore(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<customer::Model> {
    let mut attempted = None;
    let result = write(db, async |txn| {
        let old = load_for(txn, actor, id, Action::Delete, true).await?;
        if old.merged_into.is_some() {
            return Err(AppError::Conflict(
                "this customer was merged into another: its records live on there; it cannot be restored".into(),
            ));
        }
        // Back with its owner: within the owner's holding cap.
        if let Some(owner) = old.owner_id
            && let Some(holder) = entity::user::Entity::find_by_id(owner).one(txn).await?
        {
            crate::care::check_holding_cap(txn, holder.id, holder.role).await?;
        }
        let mut am: customer::ActiveModel = old.clone().into();
        am.deleted_at = Set(None);
        // Handed back to its owner: the pool's clock starts afresh.
        if old.owner_id.is_some() {
            am.owned_since = Set(Some(now()));
        }
        attempted = Some(am.clone());
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Restore, &old, am).await
    })
    .await;
    match (result, attempted) {
        (Err(e @ AppError::Duplicate { .. }), Some(am)) => Err(explain_duplicate(db, actor, e, &am).await),
        (r, _) => r,
    }
}

/// Moves a customer to another owner (and that owner's department), or with no owner
/// into its department's public pool.
///
/// # Errors
/// NOT_FOUND (customer or new owner), FORBIDDEN (no assign scope over the customer or
/// the new owner's department), VALIDATION (inactive new owner).
pub async fn assign(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    owner_id: Option<Uuid>,
) -> AppResult<customer::Model> {
    write(db, async |txn| {
        let old = load_for(txn, actor, id, Action::Assign, false).await?;
        let mut am: customer::ActiveModel = old.clone().into();
        match owner_id {
            Some(owner) => {
                let new_owner = crate::access::user::staff(txn, owner).await?;
                if !new_owner.active {
                    return Err(AppError::invalid("ownerId", "the new owner is deactivated"));
                }
                let placement =
                    crate::access::Placement { owner_id: Some(new_owner.id), department_id: new_owner.department_id };
                if !actor.reach(Resource::Customer, Action::Assign).admits(placement) {
                    return Err(AppError::Forbidden("the new owner is outside your department".into()));
                }
                if old.owner_id != Some(new_owner.id) {
                    crate::care::check_holding_cap(txn, new_owner.id, new_owner.role).await?;
                }
                if old.owner_id != Some(new_owner.id) {
                    am.owned_since = Set(Some(now()));
                    crate::care::close_pool_warnings(txn, old.id, "assigned").await?;
                }
                am.owner_id = Set(Some(new_owner.id));
                am.department_id = Set(new_owner.department_id);
            }
            None => {
                am.owner_id = Set(None);
                am.owned_since = Set(None);
                crate::care::close_pool_warnings(txn, old.id, "put in the pool").await?;
            }
        }
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Assign, &old, am).await
    })
    .await
}

/// Takes an unowned customer of the caller's department from the public pool.
///
/// # Errors
/// NOT_FOUND (not readable), FORBIDDEN (the role has no pool access), CONFLICT (the
/// customer is not in the caller's department pool, e.g. someone claimed it first).
pub async fn claim(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<customer::Model> {
    write(db, async |txn| {
        let old = get(txn, actor, id).await?;
        if !actor.grant(Resource::Customer, Action::Read).include_pool {
            return Err(AppError::Forbidden("your role may not claim customers from the public pool".into()));
        }
        if old.owner_id.is_some() || old.department_id != actor.user.department_id {
            return Err(AppError::Conflict("the customer is not in your department's public pool".into()));
        }
        crate::care::check_holding_cap(txn, actor.id(), actor.role()).await?;
        let mut am: customer::ActiveModel = old.clone().into();
        am.owner_id = Set(Some(actor.id()));
        am.owned_since = Set(Some(now()));
        crate::care::close_pool_warnings(txn, old.id, "claimed").await?;
        save::<customer::Entity>(txn, Some(actor.id()), Verb::Claim, &old, am).await
    })
    .await
}
