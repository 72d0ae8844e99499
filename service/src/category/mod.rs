//! The category catalogue and its field templates (seed 004, `docs/categories.md`).
//!
//! A category is a main category or a sub-category of one (one level). Its template is
//! the built-in customer fields it requires plus custom field definitions; a
//! sub-category's template is its main category's plus its own. Writes of a customer
//! check its `customFields` and required fields against the template of its category;
//! completeness (score, missing and invalid fields) is computed from the same template
//! when read, so a template change shows at once and never rewrites stored data.
//!
//! A template change applies to new writes: a create must fill every required field; an
//! update may not empty a required field that was filled, nor store a bad custom value,
//! but an older record that lacks a field added since is not refused for an unrelated
//! change (it shows up as incomplete). Moving a customer to another category checks the
//! whole record against the new template.
mod admin;
mod field;
mod report;
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::store::{check_version, save, write};
use crate::kernel::{now, parse_date};
pub use admin::*;
use entity::category::{self, Column};
use entity::customer;
use entity::enums::{Action, Resource};
pub use field::*;
pub use report::*;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A category with its own template parsed.
#[derive(Clone)]
pub struct Category {
    pub row: category::Model,
    pub required: Vec<String>,
    pub fields: Vec<FieldDef>,
}

impl Category {
    pub fn from_row(row: category::Model) -> Self {
        // Written only through `save`, which checks both lists; a hand-edited row that
        // does not parse is read as an empty template rather than failing every write.
        let required = serde_json::from_value(row.required_fields.clone()).unwrap_or_default();
        let fields = serde_json::from_value(row.fields.clone()).unwrap_or_default();
        Self { row, required, fields }
    }
}

/// The template a customer of one category is checked against: its main category's
/// and its own.
#[derive(Default, Clone)]
pub struct Template {
    pub required: Vec<String>,
    pub fields: Vec<FieldDef>,
}

impl Template {
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }
}

/// Every category, as read once.
#[derive(Clone, Default)]
pub struct Catalogue {
    by_key: HashMap<String, Category>,
    order: Vec<String>,
}

impl Catalogue {
    /// Reads the catalogue.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load(db: &impl ConnectionTrait) -> AppResult<Self> {
        let rows = category::Entity::find().order_by_asc(Column::Position).order_by_asc(Column::Key).all(db).await?;
        let order = rows.iter().map(|r| r.key.clone()).collect();
        let by_key = rows.into_iter().map(|r| (r.key.clone(), Category::from_row(r))).collect();
        Ok(Self { by_key, order })
    }

    pub fn get(&self, key: &str) -> Option<&Category> {
        self.by_key.get(key)
    }

    /// Categories in display order (position, then key).
    pub fn all(&self) -> impl Iterator<Item = &Category> {
        self.order.iter().filter_map(|k| self.by_key.get(k))
    }

    /// The effective template of a category (empty for an unknown key).
    pub fn template(&self, key: &str) -> Template {
        let mut t = Template::default();
        let Some(c) = self.get(key) else { return t };
        if let Some(parent) = c.row.parent_key.as_deref().and_then(|p| self.get(p)) {
            t.required.extend(parent.required.iter().cloned());
            t.fields.extend(parent.fields.iter().cloned());
        }
        for r in &c.required {
            if !t.required.contains(r) {
                t.required.push(r.clone());
            }
        }
        t.fields.extend(c.fields.iter().cloned());
        t
    }
}

/// Whether a built-in field of a customer row holds a value.
fn filled(am: &customer::ActiveModel, field: &str) -> bool {
    fn some<T>(v: &ActiveValue<Option<T>>) -> bool
    where
        Option<T>: Into<sea_orm::Value>,
    {
        matches!(v, ActiveValue::Set(Some(_)) | ActiveValue::Unchanged(Some(_)))
    }
    match field {
        "gender" => some(&am.gender),
        "birthday" => some(&am.birthday),
        "phone" => some(&am.phone),
        "email" => some(&am.email),
        "address" => some(&am.address),
        "region" => some(&am.region),
        "industry" => some(&am.industry),
        "source" => some(&am.source),
        "importance" => some(&am.importance),
        "creditRating" => some(&am.credit_rating),
        "cooperationStartDate" => some(&am.cooperation_start_date),
        _ => true,
    }
}

