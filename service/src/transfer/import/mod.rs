//! Imports of a customer book from CSV (`docs/import-export.md`): the header maps to
//! customer fields and custom fields, each line is matched on the natural keys (phone,
//! e-mail, normalised organisation name) and creates a customer, updates the one it
//! matches when the importer may write it, or is reported (a duplicate of a record the
//! importer may not touch, invalid with every bad field listed). Lines are processed in
//! chunks, each in one transaction with a savepoint per line, so a bad line never sinks
//! its neighbours; the run's counters move with each chunk (progress is pollable) and
//! every line's outcome is kept. A dry run does the same work and rolls each chunk back.
use crate::access::Actor;
use crate::access::live::Events;
use crate::catalogue::{self, RecordCatalogue};
use crate::category::{Catalogue, Category, FieldKind};
use crate::customer::{self, CustomerPatch, NewCustomer};
use crate::error::{AppError, AppResult, FieldError};
use crate::kernel::change::Verb;
use crate::kernel::events::Signal;
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::vault::Keyring;
use crate::kernel::{new_id, now};
use entity::customer::Column as C;
use entity::enums::{
    Action, CustomerKind, CustomerSource, Gender, ImportKind, ImportOutcome, ImportStatus, Importance, LifecycleStage,
    Resource, Role,
};
use entity::{import_line, import_run};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set, SqliteTransactionMode, TransactionOptions, TransactionTrait, TryIntoModel,
};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use uuid::Uuid;

/// Lines per chunk: one transaction, one counter update.
pub const CHUNK: usize = 500;

/// A RUNNING run whose last chunk is older than this was cut off (its server stopped).
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Lines with a problem returned in the response of the upload (all are kept in the run).
pub const PROBLEMS_SHOWN: usize = 100;

mod contacts;
mod deals;
pub mod decode;
mod parent;

/// A field a column can fill (of a customer, or of a contact and the customer it hangs off).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Field {
    /// The record's id, as an export writes it: matched before the natural keys.
    Id,
    /// The customer a contact hangs off: its id, or one of its natural keys.
    CustomerId,
    CustomerName,
    CustomerPhone,
    CustomerEmail,
    Title,
    DealRole,
    Mobile,
    OfficePhone,
    Hometown,
    Hobbies,
    Notes,
    Stage,
    Amount,
    Currency,
    ExpectedCloseDate,
    ActualCloseDate,
    LostReason,
    Kind,
    Category,
    Name,
    Gender,
    Birthday,
    Phone,
    Email,
    Address,
    Region,
    Industry,
    Source,
    Importance,
    CreditRating,
    CooperationStartDate,
    LifecycleStage,
}

/// A field and its name (the API's, the export's header); its other headers are the
/// record's catalogue's (`catalogue`).
pub type FieldName = (Field, &'static str);

/// Each customer field an import reads.
pub const CUSTOMER_FIELDS: &[FieldName] = &[
    (Field::Id, "id"),
    (Field::Kind, "kind"),
    (Field::Category, "category"),
    (Field::Name, "name"),
    (Field::Gender, "gender"),
    (Field::Birthday, "birthday"),
    (Field::Phone, "phone"),
    (Field::Email, "email"),
    (Field::Address, "address"),
    (Field::Region, "region"),
    (Field::Industry, "industry"),
    (Field::Source, "source"),
    (Field::Importance, "importance"),
    (Field::CreditRating, "creditRating"),
    (Field::CooperationStartDate, "cooperationStartDate"),
    (Field::LifecycleStage, "lifecycleStage"),
];

/// Where one column goes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Target {
    Field(Field),
    /// A custom field, by key (typed by the line's category template).
    Custom(String),
    Skip,
}

/// The columns of a file, mapped.
pub struct Mapping {
    targets: Vec<Target>,
}

fn folded(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect::<String>()
        .to_lowercase()
}

/// The fields of a kind of record.
fn fields_of(kind: ImportKind) -> &'static [FieldName] {
    match kind {
        ImportKind::Customers => CUSTOMER_FIELDS,
        ImportKind::Contacts => contacts::FIELDS,
        ImportKind::Deals => deals::FIELDS,
    }
}

/// The catalogue of the records a kind of import writes.
fn catalogue_of(kind: ImportKind) -> &'static RecordCatalogue {
    match kind {
        ImportKind::Customers => &catalogue::CUSTOMER,
        ImportKind::Contacts => &catalogue::CONTACT,
        ImportKind::Deals => &catalogue::DEAL,
    }
}

