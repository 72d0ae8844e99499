//! Prometheus metrics: the `metrics` facade records, `metrics-exporter-prometheus` renders
//! the text format, and we serve it (`GET /metrics` on `CRM_METRICS_LISTEN`, or on the
//! main port behind `CRM_METRICS_TOKEN`; docs/operations.md).
//!
//! Names (all `crm_`): `http_requests_total` and `http_request_duration_seconds` by route,
//! GraphQL operation (the first [`MAX_OPERATIONS`] names seen, then `(other)`) and outcome
//! (the first error code, or `OK`); `db_pool_connections{pool,state}` and
//! `db_pool_timeouts_total`; `websockets_open`, `subscriptions_active`;
//! `webhook_deliveries_total{outcome}`, `webhook_queue_depth`; `care_tick_seconds`,
//! `reclassification_seconds`; `logins_total{outcome}`; `refused_total{limit}`;
//! with a read replica, `replica_lag_seconds`, `replica_usable` and
//! `heavy_reads_total{store}` and `search_reads_total{store}` (docs/replica.md);
//! `direct_answers_total`, the requests the database answered whole (docs/architecture.md,
//! "The compiled read path").
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Distinct operation names kept as labels; later ones are counted as `(other)`.
pub const MAX_OPERATIONS: usize = 200;

/// Latency buckets in seconds, 1 ms to 30 s.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process's recorder (one per process: the facade is global).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => {
                describe();
                handle
            }
            Err(e) => {
                // Another recorder was installed first (a test harness): render ours empty.
                tracing::warn!(error = %e, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("crm_http_requests_total", "HTTP requests by route, GraphQL operation and outcome");
    describe_histogram!("crm_http_request_duration_seconds", "HTTP request latency by route and GraphQL operation");
    describe_gauge!("crm_db_pool_connections", "Pooled database connections by pool and state (in_use, idle)");
    describe_gauge!("crm_db_pool_max_connections", "Largest size of each database pool");
    describe_counter!("crm_db_pool_timeouts_total", "Waits for a pooled connection that timed out");
    describe_gauge!("crm_websockets_open", "Open WebSockets on this instance");
    describe_gauge!("crm_subscriptions_active", "Running subscriptions on this instance");
    describe_counter!("crm_webhook_deliveries_total", "Webhook delivery attempts by outcome");
    describe_gauge!("crm_webhook_queue_depth", "Webhook deliveries waiting for an attempt (all instances)");
    describe_histogram!("crm_care_tick_seconds", "Duration of a care tick");
    describe_histogram!("crm_reclassification_seconds", "Duration of a daily reclassification pass");
    describe_counter!("crm_logins_total", "Password logins by outcome");
    describe_counter!("crm_refused_total", "Requests and connections refused, by the limit that refused them");
    describe_gauge!("crm_replica_lag_seconds", "The read replica's last measured lag (-1: not measured)");
    describe_gauge!("crm_replica_usable", "1 while heavy reads and searches may use the read replica");
    describe_counter!("crm_heavy_reads_total", "Heavy reads by the store they ran on (replica, primary)");
    describe_counter!("crm_search_reads_total", "Searches by the store they read (replica, primary)");
    describe_counter!("crm_direct_answers_total", "GraphQL requests answered whole by one compiled statement");
}

/// The label of an operation name: `(unnamed)` and `(invalid)` as the log has them, the
/// first [`MAX_OPERATIONS`] other names as they are, then `(other)`.
pub fn operation(label: &str) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    if label.starts_with('(') {
        return label.to_string();
    }
    let mut seen = SEEN.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(label) {
        return label.to_string();
    }
    if seen.len() < MAX_OPERATIONS {
        seen.insert(label.to_string());
        return label.to_string();
    }
    "(other)".into()
}

/// One of something open (a WebSocket, a subscription) for as long as it is held.
pub struct Held(&'static str);

impl Held {
    pub fn new(gauge: &'static str) -> Held {
        metrics::gauge!(gauge).increment(1.0);
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// A refusal by a limit (`crm_refused_total{limit}`).
pub fn refused(limit: &'static str) {
    metrics::counter!("crm_refused_total", "limit" => limit).increment(1);
}

/// A request answered whole by the database, without the GraphQL executor.
pub fn direct() {
    metrics::counter!("crm_direct_answers_total").increment(1);
}

/// The text of a scrape: gauges read now from what they measure, then everything.
pub async fn render(state: &crate::state::AppState) -> String {
    pool_gauges("main", &state.db);
    if let Some(heavy) = state.heavy.pool() {
        pool_gauges("heavy", heavy);
    }
    let depth = service::webhook::delivery::queue_depth(&state.db).await;
    match depth {
        Ok(n) => metrics::gauge!("crm_webhook_queue_depth").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "webhook queue depth not read"),
    }
    handle().render()
}

fn pool_gauges(pool: &'static str, db: &sea_orm::DatabaseConnection) {
    let (size, idle, max) = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
        _ => {
            let p = db.get_sqlite_connection_pool();
            (p.size(), p.num_idle(), p.options().get_max_connections())
        }
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("crm_db_pool_connections", "pool" => pool, "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("crm_db_pool_connections", "pool" => pool, "state" => "idle").set(f64::from(idle));
    metrics::gauge!("crm_db_pool_max_connections", "pool" => pool).set(f64::from(max));
}
