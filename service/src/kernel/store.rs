//! The one write path: [`write`] runs a use case in one transaction, and [`save`] writes a
//! changed row guarded by the version its writer read (`UPDATE ... WHERE <key> AND
//! version = ?`), with its audit row in the same transaction. Two writers that read the
//! same version cannot both apply: the second UPDATE matches no row and answers CONFLICT,
//! on SQLite and PostgreSQL alike, whatever the isolation level.
//!
//! A use case's changes are noted as they are recorded (`kernel::change`), and before its
//! transaction commits, [`write`] hands them to the [`FINISHERS`]: consequences an engine
//! runs once per use case, after all its writes (the regrade of a customer whose deals
//! changed, after the line items are replaced; after a merge moved the records). The
//! engines register them where they live (`#[distributed_slice(FINISHERS)]`), so the
//! kernel runs them without importing any engine.
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Change, Subject, Verb, journal};
use crate::kernel::db::turns;
use crate::kernel::now;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, IntoActiveModel,
    QueryFilter, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

tokio::task_local! {
    /// Whether a use case committed during the current request ([`noting_commits`]).
    static COMMITTED: std::cell::Cell<bool>;
}

/// Runs `f` (a request's execution) and tells whether any use case committed during it:
/// a request that collided may be run again only when nothing of it was written (a login
/// that counted a failure in one transaction and collided in the next must not count it
/// twice).
pub async fn noting_commits<F: Future>(f: F) -> (F::Output, bool) {
    COMMITTED
        .scope(std::cell::Cell::new(false), async {
            let out = f.await;
            (out, COMMITTED.with(std::cell::Cell::get))
        })
        .await
}

/// Whether a use case committed so far inside [`noting_commits`] (false outside it).
pub fn committed_so_far() -> bool {
    COMMITTED.try_with(std::cell::Cell::get).unwrap_or(false)
}

/// What a finisher returns.
pub type Finishing<'a> = Pin<Box<dyn Future<Output = AppResult<()>> + Send + 'a>>;

/// A consequence an engine runs once at the end of every use case, in its transaction,
/// over the changes the use case recorded.
pub struct Finisher {
    /// For logs and errors.
    pub name: &'static str,
    pub run: for<'a> fn(&'a DatabaseTransaction, &'a [Change]) -> Finishing<'a>,
}

/// The finishers of every engine, collected at link time.
#[linkme::distributed_slice]
pub static FINISHERS: [Finisher];

/// Runs `f`, a unit of writes inside a transaction its caller began, whose owner runs the
/// consequences itself: no finisher runs; the changes are kept for the owner to take
/// ([`deferred_changes`]) (an import chunk regrades its customers once, in id order, and
/// rebuilds their search keys, at the chunk's end).
pub fn deferring<F: Future>(f: F) -> impl Future<Output = F::Output> {
    journal::scoped(true, f)
}

/// The changes noted so far inside [`deferring`] (taken: asked again, only later ones).
pub fn deferred_changes() -> Vec<Change> {
    journal::take_kept()
}

/// What [`write`] runs on: the connection (a use case of its own, finished before it
/// commits) or a transaction (a savepoint inside its caller's use case, which finishes).
pub trait Connection: TransactionTrait<Transaction = DatabaseTransaction> {
    /// Whether this is a transaction already.
    const IN_TRANSACTION: bool;

    /// Waits for the turn to write (SQLite's writers queue: `kernel::db::turns`); a
    /// transaction has its turn already.
    fn turn(&self) -> impl Future<Output = AppResult<Option<turns::Turn>>> + Send;
}

impl Connection for DatabaseConnection {
    const IN_TRANSACTION: bool = false;

    async fn turn(&self) -> AppResult<Option<turns::Turn>> {
        turns::take(self).await
    }
}

impl Connection for DatabaseTransaction {
    const IN_TRANSACTION: bool = true;

    async fn turn(&self) -> AppResult<Option<turns::Turn>> {
        Ok(None)
    }
}

