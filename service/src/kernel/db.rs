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
    // A pooled connection is pinged only after a minute idle (one a server, proxy or
    // firewall may have dropped), not on every checkout: the ping was a second round trip
    // for every statement (a twelfth of the server's time on a by-id lookup, BENCHMARKS.md).
    opts.sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(Duration::from_secs(60));
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

/// A pool for heavy reads (reports, key lists, exports: `access::heavy`) whose work runs at
/// a lower OS priority than everything else: one report keeps a core busy while it scans,
/// and at the same priority a rep's list shared the other core with it (its p99 went 5x).
/// In the scheduler's idle class (nice 10 where that is refused) anything else runs first,
/// and the report takes what is idle.
///
/// - SQLite: the pool's connections run in worker threads of their own (`crm-heavy-N`);
///   each lowers its own priority the first time SQLite's progress handler calls back
///   during a statement, and the same callback pauses the scan while interactive requests
///   are in flight (`kernel::interactive`: the OS priority alone left a rep's p99 at 2-4x).
/// - PostgreSQL: no parallel workers for a heavy read (`max_parallel_workers_per_gather =
///   0`), so one report keeps at most one core busy; on this host (`localhost`,
///   `127.0.0.1`, `::1` or a socket) each connection's backend process is also lowered to
///   nice 10 (not the idle class: a backend holding a lock must not starve) when this
///   process may (the same user, or `CAP_SYS_NICE`); otherwise it runs as it is, logged once. A remote server's backends
///   are never touched (a process id means nothing across hosts).
///
/// None for an in-memory SQLite database (heavy reads then use the main pool).
///
/// # Errors
/// The connection error.
pub async fn heavy_pool(url: &str, size: u32) -> Result<Option<DatabaseConnection>, sea_orm::DbErr> {
    use sea_orm::sqlx;
    if url.contains("memory") {
        // Another pool would open another in-memory database.
        return Ok(None);
    }
    let size = size.max(1);
    let err = |e: sqlx::Error| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into()));
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
        let options = std::str::FromStr::from_str(url)
            .map(|o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(15))
                    .foreign_keys(true)
                    .pragma("cache_size", "-65536")
                    .pragma("temp_store", "MEMORY")
                    .pragma("mmap_size", "1073741824")
                    .thread_name(|id| format!("crm-heavy-{id}"))
            })
            .map_err(err)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(size)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.lock_handle().await?.set_progress_handler(1000, || {
                        lower_this_thread();
                        crate::kernel::interactive::give_way();
                        true
                    });
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(err)?;
        return Ok(Some(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)));
    }
    let local = url::Url::parse(url).ok().is_some_and(|u| {
        matches!(u.host_str(), None | Some("" | "localhost" | "127.0.0.1" | "[::1]" | "::1"))
            || u.query_pairs().any(|(k, v)| k == "host" && v.starts_with('/'))
    });
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // One core per heavy read: PostgreSQL's parallel workers (at its own
                // priority) took both cores of a 2-core machine for one report.
                sqlx::query("SET max_parallel_workers_per_gather = 0").execute(&mut *conn).await?;
                if local {
                    let (pid, port): (i32, Option<i32>) =
                        sqlx::query_as("SELECT pg_backend_pid(), inet_client_port()").fetch_one(&mut *conn).await?;
                    lower_backend(pid, port);
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(err)?;
    Ok(Some(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(pool)))
}

/// The nice value of a local PostgreSQL heavy backend, and of a heavy thread refused the
/// idle class.
const HEAVY_NICE: i32 = 10;

/// Lowers the calling thread's priority, once per thread.
fn lower_this_thread() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    // The scheduler's idle class: any ordinary thread that wakes takes the core from it at
    // once, where a nice value only shares the core by weight. Idle-class work still gets a
    // small share on a busy machine, so it is never starved outright; lowering oneself
    // needs no privilege. Nice 10 where the class is refused.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` outlives the call; sched_setscheduler reads it and touches nothing
    // else of ours. On Linux, id 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
        return;
    }
    // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux,
    // PRIO_PROCESS with id 0 is the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HEAVY_NICE) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "heavy-read thread keeps its priority");
    }
}

/// Lowers a local PostgreSQL backend's priority when this process may, once the process id
/// is known to be this connection's backend: a PostgreSQL process whose title names this
/// connection's client port (or `[local]` for a socket). A server in another process
/// namespace (a container) has ids that mean something else here; those never match.
fn lower_backend(pid: i32, port: Option<i32>) {
    static REFUSED: std::sync::Once = std::sync::Once::new();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let title = String::from_utf8_lossy(&title);
    let ours = match port {
        Some(port) => title.contains(&format!("({port})")),
        None => title.contains("[local]"),
    };
    if !comm.trim_end().starts_with("postgres") || !ours {
        return;
    }
    let Ok(id) = libc::id_t::try_from(pid) else { return };
    if id == 0 {
        return;
    }
    // Nice, not the idle class: a backend holding a lock or a buffer pin must not be
    // starved while interactive backends wait on it.
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, id, HEAVY_NICE) };
    if done != 0 {
        let error = std::io::Error::last_os_error();
        REFUSED.call_once(|| {
            tracing::info!(%error, "heavy reads run at PostgreSQL's own priority (this process may not lower it)");
        });
    }
}
