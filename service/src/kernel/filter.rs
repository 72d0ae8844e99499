//! List filters, declared per resource and built in one place.
//!
//! A resource declares its filterable fields ([`Field`]: name, column, [`Kind`]); a filter
//! is a JSON object in the shape the GraphQL `XFilter` inputs have (`{"tier": {"in":
//! ["A"]}, "or": [{...}]}`), whichever way it came in: a GraphQL input turned into JSON, or
//! the `filter` parameter of a CSV route. [`condition`] checks and turns it into SQL:
//! unknown fields and operators, bad ids, dates, amounts and enum values are VALIDATION
//! errors naming `filter.<field>`. A field of a field group (amounts, contact details,
//! personal details) matches only on the rows where the caller sees that group: the
//! comparison is joined with the group's row condition, so a filter never tells anything
//! about a value the caller could not read (`docs/access.md`, field groups).
use crate::error::{AppError, AppResult};
use chrono::{DateTime, NaiveDate, Utc};

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use uuid::Uuid;

/// Fields a record family types itself (customers' custom fields, typed by the category
/// templates): a filter's `customFields` list is handed to them.
pub trait CustomFields {
    /// How many values a `customFields` item compares with.
    fn value_count(&self, item: &Json) -> usize;
    /// The SQL condition of one `customFields` item.
    ///
    /// # Errors
    /// VALIDATION naming `filter.customFields`.
    fn condition(&self, item: &Json) -> AppResult<Condition>;
}

/// A record family without custom fields.
pub enum NoCustom {}

impl CustomFields for NoCustom {
    fn value_count(&self, _: &Json) -> usize {
        match *self {}
    }
    fn condition(&self, _: &Json) -> AppResult<Condition> {
        match *self {}
    }
}

/// Deepest nesting of `and`/`or` in a filter.
pub const MAX_DEPTH: usize = 5;

/// Most values one filter may bind, all its `in` lists and operators together (SQLite
/// allows 32,766 parameters a statement; a list query adds a few of its own).
pub const MAX_VALUES: usize = 2000;

/// How a field is matched.
#[derive(Clone, Copy)]
pub enum Kind<C> {
    /// Text: eq, in, contains (case-insensitive), isNull.
    Text,
    /// A label matched whole (reports): eq, in, isNull.
    Label,
    /// A phone number matched on its E.164 form: any spelling of a number finds it.
    Phone,
    /// An e-mail address matched lower-cased.
    Email,
    /// A whole number: eq, gte, lte, isNull.
    Int,
    /// A point in time: gte, lte, isNull.
    Time,
    /// A calendar date: eq, gte, lte, isNull.
    Day,
    /// An id: eq, in, isNull.
    Id,
    /// A stored enum: eq, in, isNull; `valid` says which strings are values.
    Choice(fn(&str) -> bool),
    /// An amount in minor units (decimal strings in, in `currency`): gte, lte. With a
    /// currency column, rows in other currencies do not match; without one, the column
    /// is in the base currency.
    Amount { currency: Option<C> },
}

/// A filterable field of a resource.
#[derive(Clone, Copy)]
pub struct Field<C> {
    /// The GraphQL/JSON name, e.g. `lastPurchaseOn`.
    pub name: &'static str,
    pub column: C,
    pub kind: Kind<C>,
}

impl<C> Field<C> {
    pub const fn new(name: &'static str, column: C, kind: Kind<C>) -> Self {
        Field { name, column, kind }
    }
}

/// The rows on which a field shows, as SQL, by its name: `None` for a field read with the
/// row, the rows where its field group shows otherwise (the record's catalogue says which
/// group); FORBIDDEN when it shows on none.
pub type GroupGuard<'a> = &'a dyn Fn(&str) -> AppResult<Option<Condition>>;

/// A stored enum's validity check, for [`Kind::Choice`].
#[macro_export]
macro_rules! choice {
    ($enum:ty) => {
        $crate::kernel::filter::Kind::Choice(|s| <$enum>::parse(s).is_some())
    };
}

