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
    Resource,
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
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// How often a running import's heartbeat moves (well inside [`STALE_AFTER`]).
pub const BEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// Lines with a problem returned in the response of the upload (all are kept in the run).
pub const PROBLEMS_SHOWN: usize = 100;

mod cells;
mod contacts;
mod deals;
pub mod decode;
mod mapping;
mod parent;
mod run;

use cells::*;
pub use mapping::*;

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

    /// A line with bad cells: `problems` lists each, `message` sums them up, so that a
    /// reader of `message` alone (a log, a spreadsheet of outcomes) sees why.
    fn invalid(line: i64, problems: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        let message = match fields.len() {
            1 => format!("a bad cell: {}", fields[0]),
            n => format!("{n} bad cells: {}", fields.join(", ")),
        };
        Self { line, outcome: ImportOutcome::Invalid, record_id: None, message: Some(message), problems }
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
        skipped: Set(0),
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
        created_here: std::collections::HashSet::new(),
        signals: Vec::new(),
        regrade: std::collections::BTreeMap::new(),
        problems: Vec::new(),
    })
}

/// A run as its reader sees it: a RUNNING run whose heartbeat is old was cut off.
pub fn effective(mut run: import_run::Model) -> import_run::Model {
    if run.status == ImportStatus::Running && now() - run.heartbeat_at > STALE_AFTER {
        run.status = ImportStatus::Interrupted;
        run.error = Some("cut off: the server stopped during the import; run it again".into());
    }
    run
}

/// Moves a running import's heartbeat (a task of the instance running it calls it every
/// [`BEAT_EVERY`], whatever the upload is doing, so a live run never reads as cut off and
/// a run whose instance died reads INTERRUPTED within a minute).
///
/// # Errors
/// Database errors.
pub async fn heartbeat(db: &DatabaseConnection, run: Uuid) -> AppResult<()> {
    import_run::Entity::update_many()
        .col_expr(import_run::Column::HeartbeatAt, sea_orm::sea_query::Expr::value(now()))
        .filter(import_run::Column::Id.eq(run))
        .filter(import_run::Column::Status.eq(ImportStatus::Running))
        .exec(db)
        .await?;
    Ok(())
}

/// The runs an actor may read: its own, and every run of a kind whose records it reads
/// everywhere (a run lists its lines' records and duplicates). Decided by grants, as every
/// read is, not by the role's name: an admin-role account whose customer reads were
/// narrowed to a department sees its own customer runs only.
fn visible(actor: &Actor) -> Condition {
    let mut any = Condition::any().add(import_run::Column::StartedBy.eq(actor.id()));
    for kind in [ImportKind::Customers, ImportKind::Contacts, ImportKind::Deals] {
        if actor.reach(resource_of(kind), Action::Read).everything {
            any = any.add(import_run::Column::Kind.eq(kind));
        }
    }
    any
}

/// One run you may read ([`visible`]: yours, or any of a kind whose records you read everywhere).
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

/// Removes import runs (and the outcome of each of their lines) finished more than
/// `days` days before `at` (or interrupted, its last heartbeat that old): a run keeps
/// every line's outcome, 8 MB for 50,000 lines. One run at a time, each in a write of its
/// own (on SQLite a turn among the writers): a first pass over a large backlog never
/// holds the write lock for long.
///
/// # Errors
/// Database errors.
pub async fn prune(db: &sea_orm::DatabaseConnection, at: chrono::DateTime<chrono::Utc>, days: i64) -> AppResult<u64> {
    use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect};
    let before = at - chrono::Duration::days(days);
    let gone = Condition::any().add(import_run::Column::FinishedAt.lt(before)).add(
        Condition::all().add(import_run::Column::FinishedAt.is_null()).add(import_run::Column::HeartbeatAt.lt(before)),
    );
    let old: Vec<Uuid> = import_run::Entity::find()
        .select_only()
        .column(import_run::Column::Id)
        .filter(gone)
        .into_tuple()
        .all(db)
        .await?;
    let mut removed = 0;
    for run in old {
        removed += crate::kernel::store::write(db, async |txn| {
            let lines = import_line::Entity::delete_many().filter(import_line::Column::RunId.eq(run)).exec(txn).await?;
            let runs = import_run::Entity::delete_by_id(run).exec(txn).await?;
            Ok(lines.rows_affected + runs.rows_affected)
        })
        .await?;
    }
    Ok(removed)
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
