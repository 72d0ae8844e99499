//! One line's cells read as typed values: choices, dates, custom fields, natural keys.
use super::*;

/// The cells of a line by target, blank cells left out.
pub(super) struct Cells {
    pub(super) fields: HashMap<Field, String>,
    pub(super) custom: Vec<(String, String)>,
}

impl Cells {
    pub(super) fn get(&self, f: Field) -> Option<&str> {
        self.fields.get(&f).map(String::as_str)
    }
    pub(super) fn text(&self, f: Field) -> Option<String> {
        self.fields.get(&f).cloned()
    }
}

/// A cell as it was before an export guarded it against formulas (`csv::cell` puts a `'`
/// before a leading `= + - @`, tab or CR): an exported file imports back as it was.
pub(super) fn unguarded(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A value of a closed list: its stored name in any case, or one of the `labels`.
pub(super) fn choice<T: Copy>(
    problems: &mut Vec<FieldError>,
    field: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Option<T>,
    labels: &[(&str, T)],
    names: &str,
) -> Option<T> {
    let raw = raw?;
    let found = parse(&raw.to_uppercase().replace([' ', '-'], "_"))
        .or_else(|| labels.iter().find(|(l, _)| *l == raw).map(|(_, v)| *v));
    if found.is_none() {
        problems.push(FieldError::new(field, format!("must be one of {names}")));
    }
    found
}

/// A person's gender cell (customers and contacts).
pub(super) fn gender(problems: &mut Vec<FieldError>, cells: &Cells) -> Option<Gender> {
    choice(
        problems,
        "gender",
        cells.get(Field::Gender),
        Gender::parse,
        &[("男", Gender::Male), ("女", Gender::Female), ("其他", Gender::Other)],
        "MALE (男), FEMALE (女), OTHER",
    )
}

/// A date as spreadsheets write it: 2024-03-05, 2024/3/5 or 2024.3.5.
pub(super) fn date(problems: &mut Vec<FieldError>, field: &str, raw: Option<&str>) -> Option<chrono::NaiveDate> {
    let raw = raw?;
    let parts: Vec<&str> = raw.split(['-', '/', '.']).collect();
    let canonical = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && (1..=2).contains(&m.len()) && (1..=2).contains(&d.len()) => {
            format!("{y}-{m:0>2}-{d:0>2}")
        }
        _ => raw.to_string(),
    };
    match crate::kernel::parse_date(&canonical) {
        Ok(d) => Some(d),
        Err(_) => {
            problems.push(FieldError::new(field, "must be a date YYYY-MM-DD (or YYYY/M/D)"));
            None
        }
    }
}

/// A custom field's cell as the JSON its type stores (`category::FieldKind`); the
/// template check then applies its rules. Unknown keys stay text (and are reported by it).
pub(super) fn custom_value(kind: Option<FieldKind>, raw: &str) -> Result<Json, String> {
    Ok(match kind {
        Some(FieldKind::Number) => {
            let n = raw.replace(',', "");
            if let Ok(i) = n.parse::<i64>() {
                Json::from(i)
            } else {
                n.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Json::Number)
                    .ok_or_else(|| "must be a number".to_string())?
            }
        }
        Some(FieldKind::Money) => Json::String(raw.replace(',', "")),
        Some(FieldKind::Date) => {
            let mut p = Vec::new();
            let d = date(&mut p, "", Some(raw)).ok_or_else(|| "must be a date YYYY-MM-DD".to_string())?;
            Json::String(d.format("%Y-%m-%d").to_string())
        }
        Some(FieldKind::Boolean) => match raw.to_lowercase().as_str() {
            "true" | "yes" | "y" | "1" | "是" | "对" => Json::Bool(true),
            "false" | "no" | "n" | "0" | "否" | "不是" => Json::Bool(false),
            _ => return Err("must be true or false (是/否)".into()),
        },
        Some(FieldKind::MultiChoice) => Json::Array(
            raw.split([';', '|', '、', '；'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Json::String(s.to_string()))
                .collect(),
        ),
        _ => Json::String(raw.to_string()),
    })
}