/// The SQL condition of `filter` over `fields`; `guard` confines fields of a field group.
///
/// # Errors
/// VALIDATION for anything malformed (naming `filter.<field>`), FORBIDDEN for a field of
/// a group the caller sees nowhere.
pub fn condition<C: ColumnTrait + Copy>(
    guard: GroupGuard<'_>,
    fields: &[Field<C>],
    filter: Option<&Json>,
    custom: Option<&dyn CustomFields>,
) -> AppResult<Condition> {
    match filter {
        None | Some(Json::Null) => Ok(Condition::all()),
        Some(f) => build(guard, fields, custom, f, 0, &mut 0),
    }
}

fn build<C: ColumnTrait + Copy>(
    guard: GroupGuard<'_>,
    fields: &[Field<C>],
    custom: Option<&dyn CustomFields>,
    filter: &Json,
    depth: usize,
    values: &mut usize,
) -> AppResult<Condition> {
    if depth > MAX_DEPTH {
        return Err(AppError::invalid("filter", format!("and/or may nest at most {MAX_DEPTH} levels")));
    }
    let Json::Object(map) = filter else { return Err(AppError::invalid("filter", "must be an object")) };
    let mut all = Condition::all();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match (key.as_str(), custom) {
            ("and" | "or", _) => {
                let Json::Array(list) = value else {
                    return Err(AppError::invalid(format!("filter.{key}"), "must be a list of filters"));
                };
                let mut group = if key == "and" { Condition::all() } else { Condition::any() };
                for f in list {
                    group = group.add(build(guard, fields, custom, f, depth + 1, values)?);
                }
                all = all.add(group);
            }
            // Customers' custom fields, typed by the category templates.
            ("customFields", Some(custom)) => {
                let Json::Array(list) = value else {
                    return Err(AppError::invalid("filter.customFields", "must be a list of {key, eq, in, ...}"));
                };
                for item in list {
                    *values += custom.value_count(item);
                    if *values > MAX_VALUES {
                        return Err(AppError::invalid(
                            "filter",
                            format!("may compare with at most {MAX_VALUES} values"),
                        ));
                    }
                    all = all.add(custom.condition(item)?);
                }
            }
            (name, _) => {
                let field = fields.iter().find(|f| f.name == name).ok_or_else(|| {
                    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                    AppError::invalid(format!("filter.{name}"), format!("unknown field; one of {}", known.join(", ")))
                })?;
                *values += value_count(value);
                if *values > MAX_VALUES {
                    return Err(AppError::invalid("filter", format!("may compare with at most {MAX_VALUES} values")));
                }
                let matched = field_condition(field, value)?;
                all = all.add(match guard(name)? {
                    Some(rows) => Condition::all().add(rows).add(matched),
                    None => matched,
                });
            }
        }
    }
    Ok(all)
}

/// Operators of one field, as sent.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ops<T> {
    eq: Option<T>,
    #[serde(rename = "in")]
    in_: Option<Vec<T>>,
    contains: Option<String>,
    gte: Option<T>,
    lte: Option<T>,
    is_null: Option<bool>,
    /// Amounts only.
    currency: Option<String>,
}

fn parse<T: DeserializeOwned>(field: &str, value: &Json) -> AppResult<Ops<T>> {
    serde_json::from_value(value.clone()).map_err(|e| AppError::invalid(format!("filter.{field}"), e.to_string()))
}

/// How many values one field's operators bind (an `in` list counts each entry).
fn value_count(ops: &Json) -> usize {
    ops.as_object().map_or(0, |o| o.values().map(|v| v.as_array().map_or(1, Vec::len)).sum())
}

/// Refuses operators a kind does not have (`contains` on a number, `gte` on text...).
fn only<T>(field: &str, ops: &Ops<T>, allowed: &[&str]) -> AppResult<()> {
    let used = [
        ("eq", ops.eq.is_some()),
        ("in", ops.in_.is_some()),
        ("contains", ops.contains.is_some()),
        ("gte", ops.gte.is_some()),
        ("lte", ops.lte.is_some()),
        ("isNull", ops.is_null.is_some()),
        ("currency", ops.currency.is_some()),
    ];
    match used.iter().find(|(op, on)| *on && !allowed.contains(op)) {
        Some((op, _)) => Err(AppError::invalid(format!("filter.{field}"), format!("has no operator {op}"))),
        None => Ok(()),
    }
}

