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
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::store::{check_version, save, write};
use crate::kernel::{audit, now, parse_date};
use entity::category::{self, Column};
use entity::customer;
use entity::enums::{Action, Resource};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Built-in customer fields a template may require (their GraphQL names; `name` is always
/// required).
pub const BUILT_IN: &[&str] = &[
    "gender",
    "birthday",
    "phone",
    "email",
    "address",
    "region",
    "industry",
    "source",
    "importance",
    "creditRating",
    "cooperationStartDate",
];

/// The categories customers get when none is given (`customer::default_category`).
const DEFAULTS: &[&str] = &["retail", "partner"];

/// Custom fields one category may define.
const MAX_FIELDS: usize = 50;
/// Choices one choice field may offer.
const MAX_CHOICES: usize = 100;
/// Characters of a text value when the definition sets no maximum.
const TEXT_MAX: usize = 1000;

/// The type of a custom field, and the JSON a value of it is stored as.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldKind {
    /// A string (`min`/`max`: its length in characters; `pattern`: a regular expression).
    Text,
    /// A JSON number.
    Number,
    /// A decimal string with at most two places, e.g. "1200.50" (never a float).
    Money,
    /// A string YYYY-MM-DD.
    Date,
    /// One of `choices`.
    Choice,
    /// A list of distinct `choices`.
    MultiChoice,
    Boolean,
}

/// One custom field of a template.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
#[serde(rename_all = "camelCase")]
pub struct FieldDef {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// Lower bound: a number, an amount, a date or (text) a length, by type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

/// A bound of a field, parsed for its type.
#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Bound {
    Number(f64),
    Cents(i64),
    Date(chrono::NaiveDate),
    Length(usize),
}

impl FieldDef {
    fn bound(&self, raw: &str) -> Result<Bound, String> {
        let raw = raw.trim();
        match self.kind {
            FieldKind::Number => raw
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Bound::Number)
                .ok_or_else(|| "must be a number".to_string()),
            FieldKind::Money => cents(raw).map(Bound::Cents),
            FieldKind::Date => parse_date(raw).map(Bound::Date),
            FieldKind::Text => {
                raw.parse::<usize>().map(Bound::Length).map_err(|_| "must be a length in characters".to_string())
            }
            _ => Err("this type takes no bounds".to_string()),
        }
    }

    /// Why `value` is not a valid value of this field, if it is not.
    pub fn check(&self, value: &Json) -> Result<(), String> {
        let (value, what) = match (self.kind, value) {
            (FieldKind::Text, Json::String(s)) => {
                let n = s.chars().count();
                if n > TEXT_MAX {
                    return Err(format!("must be at most {TEXT_MAX} characters"));
                }
                if let Some(p) = self.pattern.as_deref()
                    && !pattern(p).is_ok_and(|re| re.is_match(s))
                {
                    return Err(format!("must match {p}"));
                }
                (Bound::Length(n), "characters")
            }
            (FieldKind::Number, Json::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x.abs() <= NUMBER_MAX => (Bound::Number(x), ""),
                _ => return Err("must be a number between -9007199254740991 and 9007199254740991".into()),
            },
            (FieldKind::Money, Json::String(s)) => (Bound::Cents(cents(s)?), ""),
            (FieldKind::Date, Json::String(s)) => (Bound::Date(parse_date(s)?), ""),
            (FieldKind::Boolean, Json::Bool(_)) => return Ok(()),
            (FieldKind::Choice, Json::String(s)) => {
                return if self.choices.contains(s) { Ok(()) } else { Err(self.one_of()) };
            }
            (FieldKind::MultiChoice, Json::Array(items)) => {
                let mut seen = HashSet::new();
                for item in items {
                    match item.as_str() {
                        Some(s) if self.choices.iter().any(|c| c == s) => {
                            if !seen.insert(s) {
                                return Err(format!("lists {s} twice"));
                            }
                        }
                        _ => return Err(self.one_of()),
                    }
                }
                return Ok(());
            }
            (kind, _) => return Err(format!("must be {}", kind_value(kind))),
        };
        // Bounds were checked when the template was saved; the same variant compares.
        let limit = |raw: &'_ Option<String>| -> Option<(Bound, String)> {
            let raw = raw.as_deref()?;
            self.bound(raw).ok().map(|b| (b, raw.trim().to_string()))
        };
        if let Some((min, shown)) = limit(&self.min)
            && value < min
        {
            return Err(format!("must be at least {shown} {what}").trim_end().to_string());
        }
        if let Some((max, shown)) = limit(&self.max)
            && value > max
        {
            return Err(format!("must be at most {shown} {what}").trim_end().to_string());
        }
        Ok(())
    }

    fn one_of(&self) -> String {
        let quoted: Vec<String> = self.choices.iter().map(|c| format!("\"{c}\"")).collect();
        if self.kind == FieldKind::MultiChoice {
            format!("must be a list of distinct values among {}", quoted.join(", "))
        } else {
            format!("must be one of {}", quoted.join(", "))
        }
    }
}

