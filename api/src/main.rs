//! `crm`: the CRM server and its administration commands.
use api::config::Config;
use api::settings::Settings;
use clap::{Parser, Subcommand};
use entity::enums::Role;

#[derive(Parser)]
#[command(name = "crm", version, about = "CRM backend: GraphQL API over SQLite or PostgreSQL")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs migrations and serves the API (the default). Every setting is a flag here and
    /// an environment variable; a flag wins.
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Prints the configuration in effect (flags, environment, defaults), secrets
    /// redacted; exits non-zero when a setting is invalid.
    Config {
        #[command(flatten)]
        settings: Settings,
    },
    /// Runs pending migrations and exits.
    Migrate,
    /// Manages staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Loads a demo data set: a Chinese retail and distribution company.
    Demo {
        /// Number of customers.
        #[arg(long, default_value_t = 300)]
        customers: usize,
        /// Seed of the random choices, for a repeatable data set.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Re-seals every sensitive field under the first key of CRM_DATA_KEY (after putting a
    /// new key first); then the old keys can be dropped. A running server does the same
    /// in the background at start.
    RotateDataKey,
    /// Data keys for CRM_DATA_KEY.
    DataKey {
        #[command(subcommand)]
        command: DataKeyCommand,
    },
    /// Search keys (`docs/search.md`).
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
    /// Prints a signed access token for scripts and integrations.
    Token {
        #[arg(long)]
        email: String,
        /// Lifetime in seconds (default: CRM_ACCESS_TOKEN_TTL).
        #[arg(long)]
        ttl: Option<i64>,
    },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Rebuilds every customer's and contact's search keys (after loading data around the
    /// API, or to check them); servers may keep running.
    Reindex,
}

#[derive(Subcommand)]
enum DataKeyCommand {
    /// Prints a new random key as a CRM_DATA_KEY entry (`id:base64url`).
    New {
        /// The key's id, stored with every value it seals.
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds a user; the department is created if missing.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, executive, manager, sales, service, analyst or integration.
        #[arg(long)]
        role: String,
        #[arg(long)]
        department: String,
        /// Read from CRM_USER_PASSWORD when omitted.
        #[arg(long, env = "CRM_USER_PASSWORD")]
        password: String,
    },
}

/// mimalloc instead of glibc's malloc: see api/Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Before any thread starts: a blank setting (`CRM_LISTEN=` in a compose file) means
    // unset, as it always did.
    api::settings::unset_blank_variables();
    let cli = Cli::parse();
    let json = match &cli.command {
        Some(Command::Serve { settings } | Command::Config { settings }) => settings.log_json(),
        _ => Settings::from_env().is_ok_and(|s| s.log_json()),
    };
    api::telemetry::init(json);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => Err(format!("cannot start the runtime: {e}")),
    };
    api::telemetry::finish(result);
}

async fn run(cli: Cli) -> Result<(), String> {
    let command = match cli.command {
        Some(command) => command,
        None => Command::Serve { settings: Settings::from_env()? },
    };
    let config = match &command {
        Command::Serve { settings } | Command::Config { settings } => settings.clone().resolve()?,
        _ => Config::from_env()?,
    };
    match command {
        Command::Config { .. } => {
            use std::io::Write;
            let described = config.describe();
            let width = described.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
            let mut out = std::io::stdout().lock();
            for (name, value) in described {
                // A closed pipe (`crm config | head`) ends the listing, not the process.
                if writeln!(out, "{name:<width$}  {value}").is_err() {
                    break;
                }
            }
            Ok(())
        }
        Command::Serve { .. } => {
            let state = api::prepare(&config).await?;
            api::spawn_reseal(&state);
            if config.scheduler {
                api::spawn_scheduler(&state, config.reclassify_hour_utc);
            }
            if let Some(address) = config.metrics_listen {
                api::serve_metrics(&state, address)
                    .await
                    .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
            }
            api::serve(state, config.listen, shutdown_signal())
                .await
                .map_err(|e| format!("cannot serve on {}: {e}", config.listen))
        }
        Command::Migrate => {
            let db = service::kernel::db::connect(&config.database_url).await.map_err(|e| e.to_string())?;
            api::migrate(&db).await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::User { command: UserCommand::Add { email, name, role, department, password } } => {
            let role = Role::parse(&role.to_ascii_uppercase()).ok_or_else(|| format!("unknown role '{role}'"))?;
            let state = api::prepare(&config).await?;
            let dept = service::access::department::find_or_create_by_name(&state.db, &department)
                .await
                .map_err(|e| e.to_string())?;
            let user = service::access::user::bootstrap(
                &state.db,
                service::access::user::NewUser { email, name, password, role, department_id: dept.id },
            )
            .await
            .map_err(|e| e.to_string())?;
            println!("{}", user.id);
            Ok(())
        }
        Command::Demo { customers, seed } => {
            let state = api::prepare(&config).await?;
            let summary = service::demo::load(&state.db, &state.events, &state.privacy.keys, customers, seed)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "demo loaded: {} staff, {} customers, {} deals; every login's password is {}",
                summary.staff,
                summary.customers,
                summary.deals,
                service::demo::DEMO_PASSWORD,
            );
            println!("{:<26} {:<12} {:<14} department", "login", "role", "name");
            for l in &summary.logins {
                println!("{:<26} {:<12} {:<14} {}", l.email, l.role.as_str(), l.name, l.department);
            }
            Ok(())
        }
        Command::Search { command: SearchCommand::Reindex } => {
            let db = service::kernel::db::connect(&config.database_url).await.map_err(|e| e.to_string())?;
            // Migrations only: a server's start would build the keys of an empty table first.
            <migration::Migrator as migration::MigratorTrait>::up(&db, None).await.map_err(|e| e.to_string())?;
            let started = std::time::Instant::now();
            let done = service::search::index::reindex(&db).await.map_err(|e| e.to_string())?;
            println!(
                "search keys rebuilt: {} customers, {} keys in {:.1} s",
                done.customers,
                done.terms,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::RotateDataKey => {
            let state = api::prepare(&config).await?;
            let done =
                service::personal::seal::reseal(&state.db, &state.privacy.keys).await.map_err(|e| e.to_string())?;
            println!(
                "re-sealed under key {}: {} contacts, {} customers, {} audit rows, {} webhook secrets and payloads",
                state.privacy.keys.current(),
                done.contacts,
                done.customers,
                done.audit_rows,
                done.webhooks
            );
            if done.conflicts > 0 {
                println!(
                    "{} contacts share an ID number with another live contact of their customer and stay under the old key: resolve them (the log names them) and run this again",
                    done.conflicts
                );
            }
            println!("every server must list this key first before the old one is dropped");
            Ok(())
        }
        Command::DataKey { command: DataKeyCommand::New { id } } => {
            let spec = service::kernel::vault::Keyring::new_spec(&id);
            service::kernel::vault::Keyring::parse(&spec)?;
            println!("{spec}");
            Ok(())
        }
        Command::Token { email, ttl } => {
            let state = api::prepare(&config).await?;
            let user = service::access::user::by_email(&state.db, &email).await.map_err(|e| e.to_string())?;
            if !user.active {
                return Err("user is deactivated".into());
            }
            let (token, _) = state.jwt.issue(&user, ttl.map(chrono::Duration::seconds)).map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