/// eq / in / gte / lte / isNull of already-typed values.
fn compare<C: ColumnTrait + Copy, T: Into<sea_orm::Value> + Clone>(col: C, ops: &Ops<T>) -> Condition {
    let mut c = Condition::all();
    if let Some(v) = &ops.eq {
        c = c.add(col.eq(v.clone()));
    }
    if let Some(v) = &ops.in_ {
        c = c.add(col.is_in(v.clone()));
    }
    if let Some(v) = &ops.gte {
        c = c.add(col.gte(v.clone()));
    }
    if let Some(v) = &ops.lte {
        c = c.add(col.lte(v.clone()));
    }
    if let Some(n) = ops.is_null {
        c = c.add(if n { col.is_null() } else { col.is_not_null() });
    }
    c
}

/// Case-insensitive substring condition with LIKE wildcards escaped.
pub fn contains(col: impl ColumnTrait, needle: &str) -> Expr {
    let escaped = needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    Expr::expr(Func::lower(Expr::col(col))).like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// Text with each value passed through `norm` first (phone, e-mail), and the `contains`
/// needle through `needle`, which says what it matches or why it matches nothing sensible.
fn text<C: ColumnTrait + Copy>(
    field: &str,
    col: C,
    value: &Json,
    norm: impl Fn(&str) -> String,
    needle: impl Fn(&str) -> Result<Needle, String>,
) -> AppResult<Condition> {
    let mut ops: Ops<String> = parse(field, value)?;
    only(field, &ops, &["eq", "in", "contains", "isNull"])?;
    ops.eq = ops.eq.map(|s| norm(&s));
    ops.in_ = ops.in_.map(|v| v.iter().map(|s| norm(s)).collect());
    let mut c = compare(col, &ops);
    if let Some(n) = &ops.contains {
        let matched = match needle(n).map_err(|m| AppError::invalid(format!("filter.{field}.contains"), m))? {
            Needle::Inside(s) => contains(col, &s),
            // Stored text keeps its width: the needle as typed, or folded.
            Needle::Either(typed, folded) => contains(col, &typed).or(contains(col, &folded)),
            // Digits only: nothing to escape.
            Needle::StartOrInside(start, inside) => {
                Expr::col(col).like(LikeExpr::new(format!("{start}%"))).or(contains(col, &inside))
            }
        };
        c = c.add(matched);
    }
    Ok(c)
}

/// What a `contains` needle matches once folded.
enum Needle {
    Inside(String),
    /// Inside, as typed or as folded.
    Either(String, String),
    /// The start of the value, or (the same digits read literally) anywhere in it.
    StartOrInside(String, String),
}

/// A text needle folded to half-width (as the search box folds it): a needle of nothing
/// but spaces would match every row, and is refused.
fn text_needle(raw: &str) -> Result<Needle, String> {
    if raw.chars().any(char::is_control) {
        return Err("has a control character".into());
    }
    let folded = crate::kernel::normalize::fold_width(raw).trim().to_string();
    if folded.is_empty() {
        return Err("give at least one character to look for".into());
    }
    Ok(if folded == raw { Needle::Inside(folded) } else { Needle::Either(raw.to_string(), folded) })
}

/// A phone needle: digits in any width with the punctuation numbers are written with; a
/// leading trunk 0 (`021-6555`) or international 00 is the start of the number.
fn phone_needle(raw: &str) -> Result<Needle, String> {
    let folded = crate::kernel::normalize::fold_width(raw);
    if let Some(c) = folded.chars().find(|c| !c.is_ascii_digit() && !" +-().//".contains(*c)) {
        return Err(format!("a phone number has digits only, not '{c}'"));
    }
    let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err("give at least one digit to look for".into());
    }
    // A bare 0 or 00 is no start of anything: digits inside, as typed.
    Ok(if let Some(international) = digits.strip_prefix("00").filter(|r| !r.is_empty()) {
        Needle::StartOrInside(format!("+{international}"), digits)
    } else if let Some(national) = digits.strip_prefix('0').filter(|r| !r.is_empty() && !r.starts_with('0')) {
        Needle::StartOrInside(format!("+86{national}"), digits)
    } else if folded.trim_start().starts_with('+') {
        Needle::StartOrInside(format!("+{digits}"), format!("+{digits}"))
    } else {
        Needle::Inside(digits)
    })
}