fn kind_value(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Text | FieldKind::Choice => "a string",
        FieldKind::Number => "a number",
        FieldKind::Money => "a decimal string such as \"1200.50\"",
        FieldKind::Date => "a date string YYYY-MM-DD",
        FieldKind::MultiChoice => "a list of strings",
        FieldKind::Boolean => "true or false",
    }
}

/// An amount with at most two decimals, possibly negative, in hundredths: exactly
/// `-?digits(.d{1,2})?`, no blanks, no sign but `-` (a stored value reads back as sent).
fn cents(raw: &str) -> Result<i64, String> {
    let wrong = || format!("must be {}", kind_value(FieldKind::Money));
    let (negative, digits) = raw.strip_prefix('-').map_or((false, raw), |rest| (true, rest));
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let canonical = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (!digits.contains('.') || (1..=2).contains(&frac.len()))
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !canonical {
        return Err(wrong());
    }
    let value = crate::kernel::money::parse_scaled(digits, 2).map_err(|_| wrong())?;
    Ok(if negative { -value } else { value })
}

/// Largest magnitude of a NUMBER value: beyond it a JSON number loses integer precision.
const NUMBER_MAX: f64 = 9_007_199_254_740_991.0;

/// A template's pattern, compiled once per process with a size limit (patterns are
/// checked when saved; the `regex` crate matches in linear time).
fn pattern(p: &str) -> Result<std::sync::Arc<regex::Regex>, String> {
    use std::sync::{Arc, LazyLock, Mutex};
    static COMPILED: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(re) = compiled.get(p) {
        return Ok(re.clone());
    }
    let re = Arc::new(regex::RegexBuilder::new(p).size_limit(2 << 20).build().map_err(|e| e.to_string())?);
    // Patterns change with templates only; a bound keeps a long-lived process small.
    if compiled.len() >= 4096 {
        compiled.clear();
    }
    compiled.insert(p.to_string(), re.clone());
    Ok(re)
}

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
            if !BUILT_IN.contains(&r.as_str()) {
                v.add(
                    "requiredFields",
                    format!("{r} cannot be required by a template; one of {}", BUILT_IN.join(", ")),
                );
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
                save::<category::Entity>(txn, Some(actor.id()), "update", &old, am).await
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
                audit::record(txn, Some(actor.id()), "create", "category", Uuid::nil(), None, Some(&m)).await?;
                Ok(m)
            }
        }
    })
    .await
}

/// What completeness reads of a customer: the template's built-in fields (as stored; the
/// address sealed) and the custom values, with what groups and ranks it.
#[derive(sea_orm::FromQueryResult)]
pub struct Facts {
    pub id: Uuid,
    pub category: String,
    pub owner_id: Option<Uuid>,
    pub department_id: Uuid,
    gender: Option<String>,
    birthday: Option<chrono::NaiveDate>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    region: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    importance: Option<String>,
    credit_rating: Option<String>,
    cooperation_start_date: Option<chrono::NaiveDate>,
    custom_fields: Option<Json>,
}

