//! Saving a category: what an administrator may define (keys, fields, inheritance) and the
//! checks that keep a template consistent with the one it extends.
use super::*;
use crate::kernel::change::{self, Subject, Verb};

/// The categories customers get when none is given (`customer::default_category`).
const DEFAULTS: &[&str] = &["retail", "partner"];

/// Custom fields one category may define.
const MAX_FIELDS: usize = 50;
/// Choices one choice field may offer.
const MAX_CHOICES: usize = 100;

/// A category as an administrator saves it.
pub struct CategoryInput {
    pub key: String,
    pub name: String,
    pub parent_key: Option<String>,
    pub department_id: Option<Uuid>,
    pub required_fields: Vec<String>,
    pub fields: Vec<FieldDef>,
    pub position: Option<i32>,
    pub active: Option<bool>,
}

fn check_key(v: &mut Violations, field: &str, key: &str, max: usize) {
    let ok = !key.is_empty()
        && key.len() <= max
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        v.add(field, format!("1 to {max} characters of a-z, 0-9 and _, starting with a letter"));
    }
}

fn check_fields(v: &mut Violations, fields: &[FieldDef], inherited: &Template) {
    if fields.len() > MAX_FIELDS {
        v.add("fields", format!("at most {MAX_FIELDS} custom fields per category"));
    }
    let mut keys = HashSet::new();
    for (i, f) in fields.iter().enumerate() {
        let at = |what: &str| format!("fields[{i}].{what}");
        check_key(v, &at("key"), &f.key, 40);
        if !keys.insert(f.key.as_str()) {
            v.add(at("key"), format!("{} is defined twice", f.key));
        }
        if inherited.field(&f.key).is_some() {
            v.add(at("key"), format!("{} is already a field of the main category", f.key));
        }
        let label = f.label.trim();
        if label.is_empty() || label.chars().count() > 100 {
            v.add(at("label"), "must have 1 to 100 characters");
        }
        let choice = matches!(f.kind, FieldKind::Choice | FieldKind::MultiChoice);
        if choice {
            let distinct: HashSet<&String> = f.choices.iter().collect();
            if f.choices.is_empty() || f.choices.len() > MAX_CHOICES {
                v.add(at("choices"), format!("a choice field needs 1 to {MAX_CHOICES} choices"));
            } else if distinct.len() != f.choices.len() {
                v.add(at("choices"), "choices must be distinct");
            } else if f.choices.iter().any(|c| c.trim().is_empty() || c.chars().count() > 100) {
                v.add(at("choices"), "each choice must have 1 to 100 characters");
            }
        } else if !f.choices.is_empty() {
            v.add(at("choices"), "only choice fields have choices");
        }
        let bounded = matches!(f.kind, FieldKind::Text | FieldKind::Number | FieldKind::Money | FieldKind::Date);
        let mut bounds = [None, None];
        for (slot, (name, raw)) in bounds.iter_mut().zip([("min", &f.min), ("max", &f.max)]) {
            let Some(raw) = raw else { continue };
            if !bounded {
                v.add(at(name), "this type takes no bounds");
            } else {
                *slot = v.check(&at(name), f.bound(raw));
            }
        }
        if let [Some(min), Some(max)] = bounds
            && min > max
        {
            v.add(at("max"), "must not be below min");
        }
        if let Some(p) = &f.pattern {
            if f.kind != FieldKind::Text {
                v.add(at("pattern"), "only text fields have a pattern");
            } else if p.chars().count() > 200 {
                v.add(at("pattern"), "at most 200 characters");
            } else if let Err(e) = pattern(p) {
                v.add(at("pattern"), format!("not a valid regular expression: {e}"));
            }
        }
    }
}