fn field_condition<C: ColumnTrait + Copy>(field: &Field<C>, value: &Json) -> AppResult<Condition> {
    let (name, col) = (field.name, field.column);
    let same = |s: &str| s.to_string();
    match field.kind {
        Kind::Text => text(name, col, value, same, text_needle),
        Kind::Label => {
            let ops: Ops<String> = parse(name, value)?;
            only(name, &ops, &["eq", "in", "isNull"])?;
            Ok(compare(col, &ops))
        }
        Kind::Phone => text(
            name,
            col,
            value,
            |p| crate::kernel::normalize::phone_e164(p).map_or_else(|_| p.to_string(), String::from),
            phone_needle,
        ),
        Kind::Email => text(name, col, value, |s| s.trim().to_lowercase(), text_needle),
        Kind::Int => {
            let ops: Ops<i64> = parse(name, value)?;
            only(name, &ops, &["eq", "gte", "lte", "isNull"])?;
            Ok(compare(col, &ops))
        }
        Kind::Time => {
            let ops: Ops<DateTime<Utc>> = parse(name, value)?;
            only(name, &ops, &["gte", "lte", "isNull"])?;
            Ok(compare(col, &ops))
        }
        Kind::Day => {
            let ops: Ops<NaiveDate> = parse(name, value)?;
            only(name, &ops, &["eq", "gte", "lte", "isNull"])?;
            Ok(compare(col, &ops))
        }
        Kind::Id => {
            let ops: Ops<String> = parse(name, value)?;
            only(name, &ops, &["eq", "in", "isNull"])?;
            let id = |s: &String| {
                Uuid::parse_str(s).map_err(|_| AppError::invalid(format!("filter.{name}"), "not a valid id"))
            };
            let typed = Ops::<Uuid> {
                eq: ops.eq.as_ref().map(id).transpose()?,
                in_: ops.in_.as_ref().map(|v| v.iter().map(id).collect()).transpose()?,
                is_null: ops.is_null,
                ..Ops::default()
            };
            Ok(compare(col, &typed))
        }
        Kind::Choice(valid) => {
            let ops: Ops<String> = parse(name, value)?;
            only(name, &ops, &["eq", "in", "isNull"])?;
            if let Some(bad) = ops.eq.iter().chain(ops.in_.iter().flatten()).find(|v| !valid(v)) {
                return Err(AppError::invalid(format!("filter.{name}"), format!("unknown value {bad}")));
            }
            Ok(compare(col, &ops))
        }
        Kind::Amount { currency } => {
            let ops: Ops<String> = parse(name, value)?;
            only(name, &ops, &["gte", "lte", "currency"])?;
            let code = crate::kernel::money::currency(ops.currency.as_deref().unwrap_or("CNY"))
                .map_err(|m| AppError::invalid(format!("filter.{name}.currency"), m))?;
            let amount = |op: &str, v: &Option<String>| {
                v.as_deref()
                    .map(|v| crate::kernel::money::parse_minor(v, &code))
                    .transpose()
                    .map_err(|m| AppError::invalid(format!("filter.{name}.{op}"), m))
            };
            let typed = Ops::<i64> { gte: amount("gte", &ops.gte)?, lte: amount("lte", &ops.lte)?, ..Ops::default() };
            let mut c = compare(col, &typed);
            if let Some(currency) = currency {
                c = c.add(currency.eq(code));
            }
            Ok(c)
        }
    }
}

/// Whether `filter` uses the field `name` anywhere (nested `and`/`or` included).
pub fn mentions(filter: Option<&Json>, name: &str) -> bool {
    let Some(Json::Object(map)) = filter else { return false };
    map.iter().any(|(k, v)| match k.as_str() {
        "and" | "or" => v.as_array().is_some_and(|l| l.iter().any(|f| mentions(Some(f), name))),
        key => key == name && !v.is_null(),
    })
}