impl From<&customer::Model> for Facts {
    fn from(m: &customer::Model) -> Self {
        let text = |v: &Option<String>| v.clone();
        Facts {
            id: m.id,
            category: m.category.clone(),
            owner_id: m.owner_id,
            department_id: m.department_id,
            gender: m.gender.map(|g| g.as_str().to_string()),
            birthday: m.birthday,
            phone: text(&m.phone),
            email: text(&m.email),
            address: text(&m.address),
            region: text(&m.region),
            industry: text(&m.industry),
            source: m.source.map(|s| s.as_str().to_string()),
            importance: m.importance.map(|i| i.as_str().to_string()),
            credit_rating: text(&m.credit_rating),
            cooperation_start_date: m.cooperation_start_date,
            custom_fields: m.custom_fields.clone(),
        }
    }
}

impl Facts {
    fn filled(&self, field: &str) -> bool {
        match field {
            "gender" => self.gender.is_some(),
            "birthday" => self.birthday.is_some(),
            "phone" => self.phone.is_some(),
            "email" => self.email.is_some(),
            "address" => self.address.is_some(),
            "region" => self.region.is_some(),
            "industry" => self.industry.is_some(),
            "source" => self.source.is_some(),
            "importance" => self.importance.is_some(),
            "creditRating" => self.credit_rating.is_some(),
            "cooperationStartDate" => self.cooperation_start_date.is_some(),
            _ => true,
        }
    }

    /// Completeness against the template of the customer's category.
    pub fn completeness(&self, t: &Template) -> Completeness {
        let none = serde_json::Map::new();
        let values = match &self.custom_fields {
            Some(Json::Object(m)) => m,
            _ => &none,
        };
        score(t, |f| self.filled(f), values)
    }
}

/// The facts of the live customers `condition` selects, streamed to `each`.
async fn scan(db: &DatabaseConnection, condition: sea_orm::Condition, mut each: impl FnMut(Facts)) -> AppResult<()> {
    use customer::Column as C;
    use futures::TryStreamExt;
    use sea_orm::QuerySelect;
    let mut rows = customer::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::Category,
            C::OwnerId,
            C::DepartmentId,
            C::Gender,
            C::Birthday,
            C::Phone,
            C::Email,
            C::Address,
            C::Region,
            C::Industry,
            C::Source,
            C::Importance,
            C::CreditRating,
            C::CooperationStartDate,
            C::CustomFields,
        ])
        .filter(C::DeletedAt.is_null())
        .filter(condition)
        .into_model::<Facts>()
        .stream(db)
        .await?;
    while let Some(facts) = rows.try_next().await? {
        each(facts);
    }
    Ok(())
}

/// How `dataCompleteness` groups customers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Owner,
    Department,
    Category,
}

/// One group of the completeness report.
pub struct GroupCompleteness {
    /// The owner's or department's id, or the category's key; `None`: the public pool
    /// (grouped by owner).
    pub key: Option<String>,
    pub label: String,
    pub customers: u64,
    /// Customers whose score is 100.
    pub complete: u64,
    pub average_score: f64,
    /// Required fields most often empty, with how many customers lack each, most first.
    pub missing: Vec<(String, u64)>,
}

