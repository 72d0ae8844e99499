//! Database connection: SQLite (embedded default, WAL, busy timeout) or PostgreSQL.
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts the SQL statements a connection runs (tests use it to prove batching).
pub type StatementCounter = Arc<AtomicU64>;

/// Pooled connections an instance opens by default (`CRM_DB_POOL_SIZE`), on either store:
/// enough that one user's requests in flight (`CRM_MAX_REQUESTS_PER_USER`, 16) and the
/// heavy reads' share (`access::heavy`) leave connections for everyone else.
pub const DEFAULT_POOL_SIZE: u32 = 20;

/// Connects, creating a SQLite file if needed.
///
/// # Errors
/// The connection error.
pub async fn connect(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    connect_counted(url, Arc::default(), DEFAULT_POOL_SIZE).await
}

/// Connects with a pool of `pool_size` connections and counts every statement into `counter`.
///
/// # Errors
/// The connection error.
pub async fn connect_counted(
    url: &str,
    counter: StatementCounter,
    pool_size: u32,
) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains("mode=") {
        format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
    } else {
        url.to_string()
    };
    let mut opts = ConnectOptions::new(url);
    opts.sqlx_logging(false).acquire_timeout(Duration::from_secs(10));
    if sqlite {
        opts.max_connections(pool_size.max(2)).min_connections(1);
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true)
                // 64 MiB of page cache a connection instead of SQLite's 2 MiB: the grade
                // indexes of a large base stay in memory while a full pass rewrites them.
                .pragma("cache_size", "-65536")
                .pragma("temp_store", "MEMORY")
                // The WAL is checkpointed by a background task ([`spawn_checkpointer`]); a
                // committing connection only checkpoints itself past 512 MiB, a backstop
                // for when that task falls behind.
                .pragma("wal_autocheckpoint", "131072")
                // Reads through a shared memory map (address space, not memory per
                // connection): the OS page cache serves every connection without copies.
                .pragma("mmap_size", "1073741824")
        });
    } else {
        opts.max_connections(pool_size.max(2)).min_connections(1);
    }
    let mut db = Database::connect(opts).await?;
    db.set_metric_callback(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    db.execute_unprepared("SELECT 1").await?;
    Ok(db)
}

/// SQLite: copies the write-ahead log into the database file every `every`, from a
/// connection of its own (uncounted), so that no API write and no batch of a full pass
/// pays for a checkpoint inline; a PASSIVE checkpoint never blocks readers or writers.
/// Several pages a pass rewrites batch after batch (the grade indexes) are then copied once
/// per interval rather than once per commit. PostgreSQL: nothing to do.
///
/// # Errors
/// The connection error.
pub async fn spawn_checkpointer(url: &str, every: Duration) -> Result<(), sea_orm::DbErr> {
    if !url.starts_with("sqlite:") {
        return Ok(());
    }
    let db = connect(url).await?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // BUSY when another connection is checkpointing: the next tick tries again.
            if let Err(e) = db.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
                tracing::debug!(error = %e, "WAL checkpoint skipped");
            }
        }
    });
    Ok(())
}

/// SQLite's writers take turns in the order they came (one database file, one writer at a
/// time). Left to SQLite's busy handler, a waiting writer sleeps and polls, and a writer
/// that commits and begins again at once (an import's chunks) wins nearly every time: a
/// rep's save waited 9-15 s behind an import, and some gave up at the busy timeout. Every
/// write transaction of an instance ([`crate::kernel::store::write`], an import's chunk)
/// first waits here, in a fair queue; PostgreSQL locks rows, not the database, and has no
/// turn to take.
pub mod turns {
    use crate::error::{AppError, AppResult};
    use sea_orm::{DatabaseBackend, DatabaseConnection};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;
    use tokio::sync::OwnedMutexGuard;

    /// The longest wait for a turn: SQLite's own busy timeout, after which a write would
    /// have failed anyway (and a use case that waited for itself cannot hang).
    pub const WAIT: Duration = Duration::from_secs(15);

    /// One writer's turn; the next in line goes when it is dropped.
    pub type Turn = OwnedMutexGuard<()>;

    fn queue(file: &str) -> Arc<tokio::sync::Mutex<()>> {
        static QUEUES: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
        let mut queues = QUEUES.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
        queues.entry(file.to_string()).or_default().clone()
    }

    /// Waits for the turn to write on `db` (None on PostgreSQL).
    ///
    /// # Errors
    /// RATE_LIMITED when no turn came within [`WAIT`].
    pub async fn take(db: &DatabaseConnection) -> AppResult<Option<Turn>> {
        if db.get_database_backend() != DatabaseBackend::Sqlite {
            return Ok(None);
        }
        let file = db.get_sqlite_connection_pool().connect_options().get_filename().to_string_lossy().into_owned();
        match tokio::time::timeout(WAIT, queue(&file).lock_owned()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => {
                tracing::warn!(file, "no turn to write within the busy timeout");
                // Not a collision: running it again would queue behind the same writers.
                Err(AppError::RateLimited {
                    retry_after: 2,
                    message: "the database is busy with other writes; try again in a moment".into(),
                })
            }
        }
    }
}