/// The customer fields of a line, parsed; problems collected.
pub(super) struct Parsed {
    pub(super) kind: Option<CustomerKind>,
    pub(super) gender: Option<Gender>,
    pub(super) birthday: Option<chrono::NaiveDate>,
    pub(super) source: Option<CustomerSource>,
    pub(super) importance: Option<Importance>,
    pub(super) cooperation_start_date: Option<chrono::NaiveDate>,
    pub(super) lifecycle_stage: Option<LifecycleStage>,
}

pub(super) fn parse(problems: &mut Vec<FieldError>, cells: &Cells) -> Parsed {
    use Field as F;
    Parsed {
        kind: choice(
            problems,
            "kind",
            cells.get(F::Kind),
            CustomerKind::parse,
            &[
                ("个人", CustomerKind::Individual),
                ("企业", CustomerKind::Organization),
                ("公司", CustomerKind::Organization),
                ("单位", CustomerKind::Organization),
            ],
            "INDIVIDUAL (个人), ORGANIZATION (企业)",
        ),
        gender: gender(problems, cells),
        birthday: date(problems, "birthday", cells.get(F::Birthday)),
        source: choice(
            problems,
            "source",
            cells.get(F::Source),
            CustomerSource::parse,
            &[
                ("电话来访", CustomerSource::PhoneIn),
                ("电话拜访", CustomerSource::PhoneOut),
                ("转介绍", CustomerSource::Referral),
                ("网站", CustomerSource::Web),
                ("广告", CustomerSource::Advertising),
                ("活动", CustomerSource::Event),
                ("合作伙伴", CustomerSource::Partner),
                ("其他", CustomerSource::Other),
            ],
            "PHONE_IN, PHONE_OUT, REFERRAL, WEB, ADVERTISING, EVENT, PARTNER, OTHER",
        ),
        importance: choice(problems, "importance", cells.get(F::Importance), Importance::parse, &[], "A, B, C"),
        cooperation_start_date: date(problems, "cooperationStartDate", cells.get(F::CooperationStartDate)),
        lifecycle_stage: choice(
            problems,
            "lifecycleStage",
            cells.get(F::LifecycleStage),
            LifecycleStage::parse,
            &[("目标", LifecycleStage::Target), ("潜在", LifecycleStage::Prospect)],
            "TARGET (目标), PROSPECT (潜在)",
        ),
    }
}

/// The custom fields of a line, typed by the template of `category`, over `base` (the
/// stored object of an update).
pub(super) fn custom_fields(
    problems: &mut Vec<FieldError>,
    catalogue: &Catalogue,
    category: &str,
    cells: &Cells,
    base: Option<&Json>,
) -> Option<Json> {
    if cells.custom.is_empty() {
        return None;
    }
    let template = catalogue.template(category);
    let mut object: Map<String, Json> = base.and_then(Json::as_object).cloned().unwrap_or_default();
    for (key, raw) in &cells.custom {
        match custom_value(template.field(key).map(|f| f.kind), raw) {
            Ok(v) => {
                object.insert(key.clone(), v);
            }
            Err(m) => problems.push(FieldError::new(format!("customFields.{key}"), m)),
        }
    }
    Some(Json::Object(object))
}

/// The natural keys of a line: column and normalised value.
pub(super) fn natural_keys(kind: CustomerKind, cells: &Cells) -> Vec<(C, String)> {
    customer::natural_keys(kind, cells.get(Field::Name), cells.get(Field::Phone), cells.get(Field::Email))
}

pub(super) fn key_label(c: C) -> &'static str {
    match c {
        C::PhoneNorm => "phone",
        C::EmailNorm => "e-mail",
        _ => "organisation name",
    }
}

pub(super) fn key_value(m: &entity::customer::Model, c: C) -> Option<&str> {
    match c {
        C::PhoneNorm => m.phone_norm.as_deref(),
        C::EmailNorm => m.email_norm.as_deref(),
        _ => m.name_norm.as_deref(),
    }
}