/// Runs `f` in a write transaction, committing when it returns `Ok` (after the
/// [`FINISHERS`] ran over its changes) and rolling back otherwise. Given a transaction, it
/// is a savepoint, as an import runs its lines: the transaction's owner (a [`write`] or
/// [`deferring`]) finishes, and the changes of a savepoint rolled back are forgotten. On
/// SQLite the write lock is taken at BEGIN (IMMEDIATE), so a read-then-write use case
/// never fails upgrading its lock under concurrency.
///
/// # Errors
/// Whatever `f` or a finisher returns; database errors of BEGIN/COMMIT.
pub async fn write<T, F, C>(db: &C, f: F) -> AppResult<T>
where
    C: Connection,
    F: AsyncFnOnce(&DatabaseTransaction) -> AppResult<T>,
{
    let _turn = db.turn().await?;
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    if C::IN_TRANSACTION {
        debug_assert!(
            journal::open(),
            "a write inside a transaction no use case owns would run no finishers: begin it with write or deferring"
        );
        // Part of a larger use case: its changes stay for that one's end, unless undone.
        let mark = journal::noted();
        let done = match f(&txn).await {
            Ok(v) => txn.commit().await.map(|()| v).map_err(AppError::from),
            Err(e) => txn.rollback().await.map_err(AppError::from).and(Err(e)),
        };
        if done.is_err() {
            journal::forget_after(mark);
        }
        return done;
    }
    // Boxed: the use case's state lives on the heap, not in the future of every caller up
    // the stack (deeply nested resolvers overflowed a test thread's stack without it).
    journal::scoped(
        true,
        Box::pin(async {
            let done = match f(&txn).await {
                Ok(v) => finish(&txn).await.map(|()| v),
                Err(e) => Err(e),
            };
            match done {
                Ok(v) => {
                    txn.commit().await?;
                    let _ = COMMITTED.try_with(|c| c.set(true));
                    Ok(v)
                }
                Err(e) => {
                    txn.rollback().await?;
                    Err(e)
                }
            }
        }),
    )
    .await
}

/// Hands the use case's changes to every finisher (the changes the finishers record are
/// not handed on: a regrade does not regrade).
async fn finish(txn: &DatabaseTransaction) -> AppResult<()> {
    let changes = journal::take();
    if changes.is_empty() {
        return Ok(());
    }
    for finisher in FINISHERS {
        (finisher.run)(txn, &changes).await.inspect_err(|e| {
            tracing::debug!(finisher = finisher.name, error = %e, "finisher refused the write");
        })?;
    }
    Ok(())
}

/// A table whose rows carry an optimistic-concurrency `version`.
pub trait Versioned:
    EntityTrait<
        Model: Serialize + Clone + Send + Sync + IntoActiveModel<Self::ActiveModel>,
        ActiveModel: ActiveModelTrait<Entity = Self> + Send,
    >
{
    /// What its changes are about (the audit log's entity).
    const SUBJECT: Subject;
    /// Name in error messages.
    const NAME: &'static str = Self::SUBJECT.as_str();

    fn version_column() -> Self::Column;
    fn version(m: &Self::Model) -> i32;
    /// The row's primary key as a condition.
    fn key(m: &Self::Model) -> Condition;
    /// The id recorded in the audit log (nil for single-row settings and keyed templates).
    fn audit_id(m: &Self::Model) -> Uuid;
    /// Sets the new version and the change time on a changed row.
    fn touch(am: &mut Self::ActiveModel, version: i32, at: DateTime<Utc>);
}

/// CONFLICT unless `sent` (when given) is the row's current version: a client's early
/// answer, before any write. [`save`] guards the write itself.
///
/// # Errors
/// CONFLICT.
pub fn check_version<E: Versioned>(row: &E::Model, sent: Option<i32>) -> AppResult<()> {
    match sent {
        Some(v) if v != E::version(row) => Err(AppError::Conflict(format!(
            "{} was changed meanwhile (version {} is current, you sent {v})",
            E::NAME,
            E::version(row)
        ))),
        _ => Ok(()),
    }
}

/// Writes `am` over `old` if nobody changed the row since `old` was read, bumps the
/// version, and appends the audit row; returns the row as stored.
///
/// # Errors
/// CONFLICT when the row's version moved on (another writer won); database errors
/// (DUPLICATE for a unique key).
pub async fn save<E: Versioned>(
    txn: &DatabaseTransaction,
    actor_id: Option<Uuid>,
    verb: Verb,
    old: &E::Model,
    mut am: E::ActiveModel,
) -> AppResult<E::Model> {
    E::touch(&mut am, E::version(old) + 1, now());
    let res =
        E::update_many().set(am).filter(E::key(old)).filter(E::version_column().eq(E::version(old))).exec(txn).await?;
    if res.rows_affected != 1 {
        return Err(AppError::Conflict(format!("{} was changed meanwhile; reload it", E::NAME)));
    }
    let new = E::find().filter(E::key(old)).one(txn).await?.ok_or(AppError::NotFound(E::NAME))?;
    change::record(txn, actor_id, verb, E::SUBJECT, E::audit_id(old), Some(old), Some(&new)).await?;
    Ok(new)
}

