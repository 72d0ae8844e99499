//! Filters on customers' custom fields (`customFields: [{key, eq, in, ...}]` in a
//! `CustomerFilter`, `docs/categories.md`). A value is read out of the `custom_fields`
//! JSON by the field's type (from the category templates), guarded by its JSON type: a
//! value a later template made invalid (text where a number was) never matches and never
//! breaks the query (an unguarded cast would fail the whole statement on PostgreSQL).
//! SQLite reads JSON with `json_type`/`json_extract`/`json_each`, PostgreSQL with
//! `jsonb_typeof`/`->`/`->>`/`jsonb_array_elements_text`.
use crate::category::FieldKind;
use crate::error::{AppError, AppResult};
use crate::kernel::pagination::{Computed, SortKey};
use entity::customer;
use sea_orm::sea_query::Expr;
use sea_orm::{Condition, DbBackend, Value};
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::HashMap;

/// What custom-field filters need to know: the store, and each key's type.
pub struct Custom {
    pub backend: DbBackend,
    pub kinds: HashMap<String, FieldKind>,
}

/// One custom-field filter, as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ops {
    key: String,
    eq: Option<String>,
    #[serde(rename = "in")]
    in_: Option<Vec<String>>,
    contains: Option<String>,
    gte: Option<String>,
    lte: Option<String>,
    is_null: Option<bool>,
}

/// SQL text with its bound values, placeholders in the store's style.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Sql { backend, text: String::new(), values: Vec::new() }
    }

    /// A placeholder for `v`.
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => "?".to_string(),
        }
    }

    fn expr(self) -> Expr {
        Expr::cust_with_values(self.text, self.values)
    }
}

/// Where `key` is in `custom_fields`: PostgreSQL's key, SQLite's JSON path (bound).
fn at(sql: &mut Sql, key: &str) -> String {
    match sql.backend {
        DbBackend::Postgres => format!("CAST({} AS text)", sql.bind(key)),
        _ => sql.bind(format!("$.\"{}\"", key.replace('"', ""))),
    }
}

/// The JSON type of `key`'s value, as SQL (PostgreSQL: string, number, boolean, array,
/// null; SQLite: text, integer, real, true, false, array, null; NULL when absent).
fn json_type(sql: &mut Sql, key: &str) -> String {
    let at = at(sql, key);
    match sql.backend {
        DbBackend::Postgres => format!("jsonb_typeof(custom_fields -> {at})"),
        _ => format!("json_type(custom_fields, {at})"),
    }
}

/// `key`'s value as SQL text (PostgreSQL) or its SQL value (SQLite), unchecked.
fn json_value(sql: &mut Sql, key: &str) -> String {
    let at = at(sql, key);
    match sql.backend {
        DbBackend::Postgres => format!("(custom_fields ->> {at})"),
        _ => format!("json_extract(custom_fields, {at})"),
    }
}

/// The value of `key` when it is of `kind`, else NULL (never a failed cast).
fn typed_value(sql: &mut Sql, key: &str, kind: FieldKind) -> String {
    let pg = sql.backend == DbBackend::Postgres;
    if kind == FieldKind::Money && !pg {
        // SQLite has no regular expressions: PostgreSQL's pattern below as GLOBs over the
        // value without its sign (b), read once through json_each. A bare CAST would read
        // words as 0.
        let key = sql.bind(key.to_string());
        return format!(
            "(SELECT CASE WHEN type = 'text' AND b GLOB '[0-9]*' AND ((b NOT GLOB '*[^0-9]*' AND length(b) <= 17) \
             OR (b GLOB '*.[0-9]' AND substr(b, 1, length(b) - 2) NOT GLOB '*[^0-9]*' AND length(b) <= 19) \
             OR (b GLOB '*.[0-9][0-9]' AND substr(b, 1, length(b) - 3) NOT GLOB '*[^0-9]*' AND length(b) <= 20)) \
             THEN CAST(v AS REAL) END \
             FROM (SELECT type, value AS v, CASE WHEN value GLOB '-*' THEN substr(value, 2) ELSE value END AS b \
             FROM json_each(custom_fields) WHERE key = {key}))"
        );
    }
    // (SQLite binds in order of appearance: the type test comes first in every form.)
    let (json_type, value) = (json_type(sql, key), json_value(sql, key));
    match (kind, pg) {
        (FieldKind::Number, true) => format!("(CASE WHEN {json_type} = 'number' THEN CAST({value} AS numeric) END)"),
        (FieldKind::Number, false) => format!("(CASE WHEN {json_type} IN ('integer', 'real') THEN {value} END)"),
        (FieldKind::Money, _) => format!(
            "(CASE WHEN {json_type} = 'string' AND {value} ~ '^-?[0-9]{{1,17}}(\\.[0-9]{{1,2}})?$' THEN CAST({value} AS numeric) END)"
        ),
        (FieldKind::Date, true) => format!(
            "(CASE WHEN {json_type} = 'string' AND {value} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN {value} END)"
        ),
        (FieldKind::Date, false) => {
            // `?` binds once per appearance: the value read again for its second one.
            let again = json_value(sql, key);
            format!(
                "(CASE WHEN {json_type} = 'text' AND {value} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' THEN {again} END)"
            )
        }
        (_, true) => format!("(CASE WHEN {json_type} = 'string' THEN {value} END)"),
        (_, false) => format!("(CASE WHEN {json_type} = 'text' THEN {value} END)"),
    }
}

