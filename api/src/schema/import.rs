//! Import runs (`POST /imports/customers`, `docs/import-export.md`): progress and the
//! outcome of every line.
use super::common::{actor, connection, db, page_args, parse_id};
use super::error::ResultExt;
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{import_line, import_run};
use service::transfer::import as svc;

/// What an import loads.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ImportKind")]
pub enum ImportKind {
    Customers,
    /// Contacts of organisation customers, linked by the customer's id or natural key.
    Contacts,
    /// Deals, linked the same way.
    Deals,
}

/// Where an import stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ImportStatus")]
pub enum ImportStatus {
    /// Lines are being read; the counters move with each chunk of 500.
    Running,
    Done,
    /// Stopped early (`error` says why); what was committed stays, and running the file
    /// again picks up the rest.
    Failed,
    /// The instance that ran it stopped (its heartbeat is over a minute old): what was
    /// committed stays, and running the file again picks up the rest.
    Interrupted,
}

/// What became of one line.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::ImportOutcome")]
pub enum ImportOutcome {
    /// A new customer (on a dry run: would be created).
    Created,
    /// The customer the line matches on phone, e-mail or organisation name, updated with
    /// the line's non-blank cells.
    Updated,
    /// The matched customer already holds what the line says.
    Unchanged,
    /// Matches a customer you may not change (its department is named), or several.
    Duplicate,
    /// Bad cells: `problems` lists every one; nothing was written.
    Invalid,
    /// Refused for another reason (`message`).
    Failed,
    /// Matches a customer you may read but not change (your department's pool, as a rep's
    /// own export holds it): left as it is; claim it to change it.
    Skipped,
}

/// A bad cell of a line.
#[derive(SimpleObject)]
pub struct ImportProblem {
    /// The customer field (`customFields.<key>` for a custom field; `line` for the line).
    pub field: String,
    pub message: String,
}

/// The outcome of one line.
pub struct ImportLine(import_line::Model);

#[Object]
impl ImportLine {
    /// Where the line starts in the file, the header being line 1.
    async fn line(&self) -> i64 {
        self.0.line
    }
    async fn outcome(&self) -> ImportOutcome {
        self.0.outcome.into()
    }
    /// The record created or updated, of the run's kind (a customer, contact or deal),
    /// as the HTTP answer's `recordId`; unset on a dry run's creations.
    async fn record_id(&self) -> Option<ID> {
        self.0.record_id.map(|id| ID(id.to_string()))
    }
    /// The same as `recordId`, named before contacts and deals were imported too.
    #[graphql(deprecation = "use recordId: the record is of the run's kind, not always a customer")]
    async fn customer_id(&self) -> Option<ID> {
        self.0.record_id.map(|id| ID(id.to_string()))
    }
    /// Why the line was not written as it is: for INVALID a summary of `problems`, for
    /// DUPLICATE and FAILED the reason.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    async fn problems(&self) -> Vec<ImportProblem> {
        let Some(list) = self.0.problems.as_ref().and_then(|p| p.as_array()) else { return Vec::new() };
        list.iter()
            .map(|p| ImportProblem {
                field: p["field"].as_str().unwrap_or_default().to_string(),
                message: p["message"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

connection!(ImportLineConnection, ImportLineEdge, ImportLine, "import lines");

/// One import of a CSV file.
pub struct ImportRun(import_run::Model);

#[Object]
impl ImportRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> ImportKind {
        self.0.kind.into()
    }
    /// Nothing was written: the outcomes say what a real run would do.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    async fn status(&self) -> ImportStatus {
        self.0.status.into()
    }
    async fn file_name(&self) -> Option<&str> {
        self.0.file_name.as_deref()
    }
    /// The character set the file was read in.
    async fn encoding(&self) -> &str {
        &self.0.encoding
    }
    async fn started_by(&self, ctx: &Context<'_>) -> Result<Option<super::user::User>> {
        super::loaders::user(ctx, self.0.started_by).await
    }
    /// Lines read so far (the header not counted).
    async fn lines_read(&self) -> i64 {
        self.0.lines_read
    }
    async fn created(&self) -> i64 {
        self.0.created
    }
    async fn updated(&self) -> i64 {
        self.0.updated
    }
    async fn unchanged(&self) -> i64 {
        self.0.unchanged
    }
    async fn duplicate(&self) -> i64 {
        self.0.duplicate
    }
    /// Lines matching a customer you may read but not change (your department's pool).
    async fn skipped(&self) -> i64 {
        self.0.skipped
    }
    async fn invalid(&self) -> i64 {
        self.0.invalid
    }
    async fn failed(&self) -> i64 {
        self.0.failed
    }
    /// Why the run stopped early.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// The lines in file order; `outcomes` keeps only those (e.g. [DUPLICATE, INVALID]);
    /// null or empty: all.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn lines(
        &self,
        ctx: &Context<'_>,
        outcomes: Option<Vec<ImportOutcome>>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<ImportLineConnection> {
        let outcomes: Vec<_> = outcomes.unwrap_or_default().into_iter().map(Into::into).collect();
        let page = svc::lines(db(ctx), self.0.id, &outcomes, &page_args(first, after)).await.gql()?;
        Ok(ImportLineConnection(page.map(ImportLine)))
    }
}

connection!(ImportRunConnection, ImportRunEdge, ImportRun, "import runs");

#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    /// An import you started (administrators: any), to poll while it runs.
    async fn import_run(&self, ctx: &Context<'_>, id: ID) -> Result<ImportRun> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::get(db(ctx), actor, id).await.map(ImportRun).gql()
    }

    /// The imports you started (administrators: all), newest first.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn import_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<ImportRunConnection> {
        let actor = actor(ctx)?;
        let page = svc::list(db(ctx), actor, &page_args(first, after)).await.gql()?;
        Ok(ImportRunConnection(page.map(ImportRun)))
    }
}