/// The custom fields of a row (an empty map when none).
fn custom(am: &customer::ActiveModel) -> serde_json::Map<String, Json> {
    match &am.custom_fields {
        ActiveValue::Set(Some(Json::Object(m))) | ActiveValue::Unchanged(Some(Json::Object(m))) => m.clone(),
        _ => serde_json::Map::new(),
    }
}

fn present(map: &serde_json::Map<String, Json>, key: &str) -> bool {
    map.get(key).is_some_and(holds)
}

/// Whether a custom value holds anything: null, a blank string and an empty list do not.
fn holds(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::String(s) => !s.trim().is_empty(),
        Json::Array(a) => !a.is_empty(),
        _ => true,
    }
}

/// Checks a customer row about to be written against its category's template, adding
/// every violation. `before` is the row as stored when the write is an update that keeps
/// the category; `None` for a create or a move to another category (the whole template
/// applies).
pub fn check_record(
    v: &mut Violations,
    t: &Template,
    category: &str,
    am: &customer::ActiveModel,
    before: Option<&customer::ActiveModel>,
) {
    for field in &t.required {
        if !filled(am, field) && before.is_none_or(|b| filled(b, field)) {
            v.add(field.as_str(), format!("is required in category {category}"));
        }
    }
    let values = custom(am);
    let old = before.map(custom);
    // Values are checked when they are written: an unchanged object is left as stored.
    let written = before.is_none() || matches!(am.custom_fields, ActiveValue::Set(_));
    if written {
        for (key, value) in &values {
            let path = format!("customFields.{key}");
            match t.field(key) {
                None => v.add(path, format!("is not a field of category {category}")),
                Some(_) if value.is_null() => {}
                Some(def) => {
                    if let Err(m) = def.check(value) {
                        v.add(path, m);
                    }
                }
            }
        }
    }
    for def in t.fields.iter().filter(|f| f.required) {
        if !present(&values, &def.key) && old.as_ref().is_none_or(|o| present(o, &def.key)) {
            v.add(format!("customFields.{}", def.key), format!("is required in category {category}"));
        }
    }
}

/// How complete a customer's record is against its category's template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completeness {
    /// Filled required fields in percent (100 when the template requires nothing).
    pub score: i32,
    /// Required fields without a value.
    pub missing: Vec<String>,
    /// Custom fields whose stored value no longer fits the template (a definition changed
    /// after it was written).
    pub invalid: Vec<String>,
}

/// The completeness of a stored customer.
pub fn completeness(t: &Template, m: &customer::Model) -> Completeness {
    Facts::from(m).completeness(t)
}

/// Completeness from which built-in fields are filled and the custom values.
fn score(t: &Template, filled: impl Fn(&str) -> bool, values: &serde_json::Map<String, Json>) -> Completeness {
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    let mut total = 0usize;
    let mut done = 0usize;
    for field in &t.required {
        total += 1;
        if filled(field) {
            done += 1;
        } else {
            missing.push(field.clone());
        }
    }
    for def in &t.fields {
        let value = values.get(&def.key).filter(|v| holds(v));
        let valid = value.is_some_and(|v| def.check(v).is_ok());
        if value.is_some() && !valid {
            invalid.push(format!("customFields.{}", def.key));
        }
        if def.required {
            total += 1;
            if valid {
                done += 1;
            } else if value.is_none() {
                missing.push(format!("customFields.{}", def.key));
            }
        }
    }
    let score = (done * 100).checked_div(total).map_or(100, |s| i32::try_from(s).unwrap_or(100));
    Completeness { score, missing, invalid }
}

