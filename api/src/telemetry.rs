//! Logging for the binaries: to stderr (so a command's output can be captured by scripts),
//! filtered by `RUST_LOG`, `info` by default with the database drivers quieter.
pub fn init() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .init();
}