/// The field a header names: a field's name or one of its headers in the catalogue.
fn field_named(kind: ImportKind, name: &str) -> Option<Field> {
    let f = folded(name);
    let (api, _) = catalogue_of(kind)
        .import_fields()
        .find(|(n, headers)| folded(n) == f || headers.iter().any(|a| folded(a) == f))?;
    fields_of(kind).iter().find(|(_, n)| *n == api).map(|(field, _)| *field)
}

impl Mapping {
    /// Maps header cells to fields: a field's name or common Chinese header, `custom.<key>`
    /// or a custom field's key or label in a category open to the importer (`categories`), an export-only column (skipped),
    /// or what `explicit` says (`header -> field name`, `custom.<key>`, or `-` to skip).
    ///
    /// # Errors
    /// VALIDATION listing every header that maps to nothing or to a field already mapped.
    pub fn new(
        kind: ImportKind,
        categories: &[Category],
        header: &[String],
        explicit: &HashMap<String, String>,
    ) -> AppResult<Self> {
        let mut problems = Vec::new();
        let catalogue = catalogue_of(kind);
        // Custom fields are customers' (`category.rs`).
        let categories = if kind == ImportKind::Customers { categories } else { &[] };
        let mut targets = Vec::with_capacity(header.len());
        let custom_of = |name: &str| -> Option<String> {
            let n = name.trim();
            if kind == ImportKind::Customers
                && let Some(key) = n.strip_prefix("custom.").or_else(|| n.strip_prefix("customFields."))
            {
                return Some(key.trim().to_string());
            }
            categories
                .iter()
                .flat_map(|c| c.fields.iter())
                .find(|f| f.key == n || f.label.trim() == n)
                .map(|f| f.key.clone())
        };
        for (i, raw) in header.iter().enumerate() {
            let name = raw.trim().trim_start_matches('\u{feff}').trim();
            let column = format!("header.{}", i + 1);
            let target = match explicit.get(name).map(|s| s.trim()) {
                Some("-") => Some(Target::Skip),
                Some(to) => field_named(kind, to).map(Target::Field).or_else(|| {
                    to.strip_prefix("custom.")
                        .filter(|_| kind == ImportKind::Customers)
                        .map(|k| Target::Custom(k.trim().to_string()))
                }),
                None if name.is_empty() => Some(Target::Skip),
                None => field_named(kind, name)
                    .map(Target::Field)
                    .or_else(|| custom_of(name).map(Target::Custom))
                    .or_else(|| catalogue.read_past().any(|r| folded(r) == folded(name)).then_some(Target::Skip)),
            };
            match target {
                None => problems.push(FieldError::new(
                    column,
                    format!("column \"{name}\" maps to no field (map it with map={name}:<field>, or skip it with map={name}:-)"),
                )),
                Some(t) => {
                    if t != Target::Skip && targets.contains(&t) {
                        problems.push(FieldError::new(column, format!("column \"{name}\" fills a field an earlier column fills")));
                    }
                    targets.push(t);
                }
            }
        }
        let (required, hint) = match kind {
            ImportKind::Deals => (Field::Title, "title (标题)"),
            _ => (Field::Name, "name (名称/姓名)"),
        };
        if !targets.contains(&Target::Field(required)) && problems.is_empty() {
            problems.push(FieldError::new("header", format!("no column maps to {hint}")));
        }
        let links = [Field::CustomerId, Field::CustomerName, Field::CustomerPhone, Field::CustomerEmail];
        if kind != ImportKind::Customers
            && problems.is_empty()
            && !links.iter().any(|f| targets.contains(&Target::Field(*f)))
        {
            problems.push(FieldError::new(
                "header",
                "no column names the customer (customerId, customerName/客户名称, customerPhone or customerEmail)",
            ));
        }
        if problems.is_empty() { Ok(Self { targets }) } else { Err(AppError::Validation(problems)) }
    }
}

/// Options of a run.
pub struct Options {
    pub kind: ImportKind,
    pub dry_run: bool,
    /// The kind of a line without a kind column or cell.
    pub default_kind: CustomerKind,
    pub file_name: Option<String>,
    pub encoding: &'static str,
}

/// One record of the file.
pub struct Line {
    /// Where it starts in the file (the header is line 1).
    pub number: i64,
    pub cells: Vec<String>,
    /// Why the line cannot be read at all (too long, bytes not valid in the encoding).
    pub unreadable: Option<String>,
}