/// Seed 000's contest on record completeness: per owner, department or category, how
/// complete the records you may read are, best first.
///
/// # Errors
/// FORBIDDEN without customer read access; database errors.
pub async fn report(db: &DatabaseConnection, actor: &Actor, grouping: Grouping) -> AppResult<Vec<GroupCompleteness>> {
    actor.require(Resource::Customer, Action::Read)?;
    let catalogue = Catalogue::load(db).await?;
    #[derive(Default)]
    struct Acc {
        customers: u64,
        complete: u64,
        score: u64,
        missing: HashMap<String, u64>,
    }
    let mut groups: HashMap<Option<String>, Acc> = HashMap::new();
    scan(db, actor.customer_condition(Resource::Customer, Action::Read), |f| {
        let c = f.completeness(&catalogue.template(&f.category));
        let key = match grouping {
            Grouping::Owner => f.owner_id.map(|o| o.to_string()),
            Grouping::Department => Some(f.department_id.to_string()),
            Grouping::Category => Some(f.category.clone()),
        };
        let acc = groups.entry(key).or_default();
        acc.customers += 1;
        acc.complete += u64::from(c.score == 100);
        acc.score += u64::try_from(c.score).unwrap_or(0);
        for m in c.missing {
            *acc.missing.entry(m).or_default() += 1;
        }
    })
    .await?;
    let ids: Vec<Uuid> = groups.keys().flatten().filter_map(|k| Uuid::parse_str(k).ok()).collect();
    let names: HashMap<String, String> = match grouping {
        Grouping::Owner => entity::user::Entity::find()
            .filter(entity::user::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id.to_string(), u.name))
            .collect(),
        Grouping::Department => entity::department::Entity::find()
            .filter(entity::department::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|d| (d.id.to_string(), d.name))
            .collect(),
        Grouping::Category => catalogue.all().map(|c| (c.row.key.clone(), c.row.name.clone())).collect(),
    };
    let mut rows: Vec<GroupCompleteness> = groups
        .into_iter()
        .map(|(key, acc)| {
            let mut missing: Vec<(String, u64)> = acc.missing.into_iter().collect();
            missing.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let label = match &key {
                None => "public pool".to_string(),
                Some(k) => names.get(k).cloned().unwrap_or_else(|| k.clone()),
            };
            GroupCompleteness {
                label,
                customers: acc.customers,
                complete: acc.complete,
                average_score: acc.score as f64 / acc.customers.max(1) as f64,
                missing,
                key,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.average_score
            .total_cmp(&a.average_score)
            .then_with(|| b.customers.cmp(&a.customers))
            .then_with(|| a.label.cmp(&b.label))
    });
    Ok(rows)
}

/// The least complete records of important customers (importance A, tier A or lifecycle
/// VIP) that you may read: (rank from 1, customer id, completeness), worst first, then
/// the page after `skip` of size `limit`, and how many there are in all.
///
/// # Errors
/// FORBIDDEN without customer read access; database errors.
pub async fn least_complete(
    db: &DatabaseConnection,
    actor: &Actor,
    skip: u64,
    limit: u64,
) -> AppResult<(Vec<(i64, Uuid, Completeness)>, u64)> {
    use entity::enums::{Importance, LifecycleStage, Tier};
    actor.require(Resource::Customer, Action::Read)?;
    let catalogue = Catalogue::load(db).await?;
    let important = sea_orm::Condition::any()
        .add(customer::Column::Importance.eq(Importance::A))
        .add(customer::Column::Tier.eq(Tier::A))
        .add(customer::Column::LifecycleStage.eq(LifecycleStage::Vip));
    let scope =
        sea_orm::Condition::all().add(actor.customer_condition(Resource::Customer, Action::Read)).add(important);
    let mut found = Vec::new();
    scan(db, scope, |f| {
        let c = f.completeness(&catalogue.template(&f.category));
        if c.score < 100 {
            found.push((f.id, c));
        }
    })
    .await?;
    found.sort_by(|a, b| a.1.score.cmp(&b.1.score).then_with(|| a.0.cmp(&b.0)));
    let total = found.len() as u64;
    let page = found
        .into_iter()
        .enumerate()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|(i, (id, c))| (i64::try_from(i).unwrap_or(i64::MAX) + 1, id, c))
        .collect();
    Ok((page, total))
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