/// Creates a category (`version` absent) or replaces one (`version` its current version).
/// Administrators.
///
/// # Errors
/// FORBIDDEN, VALIDATION (every bad field), DUPLICATE (creating a key that exists),
/// NOT_FOUND (replacing one that does not), CONFLICT (stale version).
pub async fn save_category(
    db: &DatabaseConnection,
    actor: &Actor,
    input: CategoryInput,
    version: Option<i32>,
) -> AppResult<category::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    write(db, async |txn| {
        // Saves of the catalogue run one at a time (SQLite: the write lock taken at BEGIN;
        // PostgreSQL: a transaction lock), so two cannot each pass the checks against a
        // catalogue the other is changing.
        if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('crm.category'))").await?;
        }
        let catalogue = Catalogue::load(txn).await?;
        let mut v = Violations::new();
        let key = input.key.trim().to_string();
        check_key(&mut v, "key", &key, 40);
        let name = crate::kernel::required_text(&mut v, "name", &input.name, 100);
        let parent = input.parent_key.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
        let mut inherited = Template::default();
        if let Some(p) = &parent {
            match catalogue.get(p) {
                None => v.add("parentKey", "unknown category"),
                Some(_) if *p == key => v.add("parentKey", "a category cannot be its own parent"),
                Some(pc) if pc.row.parent_key.is_some() => {
                    v.add("parentKey", "sub-categories have no sub-categories of their own")
                }
                Some(pc) if !pc.row.active => v.add("parentKey", "that main category is retired"),
                Some(_) if catalogue.all().any(|c| c.row.parent_key.as_deref() == Some(key.as_str())) => {
                    v.add("parentKey", "a main category with sub-categories cannot become one")
                }
                Some(_) => inherited = catalogue.template(p),
            }
        }
        if DEFAULTS.contains(&key.as_str()) {
            // What customers entered without a category (integrations, the demo) get.
            if parent.is_some() {
                v.add("parentKey", format!("{key} is a default category and stays a main category"));
            }
            if input.department_id.is_some() {
                v.add("departmentId", format!("{key} is a default category and stays open to every department"));
            }
            if input.active == Some(false) {
                v.add("active", format!("{key} is a default category and cannot be retired"));
            }
        }
        let mut required = Vec::new();
        for r in &input.required_fields {
            if !is_built_in(r) {
                let all: Vec<&str> = built_in().collect();
                v.add("requiredFields", format!("{r} cannot be required by a template; one of {}", all.join(", ")));
            } else if !required.contains(r) {
                required.push(r.clone());
            }
        }
        let fields: Vec<FieldDef> =
            input.fields.into_iter().map(|f| FieldDef { label: f.label.trim().to_string(), ..f }).collect();
        check_fields(&mut v, &fields, &inherited);
        // A main category's new fields may not take a key a sub-category already uses.
        for child in catalogue.all().filter(|c| c.row.parent_key.as_deref() == Some(key.as_str())) {
            for f in &fields {
                if child.fields.iter().any(|cf| cf.key == f.key) {
                    v.add("fields", format!("{} is already a field of sub-category {}", f.key, child.row.key));
                }
            }
        }
        if let Some(d) = input.department_id
            && entity::department::Entity::find_by_id(d).one(txn).await?.is_none()
        {
            v.add("departmentId", "unknown department");
        }
        v.into_result()?;
        let required_json = serde_json::to_value(&required).map_err(|e| AppError::Internal(Box::new(e)))?;
        let fields_json = serde_json::to_value(&fields).map_err(|e| AppError::Internal(Box::new(e)))?;
        let old = catalogue.get(&key).map(|c| c.row.clone());
        match (old, version) {
            (Some(old), Some(_)) => {
                check_version::<category::Entity>(&old, version)?;
                let am = category::ActiveModel {
                    name: Set(name),
                    parent_key: Set(parent),
                    department_id: Set(input.department_id),
                    required_fields: Set(required_json),
                    fields: Set(fields_json),
                    position: Set(input.position.unwrap_or(old.position)),
                    active: Set(input.active.unwrap_or(old.active)),
                    ..old.clone().into()
                };
                save::<category::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await
            }
            (Some(old), None) => Err(AppError::Duplicate {
                key: "key",
                department: None,
                message: format!("category {key} exists (version {}); send its version to replace it", old.version),
            }),
            (None, Some(_)) => Err(AppError::NotFound("no such category")),
            (None, None) => {
                let at = now();
                let position = input.position.unwrap_or_else(|| {
                    catalogue.all().map(|c| c.row.position).max().map_or(0, |p| p.saturating_add(10))
                });
                let am = category::ActiveModel {
                    key: Set(key),
                    name: Set(name),
                    parent_key: Set(parent),
                    department_id: Set(input.department_id),
                    required_fields: Set(required_json),
                    fields: Set(fields_json),
                    position: Set(position),
                    active: Set(input.active.unwrap_or(true)),
                    version: Set(1),
                    created_at: Set(at),
                    updated_at: Set(at),
                };
                let m = sea_orm::ActiveModelTrait::insert(am, txn).await?;
                change::record(txn, Some(actor.id()), Verb::Create, Subject::Category, Uuid::nil(), None, Some(&m))
                    .await?;
                Ok(m)
            }
        }
    })
    .await
}