/// What became of one line.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub line: i64,
    pub outcome: ImportOutcome,
    pub record_id: Option<Uuid>,
    pub message: Option<String>,
    pub problems: Vec<FieldError>,
}

impl Outcome {
    fn new(line: i64, outcome: ImportOutcome, record_id: Option<Uuid>, message: Option<String>) -> Self {
        Self { line, outcome, record_id, message, problems: Vec::new() }
    }

    fn invalid(line: i64, problems: Vec<FieldError>) -> Self {
        Self { line, outcome: ImportOutcome::Invalid, record_id: None, message: None, problems }
    }
}

/// A run in progress.
pub struct Importer<'a> {
    db: &'a DatabaseConnection,
    events: &'a Events,
    vault: &'a Keyring,
    actor: &'a Actor,
    mapping: Mapping,
    options: Options,
    pub run: import_run::Model,
    /// Department names of matched records, for DUPLICATE messages.
    /// Dry run only: natural keys the earlier (rolled back) chunks would have created,
    /// with the line and the kind, so a later line that repeats one reads as the update it
    /// will be.
    would_create: HashMap<String, (i64, Option<CustomerKind>)>,
    /// When the run last told the database it is alive.
    last_beat: std::time::Instant,
    /// Dry run only: records the current chunk created (rolled back with it).
    created_here: std::collections::HashSet<Uuid>,
    /// Live signals of the chunk's changes, published once it commits.
    signals: Vec<Signal>,
    /// Customers whose deals the chunk wrote, to regrade at its end in id order.
    regrade: std::collections::BTreeMap<Uuid, crate::classification::Reason>,
    /// The first lines with a problem, for the upload's response.
    pub problems: Vec<Outcome>,
}

/// The resource an import of `kind` creates.
pub fn resource_of(kind: ImportKind) -> Resource {
    match kind {
        ImportKind::Customers => Resource::Customer,
        ImportKind::Contacts => Resource::Contact,
        ImportKind::Deals => Resource::Deal,
    }
}

/// Starts a run: the caller may create records of its kind.
///
/// # Errors
/// FORBIDDEN, database errors.
pub async fn start<'a>(
    db: &'a DatabaseConnection,
    events: &'a Events,
    vault: &'a Keyring,
    actor: &'a Actor,
    mapping: Mapping,
    options: Options,
) -> AppResult<Importer<'a>> {
    actor.require(resource_of(options.kind), Action::Create)?;
    let at = now();
    let run = import_run::ActiveModel {
        id: Set(new_id()),
        kind: Set(options.kind),
        dry_run: Set(options.dry_run),
        status: Set(ImportStatus::Running),
        file_name: Set(options.file_name.clone()),
        encoding: Set(options.encoding.to_string()),
        started_by: Set(actor.id()),
        lines_read: Set(0),
        created: Set(0),
        updated: Set(0),
        unchanged: Set(0),
        duplicate: Set(0),
        invalid: Set(0),
        failed: Set(0),
        error: Set(None),
        started_at: Set(at),
        heartbeat_at: Set(at),
        finished_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(Importer {
        db,
        events,
        vault,
        actor,
        mapping,
        options,
        run,
        would_create: HashMap::new(),
        last_beat: std::time::Instant::now(),
        created_here: std::collections::HashSet::new(),
        signals: Vec::new(),
        regrade: std::collections::BTreeMap::new(),
        problems: Vec::new(),
    })
}

/// The cells of a line by target, blank cells left out.
struct Cells {
    fields: HashMap<Field, String>,
    custom: Vec<(String, String)>,
}

impl Cells {
    fn get(&self, f: Field) -> Option<&str> {
        self.fields.get(&f).map(String::as_str)
    }
    fn text(&self, f: Field) -> Option<String> {
        self.fields.get(&f).cloned()
    }
}

