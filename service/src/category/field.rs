//! Field definitions of templates: the built-in fields a template may require, custom
//! fields by kind with their bounds, patterns and choices, and how a value is checked.
use super::*;

/// Built-in customer fields a template may require (their GraphQL names; `name` is always
/// required): those the customer's catalogue marks so.
pub fn built_in() -> impl Iterator<Item = &'static str> {
    crate::catalogue::CUSTOMER.template_fields()
}

/// Whether a template may require the built-in field `name`.
pub fn is_built_in(name: &str) -> bool {
    crate::catalogue::CUSTOMER.field(name).is_some_and(|f| f.template)
}

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
pub(super) enum Bound {
    Number(f64),
    Cents(i64),
    Date(chrono::NaiveDate),
    Length(usize),
}

impl FieldDef {
    pub(super) fn bound(&self, raw: &str) -> Result<Bound, String> {
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
pub(super) fn pattern(p: &str) -> Result<std::sync::Arc<regex::Regex>, String> {
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