/// The sort key of the custom field `key` (`orderBy: {customField: "points"}`): numbers
/// (NUMBER, MONEY) as floating point, texts (TEXT, CHOICE, DATE as YYYY-MM-DD) as the
/// database collates them; rows without a value of the field's type come last.
///
/// # Errors
/// VALIDATION: an unknown key, or a field of a type without an order (BOOLEAN,
/// MULTI_CHOICE).
pub fn sort_key(custom: &Custom, key: &str, descending: bool) -> AppResult<SortKey<customer::Entity>> {
    let key = key.trim();
    let bad = |m: &str| AppError::invalid("orderBy.customField", format!("{key}: {m}"));
    let kind = *custom.kinds.get(key).ok_or_else(|| bad("no category has a custom field of this key"))?;
    let mut sql = Sql::new(custom.backend);
    let (text, computed) = match kind {
        FieldKind::Number | FieldKind::Money => {
            // Read back as f64: a number beyond its range (possible in jsonb) is no value
            // rather than a failed cast.
            let float = if custom.backend == DbBackend::Postgres { "double precision" } else { "REAL" };
            let (a, b) = (typed_value(&mut sql, key, kind), typed_value(&mut sql, key, kind));
            (format!("(CASE WHEN abs({a}) < 1e308 THEN CAST({b} AS {float}) END)"), Computed::Number)
        }
        FieldKind::Text | FieldKind::Choice | FieldKind::Date => (typed_value(&mut sql, key, kind), Computed::Text),
        FieldKind::Boolean | FieldKind::MultiChoice => return Err(bad("a field of this type has no order")),
    };
    sql.text = text;
    Ok(SortKey::computed(format!("customFields.{key}"), sql.expr(), computed, descending))
}

fn bad(key: &str, message: impl Into<String>) -> AppError {
    AppError::invalid(format!("filter.customFields.{key}"), message)
}

fn number(key: &str, raw: &str) -> AppResult<f64> {
    raw.trim().parse::<f64>().ok().filter(|n| n.is_finite()).ok_or_else(|| bad(key, format!("{raw} is not a number")))
}

/// The values one custom-field filter binds (for the filter's value cap).
pub fn value_count(item: &Json) -> usize {
    item.as_object().map_or(0, |o| o.values().map(|v| v.as_array().map_or(1, Vec::len)).sum())
}