/// Whether staff or customers of `department` may use category `c`: neither it nor its
/// main category belongs to a department whose subtree leaves `department` out.
async fn open_to(db: &impl ConnectionTrait, catalogue: &Catalogue, c: &Category, department: Uuid) -> AppResult<bool> {
    let parent = c.row.parent_key.as_deref().and_then(|p| catalogue.get(p));
    for home in [Some(c), parent].into_iter().flatten().filter_map(|c| c.row.department_id) {
        if !crate::access::scope::department_subtree(db, home).await?.contains(&department) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Catalogue {
    /// Whether a category takes new customers: it and its main category are active.
    pub fn active(&self, c: &Category) -> bool {
        c.row.active && c.row.parent_key.as_deref().and_then(|p| self.get(p)).is_none_or(|p| p.row.active)
    }
}

/// Checks that a customer of `department` may be put in category `key`: it exists and is
/// open to that department (else, to the caller, it does not exist: the message names no
/// category and no template is checked), and is active unless it is `current`, the one
/// the customer has. Returns whether the customer's fields are to be checked against the
/// category's template.
///
/// # Errors
/// Database errors; violations are added to `v`.
pub async fn check_assignable(
    db: &impl ConnectionTrait,
    v: &mut Violations,
    catalogue: &Catalogue,
    key: &str,
    department: Uuid,
    current: Option<&str>,
) -> AppResult<bool> {
    if current == Some(key) {
        return Ok(true);
    }
    let open = match catalogue.get(key) {
        Some(c) => open_to(db, catalogue, c, department).await?.then_some(c),
        None => None,
    };
    let Some(c) = open else {
        v.add("category", "unknown category (the `categories` query lists those you may use)");
        return Ok(false);
    };
    if !catalogue.active(c) {
        v.add("category", format!("category {key} is retired"));
        return Ok(false);
    }
    Ok(true)
}

/// Checks a changed customer row (`am`, from the stored `old`) against the template of the
/// category it ends up in: in full when it moves to another category, else for what the
/// write changes (see the module's rules). Customer updates and merges both write this way.
///
/// # Errors
/// Database errors; violations are added to `v`.
pub async fn check_update(
    db: &impl ConnectionTrait,
    catalogue: &Catalogue,
    v: &mut Violations,
    old: &customer::Model,
    am: &customer::ActiveModel,
) -> AppResult<()> {
    let key = match &am.category {
        ActiveValue::Set(k) | ActiveValue::Unchanged(k) => k.clone(),
        ActiveValue::NotSet => old.category.clone(),
    };
    if check_assignable(db, v, catalogue, &key, old.department_id, Some(&old.category)).await? {
        let before: customer::ActiveModel = old.clone().into();
        let moved = key != old.category;
        check_record(v, &catalogue.template(&key), &key, am, (!moved).then_some(&before));
    }
    Ok(())
}

/// The categories a user may pick from or see: those open to their department (see
/// `check_assignable`); administrators see every one.
///
/// # Errors
/// Database errors.
pub async fn visible(db: &DatabaseConnection, actor: &Actor, catalogue: &Catalogue) -> AppResult<Vec<Category>> {
    let all = actor.grant(Resource::Settings, Action::Read).scope == entity::enums::Scope::All;
    let mut out = Vec::new();
    for c in catalogue.all() {
        if all || open_to(db, catalogue, c, actor.user.department_id).await? {
            out.push(c.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(kind: FieldKind, min: Option<&str>, max: Option<&str>) -> FieldDef {
        FieldDef {
            key: "k".into(),
            label: "K".into(),
            kind,
            required: false,
            min: min.map(str::to_string),
            max: max.map(str::to_string),
            pattern: None,
            choices: vec![],
        }
    }

    #[test]
    fn bounds_are_inclusive_and_typed() {
        let n = def(FieldKind::Number, Some("0"), Some("10"));
        assert!(n.check(&json!(0)).is_ok() && n.check(&json!(10)).is_ok() && n.check(&json!(2.5)).is_ok());
        assert!(n.check(&json!(-0.1)).is_err() && n.check(&json!(10.5)).is_err() && n.check(&json!("5")).is_err());
        let m = def(FieldKind::Money, Some("-100.00"), None);
        assert!(m.check(&json!("-100")).is_ok() && m.check(&json!("0.5")).is_ok());
        assert!(
            m.check(&json!("-100.01")).is_err() && m.check(&json!(5)).is_err() && m.check(&json!("1.234")).is_err()
        );
        let d = def(FieldKind::Date, None, Some("2026-12-31"));
        assert!(d.check(&json!("2026-12-31")).is_ok() && d.check(&json!("2027-01-01")).is_err());
        assert!(d.check(&json!("2026-2-1")).is_err());
        let t = def(FieldKind::Text, Some("2"), Some("3"));
        assert!(t.check(&json!("电脑")).is_ok(), "lengths count characters, not bytes");
        assert!(t.check(&json!("a")).is_err() && t.check(&json!("abcd")).is_err());
    }

    #[test]
    fn choices_and_patterns() {
        let c = FieldDef { choices: vec!["a".into(), "b".into()], ..def(FieldKind::MultiChoice, None, None) };
        assert!(c.check(&json!(["a", "b"])).is_ok() && c.check(&json!([])).is_ok());
        assert!(
            c.check(&json!(["a", "a"])).is_err() && c.check(&json!(["c"])).is_err() && c.check(&json!("a")).is_err()
        );
        assert!(!holds(&json!([])) && !holds(&json!("  ")) && !holds(&json!(null)), "empty values are missing");
        assert!(holds(&json!(false)) && holds(&json!(0)));
        assert!(parse_date("+2026-01-1").is_err() && parse_date("2026-01-01").is_ok());
        let p = FieldDef { pattern: Some("^[0-9]{6}$".into()), ..def(FieldKind::Text, None, None) };
        assert!(p.check(&json!("200030")).is_ok() && p.check(&json!("20003")).is_err());
    }

    fn blank() -> customer::Model {
        customer::Model {
            id: Uuid::nil(),
            kind: entity::enums::CustomerKind::Organization,
            category: "partner".into(),
            name: "n".into(),
            name_norm: None,
            gender: None,
            birthday: None,
            phone: None,
            phone_norm: None,
            email: None,
            email_norm: None,
            address: None,
            region: None,
            industry: None,
            source: None,
            importance: None,
            credit_rating: None,
            cooperation_start_date: None,
            soft_profile: None,
            custom_fields: None,
            owner_id: None,
            owned_since: None,
            department_id: Uuid::nil(),
            lifecycle_stage: entity::enums::LifecycleStage::Target,
            tier: entity::enums::Tier::D,
            computed_tier: None,
            tier_override: None,
            tier_override_reason: None,
            rfm_recency: None,
            rfm_frequency: None,
            rfm_monetary: None,
            rfm_score: None,
            frequency_class: None,
            value_class: None,
            relationship_type: None,
            turnover_margin_class: None,
            first_purchase_on: None,
            last_purchase_on: None,
            won_count: 0,
            revenue_minor: 0,
            margin_minor: 0,
            classified_at: None,
            created_by: None,
            legal_hold: false,
            legal_hold_reason: None,
            erased_at: None,
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            deleted_at: None,
            merged_into: None,
        }
    }

    #[test]
    fn completeness_counts_required_fields_only() {
        let t = Template {
            required: vec!["phone".into(), "address".into()],
            fields: vec![
                FieldDef { required: true, ..def(FieldKind::Number, Some("0"), None) },
                FieldDef { key: "opt".into(), ..def(FieldKind::Boolean, None, None) },
            ],
        };
        let m = customer::Model {
            phone: Some("13800000000".into()),
            custom_fields: Some(json!({"k": -1, "opt": "yes"})),
            ..blank()
        };
        let c = completeness(&t, &m);
        assert_eq!(c.score, 33);
        assert_eq!(c.missing, ["address"]);
        assert_eq!(c.invalid, ["customFields.k", "customFields.opt"]);
    }
}
