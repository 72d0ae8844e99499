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
