//! `crm-bench`: the benchmark tools of `BENCHMARKS.md`, kept out of the server binary.
//!
//! `generate` fills a fresh database with a large synthetic data set and marks it as
//! generated; `classification` and `subscriptions` reset grades, delete classification
//! history and create leads, so they refuse any database without that mark: pointing
//! `DATABASE_URL` at a real CRM by mistake costs nothing.
mod bench;
mod fairness;
mod generate;
mod readpath;
mod search;

use api::config::Config;
use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;
use service::error::AppResult;

#[derive(Parser)]
#[command(name = "crm-bench", about = "Benchmarks of the CRM backend (on a generated database only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fills a fresh database (`DATABASE_URL`) with a large synthetic data set.
    Generate {
        #[arg(long)]
        customers: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Times a full reclassification against its SQL floor while the API answers lookups.
    Classification,
    /// Holds many `newLead` subscribers on one server process (the `crm` binary beside this
    /// one) and times delivery.
    Subscriptions {
        /// The numbers of subscribers to try, one after another.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
        subscribers: Vec<usize>,
        /// Leads created per size, one at a time.
        #[arg(long, default_value_t = 50)]
        leads: usize,
        /// How many distinct views the subscribers fall into (subscriber i sends operation
        /// `V{i mod views}`): 1 is one shared resolution for all, `0` one per subscriber.
        #[arg(long, default_value_t = 1)]
        views: usize,
    },
    /// Loads the read path with wrk (by-id lookup, a nested page; as admin, a sales rep
    /// and a manager; a rep's and a manager's own page of 20 by name with its total) on
    /// our server and, with `--postgraphile`, on PostGraphile v5.
    ReadPath {
        /// A shell command that starts PostGraphile on `$PORT` over `$DATABASE_URL`.
        #[arg(long)]
        postgraphile: Option<String>,
        #[arg(long, default_value_t = 32)]
        connections: u32,
        #[arg(long, default_value_t = 8)]
        seconds: u32,
        /// Runs per scenario and server; the best is reported.
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// Rebuilds the search keys (timed), then times ten kinds of search query as an admin
    /// and a sales rep beside the customer list's `contains` scan (issue 28).
    Search {
        /// Only the kinds whose name holds this (say `initials`), to repeat one.
        #[arg(long)]
        kind: Option<String>,
        /// Times the keys as they are, without rebuilding them first.
        #[arg(long)]
        no_rebuild: bool,
    },
    /// What one hostile or clumsy caller does to everyone else (`docs/limits.md`): the
    /// pool under aliased reports, writes beside an import, webhooks beside a slow
    /// partner, memory under aliased exports, the matching budget.
    Fairness {
        /// Only the pool part (to repeat it: its figure varies from run to run).
        #[arg(long)]
        pool_only: bool,
    },
}

/// The setting that marks a database as made by `crm-bench generate`.
const GENERATED: &str = "crm_bench_generated";

/// Marks `db` as generated (the last step of `generate`).
pub async fn mark_generated(db: &DatabaseConnection, customers: u64, seed: u64) -> AppResult<()> {
    let value = serde_json::json!({ "customers": customers, "seed": seed }).to_string();
    service::kernel::setting::get_or_create(db, GENERATED, || value).await.map(|_| ())
}

/// Refuses a database that `generate` did not make (one without the table counts too).
async fn require_generated(db: &DatabaseConnection) -> Result<(), String> {
    match service::kernel::setting::get(db, GENERATED).await {
        Ok(Some(_)) => Ok(()),
        _ => Err("this database was not made by `crm-bench generate`; the benchmarks reset grades, delete \
                  classification history and create customers, so they run only on a generated database"
            .into()),
    }
}

#[tokio::main]
async fn main() {
    api::telemetry::init(false);
    api::telemetry::finish(run(Cli::parse()).await);
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env()?;
    if !matches!(cli.command, Command::Generate { .. }) {
        // Before `prepare`, which migrates and may create a secret and a first admin.
        let db = service::kernel::db::connect(&config.database_url).await.map_err(|e| e.to_string())?;
        require_generated(&db).await?;
    }
    let state = api::prepare(&config).await?;
    match cli.command {
        Command::Generate { customers, seed } => {
            let started = std::time::Instant::now();
            let g = generate::generate(&state.db, customers, seed).await.map_err(|e| format!("{e}: {e:?}"))?;
            let keyed = std::time::Instant::now();
            let keys = service::search::index::reindex(&state.db).await.map_err(|e| e.to_string())?;
            println!("search keys built in {:.1}s: {} keys", keyed.elapsed().as_secs_f64(), keys.terms);
            println!(
                "generated in {:.1}s: {} customers, {} contacts, {} deals, {} line items, {} interactions, {} feedback",
                started.elapsed().as_secs_f64(),
                g.customers,
                g.contacts,
                g.deals,
                g.line_items,
                g.interactions,
                g.feedback
            );
        }
        Command::Classification => {
            println!("{}", bench::classification(state).await?);
        }
        Command::Subscriptions { subscribers, leads, views } => {
            println!("{}", bench::subscriptions(state, &subscribers, leads, views).await?);
        }
        Command::Fairness { pool_only } => {
            // Each part prints its line as it ends.
            fairness::fairness(state, pool_only).await?;
        }
        Command::Search { kind, no_rebuild } => {
            println!("{}", search::search(state, kind.as_deref(), !no_rebuild).await?);
        }
        Command::ReadPath { postgraphile, connections, seconds, rounds } => {
            let url = config.database_url.clone();
            println!(
                "{}",
                readpath::read_path(state, &url, postgraphile.as_deref(), connections, seconds, rounds).await?
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with anyone's data is refused; one `generate` made is accepted, and
    /// `generate` itself refuses a database that already holds customers.
    #[tokio::test]
    async fn benchmarks_run_only_on_a_generated_database() {
        let path = std::env::temp_dir().join(format!("crm_bench_{}.db", uuid::Uuid::new_v4().simple()));
        let db = service::kernel::db::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        assert!(require_generated(&db).await.is_err(), "an empty database (no tables) is refused");
        api::migrate(&db).await.unwrap();
        let refused = require_generated(&db).await.unwrap_err();
        assert!(refused.contains("not made by `crm-bench generate`"), "{refused}");

        let g = generate::generate(&db, 30, 7).await.unwrap();
        assert_eq!(g.customers, 30);
        require_generated(&db).await.unwrap();
        let again = generate::generate(&db, 30, 7).await.unwrap_err();
        assert_eq!(again.code(), "CONFLICT");
        drop(db);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