/// The SQL condition of one `{key, eq, in, contains, gte, lte, isNull}`.
///
/// # Errors
/// VALIDATION: an unknown key, an operator the field's type has not, a value of the
/// wrong type.
pub fn condition(custom: &Custom, item: &Json) -> AppResult<Condition> {
    let ops: Ops =
        serde_json::from_value(item.clone()).map_err(|e| AppError::invalid("filter.customFields", e.to_string()))?;
    let key = ops.key.trim();
    let kind = *custom.kinds.get(key).ok_or_else(|| bad(key, "no category has a custom field of this key"))?;
    let allowed: &[&str] = match kind {
        FieldKind::Text => &["eq", "in", "contains", "isNull"],
        FieldKind::Choice | FieldKind::MultiChoice => &["eq", "in", "isNull"],
        FieldKind::Number | FieldKind::Money | FieldKind::Date => &["eq", "gte", "lte", "isNull"],
        FieldKind::Boolean => &["eq", "isNull"],
    };
    for (op, used) in [
        ("eq", ops.eq.is_some()),
        ("in", ops.in_.is_some()),
        ("contains", ops.contains.is_some()),
        ("gte", ops.gte.is_some()),
        ("lte", ops.lte.is_some()),
        ("isNull", ops.is_null.is_some()),
    ] {
        if used && !allowed.contains(&op) {
            return Err(bad(key, format!("has no operator {op} (a {kind:?} field)")));
        }
    }
    let pg = custom.backend == DbBackend::Postgres;
    let mut all = Condition::all();
    if let Some(null) = ops.is_null {
        let mut sql = Sql::new(custom.backend);
        let json_type = json_type(&mut sql, key);
        let test = if null { "=" } else { "<>" };
        sql.text = format!("COALESCE({json_type}, 'null') {test} 'null'");
        all = all.add(sql.expr());
    }
    match kind {
        FieldKind::Boolean => {
            if let Some(raw) = &ops.eq {
                let want = match raw.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(key, "must be true or false")),
                };
                let mut sql = Sql::new(custom.backend);
                let json_type = json_type(&mut sql, key);
                sql.text = if pg {
                    let value = json_value(&mut sql, key);
                    let v = sql.bind(if want { "true" } else { "false" });
                    format!("({json_type} = 'boolean' AND {value} = {v})")
                } else {
                    format!("{json_type} = '{}'", if want { "true" } else { "false" })
                };
                all = all.add(sql.expr());
            }
        }
        FieldKind::MultiChoice => {
            // Has the value (eq), or any of them (in).
            let wanted: Vec<String> = ops.eq.iter().cloned().chain(ops.in_.iter().flatten().cloned()).collect();
            if !wanted.is_empty() {
                let mut sql = Sql::new(custom.backend);
                let json_type = json_type(&mut sql, key);
                let list_at = at(&mut sql, key);
                let marks: Vec<String> = wanted.iter().map(|w| sql.bind(w.clone())).collect();
                sql.text = if pg {
                    format!(
                        "(CASE WHEN {json_type} = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements_text(custom_fields -> {list_at}) AS e(v) WHERE e.v IN ({})) ELSE false END)",
                        marks.join(", ")
                    )
                } else {
                    format!(
                        "({json_type} = 'array' AND EXISTS (SELECT 1 FROM json_each(custom_fields, {list_at}) WHERE json_each.value IN ({})))",
                        marks.join(", ")
                    )
                };
                all = all.add(sql.expr());
            }
        }
        FieldKind::Number | FieldKind::Money => {
            for (op, raw) in [("=", &ops.eq), (">=", &ops.gte), ("<=", &ops.lte)] {
                if let Some(raw) = raw {
                    let bound = number(key, &raw.replace(',', ""))?;
                    let mut sql = Sql::new(custom.backend);
                    let value = typed_value(&mut sql, key, kind);
                    // PostgreSQL compares numeric with numeric: against a float bind, a
                    // stored number beyond f64's range would fail the cast.
                    let v =
                        if pg { format!("CAST({} AS numeric)", sql.bind(bound.to_string())) } else { sql.bind(bound) };
                    sql.text = format!("{value} {op} {v}");
                    all = all.add(sql.expr());
                }
            }
        }
        FieldKind::Date => {
            for (op, raw) in [("=", &ops.eq), (">=", &ops.gte), ("<=", &ops.lte)] {
                if let Some(raw) = raw {
                    let day = crate::kernel::parse_date(raw.trim()).map_err(|m| bad(key, m))?;
                    let mut sql = Sql::new(custom.backend);
                    let value = typed_value(&mut sql, key, kind);
                    let v = sql.bind(day.format("%Y-%m-%d").to_string());
                    sql.text = format!("{value} {op} {v}");
                    all = all.add(sql.expr());
                }
            }
        }
        FieldKind::Text | FieldKind::Choice => {
            if let Some(raw) = &ops.eq {
                let mut sql = Sql::new(custom.backend);
                let value = typed_value(&mut sql, key, kind);
                let v = sql.bind(raw.clone());
                sql.text = format!("{value} = {v}");
                all = all.add(sql.expr());
            }
            if let Some(list) = &ops.in_ {
                let mut sql = Sql::new(custom.backend);
                let value = typed_value(&mut sql, key, kind);
                let marks: Vec<String> = list.iter().map(|w| sql.bind(w.clone())).collect();
                sql.text =
                    if marks.is_empty() { "1 = 0".to_string() } else { format!("{value} IN ({})", marks.join(", ")) };
                if marks.is_empty() {
                    sql.values.clear();
                }
                all = all.add(sql.expr());
            }
            if let Some(needle) = &ops.contains {
                let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                let mut sql = Sql::new(custom.backend);
                let value = typed_value(&mut sql, key, kind);
                let v = sql.bind(format!("%{escaped}%"));
                sql.text = format!("lower({value}) LIKE {v} ESCAPE '\\'");
                all = all.add(sql.expr());
            }
        }
    }
    Ok(all)
}

impl crate::kernel::filter::CustomFields for Custom {
    fn value_count(&self, item: &Json) -> usize {
        value_count(item)
    }
    fn condition(&self, item: &Json) -> AppResult<Condition> {
        condition(self, item)
    }
}
