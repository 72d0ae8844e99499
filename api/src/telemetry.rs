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

/// Ends a command: an error is printed for the operator and the process exits with 1.
pub fn finish(result: Result<(), String>) {
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
