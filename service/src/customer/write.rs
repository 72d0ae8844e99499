//! Writing customers: create (with the duplicate check and its explanation), update,
//! delete and restore; which field groups a change touches.
use super::*;
use crate::kernel::types::{Email, Phone};

/// Normalized duplicate keys of a customer.
pub(super) struct Keys {
    name_norm: Option<String>,
    phone: Option<String>,
    phone_norm: Option<Phone>,
    email: Option<String>,
    email_norm: Option<Email>,
}

pub(super) fn category_key(category: &str) -> String {
    category.trim().to_lowercase()
}

pub(super) fn check_json_object(v: &mut Violations, field: &str, value: &Option<Json>) {
    if let Some(j) = value {
        if !j.is_object() {
            v.add(field, "must be a JSON object");
        } else if j.to_string().len() > 16 * 1024 {
            v.add(field, "must be at most 16 KiB");
        }
    }
}

pub(super) fn check_birthday(v: &mut Violations, kind: CustomerKind, field: &str, birthday: Option<NaiveDate>) {
    if let Some(b) = birthday {
        if kind == CustomerKind::Organization {
            v.add(field, "only individuals have a birthday");
        } else if !crate::kernel::plausible_birthday(b) {
            v.add(field, "must be between 1900-01-01 and today");
        }
    }
}

pub(super) fn check_entered_stage(v: &mut Violations, stage: Option<LifecycleStage>) {
    if let Some(s) = stage
        && !matches!(s, LifecycleStage::Target | LifecycleStage::Prospect)
    {
        v.add("lifecycleStage", "only TARGET or PROSPECT can be set; later stages follow from deals");
    }
}

pub(super) fn keys(
    v: &mut Violations,
    kind: CustomerKind,
    name: &str,
    phone: Option<String>,
    email: Option<String>,
) -> Keys {
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
        phone_norm: Set(k.phone_norm.map(String::from)),
        email: Set(k.email),
        email_norm: Set(k.email_norm.map(String::from)),
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
        crate::policy::care::check_holding_cap(txn, owner, actor.role()).await?;
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
pub(super) fn key_label(key: &str) -> &'static str {
    match key {
        "phone" => "phone number",
        "email" => "e-mail address",
        _ => "organization name",
    }
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

pub(super) fn apply_patch(
    v: &mut Violations,
    vault: &Keyring,
    old: &customer::Model,
    p: CustomerPatch,
) -> customer::ActiveModel {
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
    am.phone_norm = Set(k.phone_norm.map(String::from));
    am.email = Set(k.email);
    am.email_norm = Set(k.email_norm.map(String::from));
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
            crate::policy::care::check_holding_cap(txn, holder.id, holder.role).await?;
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
