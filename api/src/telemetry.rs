//! Logging for the binaries: to stderr (so a command's output can be captured by scripts),
//! filtered by `RUST_LOG`, `info` by default with the database drivers quieter; one JSON
//! object per line with `json` (`CRM_LOG_FORMAT=json`); colours only when stderr is a
//! terminal.
pub fn init(json: bool) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    if json {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Ends a command: an error is printed for the operator and the process exits with 1.
pub fn finish(result: Result<(), String>) {
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