/// A cell as it was before an export guarded it against formulas (`csv::cell` puts a `'`
/// before a leading `= + - @`, tab or CR): an exported file imports back as it was.
fn unguarded(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A value of a closed list: its stored name in any case, or one of the `labels`.
fn choice<T: Copy>(
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
fn gender(problems: &mut Vec<FieldError>, cells: &Cells) -> Option<Gender> {
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
fn date(problems: &mut Vec<FieldError>, field: &str, raw: Option<&str>) -> Option<chrono::NaiveDate> {
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
fn custom_value(kind: Option<FieldKind>, raw: &str) -> Result<Json, String> {
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
struct Parsed {
    kind: Option<CustomerKind>,
    gender: Option<Gender>,
    birthday: Option<chrono::NaiveDate>,
    source: Option<CustomerSource>,
    importance: Option<Importance>,
    cooperation_start_date: Option<chrono::NaiveDate>,
    lifecycle_stage: Option<LifecycleStage>,
}

fn parse(problems: &mut Vec<FieldError>, cells: &Cells) -> Parsed {
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
fn custom_fields(
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
fn natural_keys(kind: CustomerKind, cells: &Cells) -> Vec<(C, String)> {
    customer::natural_keys(kind, cells.get(Field::Name), cells.get(Field::Phone), cells.get(Field::Email))
}

fn key_label(c: C) -> &'static str {
    match c {
        C::PhoneNorm => "phone",
        C::EmailNorm => "e-mail",
        _ => "organisation name",
    }
}

impl Importer<'_> {
    /// Imports one chunk of lines: one transaction (rolled back on a dry run), a savepoint
    /// per line, the outcomes and counters written with the chunk.
    ///
    /// # Errors
    /// Database errors (the run is then marked FAILED by [`Importer::fail`]).
    pub async fn chunk(&mut self, lines: Vec<Line>) -> AppResult<()> {
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        let catalogue = Catalogue::load(&txn).await?;
        let mut outcomes = Vec::with_capacity(lines.len());
        for line in lines {
            let number = line.number;
            let outcome = match self.line(&txn, &catalogue, line).await {
                Ok(o) => o,
                Err(e @ AppError::Internal(_)) => {
                    txn.rollback().await?;
                    return Err(e);
                }
                Err(e) => Outcome::new(number, ImportOutcome::Failed, None, Some(e.to_string())),
            };
            outcomes.push(outcome);
        }
        // Deals' customers regraded once each, in id order (the order a full pass locks
        // them in); a dry run's are rolled back anyway.
        for (customer, reason) in std::mem::take(&mut self.regrade) {
            if !self.options.dry_run {
                crate::classification::recompute(&txn, customer, reason, Some(self.actor.id())).await?;
            }
        }
        let txn = if self.options.dry_run {
            txn.rollback().await?;
            // A record created in the rolled-back chunk does not exist: no id to show,
            // whichever line reached it.
            let gone = std::mem::take(&mut self.created_here);
            for o in &mut outcomes {
                if o.record_id.is_some_and(|id| gone.contains(&id)) {
                    o.record_id = None;
                }
            }
            self.db.begin().await?
        } else {
            txn
        };
        self.record(&txn, &outcomes).await?;
        txn.commit().await?;
        // A dry run's changes were rolled back: they signal nothing.
        for signal in std::mem::take(&mut self.signals) {
            if !self.options.dry_run {
                self.events.publish(signal).await;
            }
        }
        for o in outcomes {
            if self.problems.len() < PROBLEMS_SHOWN
                && matches!(o.outcome, ImportOutcome::Duplicate | ImportOutcome::Invalid | ImportOutcome::Failed)
            {
                self.problems.push(o);
            }
        }
        Ok(())
    }

    /// Writes the outcomes of a chunk and moves the run's counters.
    async fn record(&mut self, txn: &DatabaseTransaction, outcomes: &[Outcome]) -> AppResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let rows = outcomes.iter().map(|o| import_line::ActiveModel {
            id: Set(new_id()),
            run_id: Set(self.run.id),
            line: Set(o.line),
            outcome: Set(o.outcome),
            record_id: Set(o.record_id),
            message: Set(o.message.clone()),
            problems: Set((!o.problems.is_empty()).then(|| serde_json::to_value(&o.problems).unwrap_or(Json::Null))),
        });
        import_line::Entity::insert_many(rows).exec(txn).await?;
        let count = |k: ImportOutcome| outcomes.iter().filter(|o| o.outcome == k).count() as i64;
        use import_run::Column as R;
        let add = |c: R, n: i64| (c, Expr::col(c).add(n));
        let mut update = import_run::Entity::update_many().filter(R::Id.eq(self.run.id));
        for (c, e) in [
            add(R::LinesRead, outcomes.len() as i64),
            add(R::Created, count(ImportOutcome::Created)),
            add(R::Updated, count(ImportOutcome::Updated)),
            add(R::Unchanged, count(ImportOutcome::Unchanged)),
            add(R::Duplicate, count(ImportOutcome::Duplicate)),
            add(R::Invalid, count(ImportOutcome::Invalid)),
            add(R::Failed, count(ImportOutcome::Failed)),
        ] {
            update = update.col_expr(c, e);
        }
        update.col_expr(R::HeartbeatAt, Expr::value(now())).exec(txn).await?;
        self.last_beat = std::time::Instant::now();
        self.run.lines_read += outcomes.len() as i64;
        self.run.created += count(ImportOutcome::Created);
        self.run.updated += count(ImportOutcome::Updated);
        self.run.unchanged += count(ImportOutcome::Unchanged);
        self.run.duplicate += count(ImportOutcome::Duplicate);
        self.run.invalid += count(ImportOutcome::Invalid);
        self.run.failed += count(ImportOutcome::Failed);
        Ok(())
    }

    fn cells(&self, line: &Line) -> Cells {
        let mut fields = HashMap::new();
        let mut custom = Vec::new();
        for (target, cell) in self.mapping.targets.iter().zip(&line.cells) {
            let value = unguarded(cell.trim());
            if value.is_empty() {
                continue;
            }
            match target {
                Target::Field(f) => {
                    fields.insert(*f, value.to_string());
                }
                Target::Custom(k) => custom.push((k.clone(), value.to_string())),
                Target::Skip => {}
            }
        }
        Cells { fields, custom }
    }

    /// One line, in a savepoint of the chunk's transaction.
    async fn line(&mut self, txn: &DatabaseTransaction, catalogue: &Catalogue, line: Line) -> AppResult<Outcome> {
        let number = line.number;
        if let Some(why) = line.unreadable {
            return Ok(Outcome::invalid(number, vec![FieldError::new("line", why)]));
        }
        if line.cells.len() > self.mapping.targets.len() {
            return Ok(Outcome::invalid(
                number,
                vec![FieldError::new(
                    "line",
                    format!("{} cells for {} columns", line.cells.len(), self.mapping.targets.len()),
                )],
            ));
        }
        // PostgreSQL refuses a NUL in any text, a lookup too, and an error aborts the
        // chunk's transaction: such a line stops here.
        if line.cells.iter().any(|c| c.contains('\0')) {
            return Ok(Outcome::invalid(number, vec![FieldError::new("line", crate::kernel::NUL_MESSAGE)]));
        }
        let cells = self.cells(&line);
        match self.options.kind {
            ImportKind::Contacts => return self.contact_line(txn, number, &cells).await,
            ImportKind::Deals => return self.deal_line(txn, number, &cells).await,
            ImportKind::Customers => {}
        }
        let mut problems = Vec::new();
        let parsed = parse(&mut problems, &cells);
        let kind = parsed.kind.unwrap_or(self.options.default_kind);
        let keys = natural_keys(kind, &cells);
        // An id (an exported file coming back) matches its record; an id unknown here (a
        // file from elsewhere) leaves the natural keys to match.
        let id = cells.get(Field::Id).and_then(|id| Uuid::parse_str(id).ok());
        // One indexed lookup per key (each key has its own unique index over live rows; an
        // OR of the keys is a scan of the table per line).
        let live = || entity::customer::Entity::find().filter(C::DeletedAt.is_null());
        let mut matched = Vec::<entity::customer::Model>::new();
        if let Some(id) = id
            && let Some(m) = live().filter(C::Id.eq(id)).one(txn).await?
        {
            matched.push(m);
        }
        for (column, value) in &keys {
            if matched.iter().any(|m| key_value(m, *column) == Some(value.as_str())) {
                continue;
            }
            if let Some(m) = live().filter(column.eq(value.clone())).one(txn).await?
                && !matched.iter().any(|x| x.id == m.id)
            {
                matched.push(m);
            }
        }
        match matched.as_slice() {
            [] => {
                let remembered: Vec<String> = keys.iter().map(|(c, v)| format!("{c:?}:{v}")).collect();
                if let Some(repeat) = self.repeat_of(number, &remembered, "customer", parsed.kind, problems.clone()) {
                    return Ok(repeat);
                }
                let outcome = self.create(txn, catalogue, number, kind, parsed, &cells, problems).await?;
                if outcome.outcome == ImportOutcome::Created {
                    self.remember(number, remembered, Some(kind));
                }
                Ok(outcome)
            }
            [old] => self.update(txn, catalogue, number, old.clone(), parsed, &cells, problems).await,
            many => {
                let by: Vec<&str> = keys
                    .iter()
                    .filter(|(c, v)| many.iter().any(|m| key_value(m, *c) == Some(v.as_str())))
                    .map(|(c, _)| key_label(*c))
                    .chain(id.filter(|id| many.iter().any(|m| m.id == *id)).map(|_| "id"))
                    .collect();
                let message = format!("matches {} customers (by {}); merge them first", many.len(), by.join(", "));
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &mut self,
        txn: &DatabaseTransaction,
        catalogue: &Catalogue,
        number: i64,
        kind: CustomerKind,
        parsed: Parsed,
        cells: &Cells,
        mut problems: Vec<FieldError>,
    ) -> AppResult<Outcome> {
        let category =
            cells.get(Field::Category).map_or_else(|| customer::default_category(kind).to_string(), str::to_lowercase);
        let custom = custom_fields(&mut problems, catalogue, &category, cells, None);
        let input = NewCustomer {
            kind: Some(kind),
            category: Some(category),
            name: cells.text(Field::Name).unwrap_or_default(),
            gender: parsed.gender,
            birthday: parsed.birthday,
            phone: cells.text(Field::Phone),
            email: cells.text(Field::Email),
            address: cells.text(Field::Address),
            region: cells.text(Field::Region),
            industry: cells.text(Field::Industry),
            source: parsed.source,
            importance: parsed.importance,
            credit_rating: cells.text(Field::CreditRating),
            cooperation_start_date: parsed.cooperation_start_date,
            soft_profile: None,
            custom_fields: custom,
            lifecycle_stage: parsed.lifecycle_stage,
        };
        let model = match customer::prepare(txn, self.vault, self.actor, catalogue, input).await {
            Ok(m) => m,
            Err(AppError::Validation(mut fields)) => {
                problems.append(&mut fields);
                return Ok(Outcome::invalid(number, problems));
            }
            Err(e) => return Err(e),
        };
        if !problems.is_empty() {
            return Ok(Outcome::invalid(number, problems));
        }
        let sp = txn.begin().await?;
        match customer::insert_in(&sp, self.actor, Verb::Import, model.clone()).await {
            Ok((m, signal)) => {
                sp.commit().await?;
                self.created(m.id);
                self.signals.extend(signal);
                Ok(Outcome::new(number, ImportOutcome::Created, Some(m.id), None))
            }
            Err(e @ AppError::Duplicate { .. }) => {
                sp.rollback().await?;
                let e = customer::explain_duplicate(txn, self.actor, e, &model).await;
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(e.to_string())))
            }
            // The importer's holding cap (care policy): this line, not the run, fails.
            Err(e @ AppError::Conflict(_)) => {
                sp.rollback().await?;
                Ok(Outcome::new(number, ImportOutcome::Failed, None, Some(e.to_string())))
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn update(
        &mut self,
        txn: &DatabaseTransaction,
        catalogue: &Catalogue,
        number: i64,
        old: entity::customer::Model,
        parsed: Parsed,
        cells: &Cells,
        mut problems: Vec<FieldError>,
    ) -> AppResult<Outcome> {
        let old = match customer::load_for_action(txn, self.actor, old.id, Action::Update).await {
            Ok(m) => m,
            Err(AppError::NotFound(_) | AppError::Forbidden(_)) => {
                let message = self.untouchable(txn, &old).await?;
                return Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)));
            }
            Err(e) => return Err(e),
        };
        if let Some(k) = parsed.kind
            && k != old.kind
        {
            problems.push(FieldError::new("kind", format!("the customer this line matches is {}", old.kind)));
        }
        let category = cells.get(Field::Category).map(str::to_lowercase);
        let custom = custom_fields(
            &mut problems,
            catalogue,
            category.as_deref().unwrap_or(&old.category),
            cells,
            old.custom_fields.as_ref(),
        );
        let set = |v: Option<String>| v.map(Some);
        let patch = CustomerPatch {
            category: category.filter(|c| *c != old.category),
            name: cells.text(Field::Name),
            gender: parsed.gender.map(Some),
            birthday: parsed.birthday.map(Some),
            phone: set(cells.text(Field::Phone)),
            email: set(cells.text(Field::Email)),
            address: set(cells.text(Field::Address)),
            region: set(cells.text(Field::Region)),
            industry: set(cells.text(Field::Industry)),
            source: parsed.source.map(Some),
            importance: parsed.importance.map(Some),
            credit_rating: set(cells.text(Field::CreditRating)),
            cooperation_start_date: parsed.cooperation_start_date.map(Some),
            soft_profile: None,
            custom_fields: custom.map(Some),
            // The stage moves with deals once past PROSPECT; a file restating it is no change.
            lifecycle_stage: parsed.lifecycle_stage.filter(|s| *s != old.lifecycle_stage),
        };
        let am = match customer::patched(txn, catalogue, self.vault, self.actor, &old, patch).await {
            Ok(am) => am,
            Err(AppError::Validation(mut fields)) => {
                problems.append(&mut fields);
                return Ok(Outcome::invalid(number, problems));
            }
            Err(e) => return Err(e),
        };
        if !problems.is_empty() {
            return Ok(Outcome::invalid(number, problems));
        }
        if am.clone().try_into_model().is_ok_and(|new| new == old) {
            return Ok(Outcome::new(number, ImportOutcome::Unchanged, Some(old.id), None));
        }
        let sp = txn.begin().await?;
        match crate::kernel::store::save::<entity::customer::Entity>(
            &sp,
            Some(self.actor.id()),
            Verb::Import,
            &old,
            am.clone(),
        )
        .await
        {
            Ok(m) => {
                sp.commit().await?;
                Ok(Outcome::new(number, ImportOutcome::Updated, Some(m.id), None))
            }
            Err(e @ AppError::Duplicate { .. }) => {
                sp.rollback().await?;
                let e = customer::explain_duplicate(txn, self.actor, e, &am).await;
                Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(e.to_string())))
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }

    /// Why a matched record is not touched (`customer::held_by`).
    async fn untouchable(&mut self, txn: &DatabaseTransaction, m: &entity::customer::Model) -> AppResult<String> {
        Ok(customer::held_by(txn, self.actor, m).await?.1)
    }

    /// Dry run: the outcome of a line that repeats a key an earlier chunk (rolled back)
    /// would have created (`kind`: the line's, checked against a customer's): the update
    /// it will be, or INVALID with the line's problems. None on a real run or a new key.
    fn repeat_of(
        &self,
        number: i64,
        keys: &[String],
        what: &str,
        kind: Option<CustomerKind>,
        mut problems: Vec<FieldError>,
    ) -> Option<Outcome> {
        if !self.options.dry_run {
            return None;
        }
        let &(first, first_kind) = keys.iter().find_map(|k| self.would_create.get(k))?;
        if let (Some(k), Some(f)) = (kind, first_kind)
            && k != f
        {
            problems.push(FieldError::new("kind", format!("the customer this line matches is {f}")));
        }
        if !problems.is_empty() {
            return Some(Outcome::invalid(number, problems));
        }
        // Whether it would change anything is not known without the record.
        let message = format!("updates the {what} line {first} creates (a dry run does not compare)");
        Some(Outcome::new(number, ImportOutcome::Updated, None, Some(message)))
    }

    /// Dry run: remembers the keys of a record line `number` created (see [`repeat_of`]).
    fn remember(&mut self, number: i64, keys: impl IntoIterator<Item = String>, kind: Option<CustomerKind>) {
        if self.options.dry_run {
            for k in keys {
                self.would_create.entry(k).or_insert((number, kind));
            }
        }
    }

    /// Dry run: a record created in this chunk, rolled back with it (its id is not shown).
    fn created(&mut self, id: Uuid) {
        if self.options.dry_run {
            self.created_here.insert(id);
        }
    }

    /// Moves the run's heartbeat while a slow upload feeds it (at most once a minute), so
    /// a live run never reads as cut off.
    ///
    /// # Errors
    /// Database errors.
    pub async fn beat(&mut self) -> AppResult<()> {
        if self.last_beat.elapsed() < std::time::Duration::from_secs(60) {
            return Ok(());
        }
        import_run::Entity::update_many()
            .col_expr(import_run::Column::HeartbeatAt, Expr::value(now()))
            .filter(import_run::Column::Id.eq(self.run.id))
            .exec(self.db)
            .await?;
        self.last_beat = std::time::Instant::now();
        Ok(())
    }

    /// Marks the run done.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish(mut self) -> AppResult<(import_run::Model, Vec<Outcome>)> {
        self.run = self.end(ImportStatus::Done, None).await?;
        Ok((self.run, self.problems))
    }

    /// Marks the run failed with why.
    pub async fn fail(mut self, why: String) -> (import_run::Model, Vec<Outcome>) {
        match self.end(ImportStatus::Failed, Some(why.clone())).await {
            Ok(run) => self.run = run,
            Err(e) => {
                tracing::error!(error = %e, run = %self.run.id, "cannot mark an import failed");
                self.run.status = ImportStatus::Failed;
                self.run.error = Some(why);
            }
        }
        (self.run, self.problems)
    }

    async fn end(&self, status: ImportStatus, error: Option<String>) -> AppResult<import_run::Model> {
        let mut am: import_run::ActiveModel = self.run.clone().into();
        let at = now();
        am.status = Set(status);
        am.error = Set(error);
        am.finished_at = Set(Some(at));
        am.heartbeat_at = Set(at);
        // Only the columns set here are written; the counters stay as the chunks left them.
        Ok(am.update(self.db).await?)
    }
}

fn key_value(m: &entity::customer::Model, c: C) -> Option<&str> {
    match c {
        C::PhoneNorm => m.phone_norm.as_deref(),
        C::EmailNorm => m.email_norm.as_deref(),
        _ => m.name_norm.as_deref(),
    }
}

/// A run as its reader sees it: a RUNNING run whose heartbeat is old was cut off.
pub fn effective(mut run: import_run::Model) -> import_run::Model {
    if run.status == ImportStatus::Running && now() - run.heartbeat_at > STALE_AFTER {
        run.status = ImportStatus::Failed;
        run.error = Some("cut off: the server stopped during the import; run it again".into());
    }
    run
}

fn visible(actor: &Actor) -> Condition {
    if actor.role() == Role::Admin {
        Condition::all()
    } else {
        Condition::all().add(import_run::Column::StartedBy.eq(actor.id()))
    }
}

/// One run you started (administrators: any).
///
/// # Errors
/// NOT_FOUND.
pub async fn get(db: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<import_run::Model> {
    import_run::Entity::find_by_id(id)
        .filter(visible(actor))
        .one(db)
        .await?
        .map(effective)
        .ok_or(AppError::NotFound("import run"))
}

/// The runs you started (administrators: all), newest first.
///
/// # Errors
/// BAD_REQUEST (cursor), database errors.
pub async fn list(db: &DatabaseConnection, actor: &Actor, page: &PageArgs) -> AppResult<Page<import_run::Model>> {
    use import_run::Column as R;
    let keys = [SortKey::new("startedAt", R::StartedAt, true, |m: &import_run::Model| SortValue::Time(m.started_at))];
    let page = paginate(db, import_run::Entity::find().filter(visible(actor)), &keys, R::Id, |m| m.id, page).await?;
    Ok(page.map(effective))
}

/// The lines of a run in file order, optionally only some outcomes.
///
/// # Errors
/// BAD_REQUEST (cursor), database errors.
pub async fn lines(
    db: &DatabaseConnection,
    run: Uuid,
    outcomes: &[ImportOutcome],
    page: &PageArgs,
) -> AppResult<Page<import_line::Model>> {
    use import_line::Column as L;
    let mut select = import_line::Entity::find().filter(L::RunId.eq(run));
    if !outcomes.is_empty() {
        select = select.filter(L::Outcome.is_in(outcomes.iter().copied()));
    }
    let keys = [SortKey::new("line", L::Line, false, |m: &import_line::Model| SortValue::Int(m.line))];
    paginate(db, select, &keys, L::Id, |m| m.id, page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_imported_field_of_the_catalogues_has_a_target() {
        for kind in [ImportKind::Customers, ImportKind::Contacts, ImportKind::Deals] {
            let mut read: Vec<&str> = catalogue_of(kind).import_fields().map(|(n, _)| n).collect();
            let mut targets: Vec<&str> = fields_of(kind).iter().map(|(_, n)| *n).collect();
            read.sort_unstable();
            targets.sort_unstable();
            assert_eq!(read, targets, "{kind:?}");
        }
        assert_eq!(field_named(ImportKind::Customers, "手机号码"), Some(Field::Phone));
        assert_eq!(field_named(ImportKind::Contacts, "电话"), Some(Field::OfficePhone));
        assert_eq!(field_named(ImportKind::Deals, "Expected_Close-Date"), Some(Field::ExpectedCloseDate));
    }
}