/// A setting kept as one row of JSON that admins replace whole (the care and the
/// classification policy).
pub trait PolicyRow: Versioned {
    /// The row, by its key.
    fn row() -> Condition;
    /// Sets the policy and who set it.
    fn set(am: &mut Self::ActiveModel, policy: serde_json::Value, by: Uuid);
}

/// Replaces a policy row if `version` is still current, with its audit row.
///
/// # Errors
/// CONFLICT (stale version), INTERNAL when the row is missing.
pub async fn replace_policy<E: PolicyRow>(
    db: &DatabaseConnection,
    actor_id: Uuid,
    policy: serde_json::Value,
    version: i32,
) -> AppResult<E::Model> {
    write(db, async |txn| {
        let old = E::find()
            .filter(E::row())
            .one(txn)
            .await?
            .ok_or_else(|| AppError::Internal(format!("{} row is missing", E::NAME).into()))?;
        check_version::<E>(&old, Some(version))?;
        let mut am = old.clone().into_active_model();
        E::set(&mut am, policy, actor_id);
        save::<E>(txn, Some(actor_id), Verb::Update, &old, am).await
    })
    .await
}

macro_rules! policy_row {
    ($module:ident) => {
        impl PolicyRow for entity::$module::Entity {
            fn row() -> Condition {
                Condition::all().add(entity::$module::Column::Id.eq(1))
            }
            fn set(am: &mut Self::ActiveModel, policy: serde_json::Value, by: Uuid) {
                am.policy = sea_orm::Set(policy);
                am.updated_by = sea_orm::Set(Some(by));
            }
        }
    };
}

policy_row!(care_policy);
policy_row!(classification_policy);

/// Implements [`Versioned`] for an entity with `version` and `updated_at` columns:
/// `versioned!(module, Subject, KeyColumn => key_field, audit id of a row)`.
macro_rules! versioned {
    ($module:ident, $subject:ident, $key:ident => $field:ident, $audit_id:expr) => {
        impl Versioned for entity::$module::Entity {
            const SUBJECT: Subject = Subject::$subject;
            fn version_column() -> Self::Column {
                entity::$module::Column::Version
            }
            fn version(m: &Self::Model) -> i32 {
                m.version
            }
            fn key(m: &Self::Model) -> Condition {
                Condition::all().add(entity::$module::Column::$key.eq(m.$field.clone()))
            }
            fn audit_id(m: &Self::Model) -> Uuid {
                let id: fn(&Self::Model) -> Uuid = $audit_id;
                id(m)
            }
            fn touch(am: &mut Self::ActiveModel, version: i32, at: DateTime<Utc>) {
                am.version = sea_orm::Set(version);
                am.updated_at = sea_orm::Set(at);
            }
        }
    };
}

versioned!(customer, Customer, Id => id, |m| m.id);
versioned!(contact, Contact, Id => id, |m| m.id);
versioned!(deal, Deal, Id => id, |m| m.id);
versioned!(feedback, Feedback, Id => id, |m| m.id);
versioned!(interaction, Interaction, Id => id, |m| m.id);
versioned!(user, User, Id => id, |m| m.id);
versioned!(reminder, Reminder, Id => id, |m| m.id);
// Settings kept as one row, and templates keyed by name: audited under the nil id.
versioned!(care_policy, CarePolicy, Id => id, |_| Uuid::nil());
versioned!(classification_policy, ClassificationPolicy, Id => id, |_| Uuid::nil());
versioned!(message_template, MessageTemplate, Key => key, |_| Uuid::nil());
versioned!(category, Category, Key => key, |_| Uuid::nil());
versioned!(duplicate_report, DuplicateReport, Id => id, |m| m.id);
versioned!(webhook, Webhook, Id => id, |m| m.id);
