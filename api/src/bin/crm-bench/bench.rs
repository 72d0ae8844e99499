//! `crm-bench classification`: times a full reclassification against its floor (the bare
//! SQL aggregate over the same deals plus one bare bulk UPDATE writing the pass's result),
//! while a client looks customers up through the real HTTP API and records the latencies.
use api::state::AppState;
use entity::customer;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Statement};
use serde_json::json;
use service::classification::{self, Reason};
use service::kernel::new_id;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Latency percentiles of a run of lookups.
#[derive(Debug, Default)]
pub struct Latencies {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> Latencies {
    samples.sort();
    let at = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Latencies { count: samples.len(), p50: at(0.50), p99: at(0.99), max: samples.last().copied().unwrap_or_default() }
}

/// Looks customers up over HTTP until `stop`, one request at a time.
async fn probe(
    addr: std::net::SocketAddr,
    token: String,
    ids: Vec<Uuid>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Duration>, String> {
    let client = reqwest_like::Client::new(addr);
    let mut samples = Vec::new();
    let mut i = 0usize;
    // Paced at most every 5 ms: a steady client, not a load that takes a core from the pass.
    let mut pace = tokio::time::interval(Duration::from_millis(5));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        pace.tick().await;
        let id = ids[i % ids.len()];
        i += 1;
        let body =
            json!({"query": "query($id:ID!){customer(id:$id){id name tier}}", "variables": {"id": id}}).to_string();
        let t = Instant::now();
        let resp = client.post_json("/graphql", &token, &body).await?;
        samples.push(t.elapsed());
        if !resp.contains("\"customer\"") {
            return Err(format!("lookup failed: {resp}"));
        }
    }
    Ok(samples)
}

/// Leaves the customer table as a fresh one would be before a timed write, so that runs on
/// one database compare: PostgreSQL vacuums the dead rows earlier runs left, SQLite moves
/// its write-ahead log into the database file.
async fn settle(db: &sea_orm::DatabaseConnection) -> Result<(), String> {
    let sql = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "VACUUM ANALYZE customer, classification_history",
        _ => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    db.execute_unprepared(sql).await.map(|_| ()).map_err(|e| e.to_string())
}

/// The graded columns of an ungraded customer: tier D, a prospect, nothing bought.
const UNGRADED: [(&str, &str); 16] = [
    ("computed_tier", "'D'"),
    ("tier", "'D'"),
    ("lifecycle_stage", "'PROSPECT'"),
    ("rfm_recency", "NULL"),
    ("rfm_frequency", "NULL"),
    ("rfm_monetary", "NULL"),
    ("rfm_score", "NULL"),
    ("frequency_class", "NULL"),
    ("value_class", "NULL"),
    ("relationship_type", "NULL"),
    ("turnover_margin_class", "NULL"),
    ("first_purchase_on", "NULL"),
    ("last_purchase_on", "NULL"),
    ("won_count", "0"),
    ("revenue_minor", "0"),
    ("margin_minor", "0"),
];

/// `<column> IS NOT DISTINCT FROM <value> AND ...`: the customer is ungraded.
fn is_ungraded() -> String {
    UNGRADED.iter().map(|(c, v)| format!("{c} IS NOT DISTINCT FROM {v}")).collect::<Vec<_>>().join(" AND ")
}

/// Drops every customer's grades and all classification history (not timed).
async fn ungrade(db: &sea_orm::DatabaseConnection) -> Result<(), String> {
    let sets: Vec<String> = UNGRADED.iter().map(|(c, v)| format!("{c} = {v}")).collect();
    for sql in ["DELETE FROM classification_history".to_string(), format!("UPDATE customer SET {}", sets.join(", "))] {
        db.execute_unprepared(&sql).await.map_err(|e| e.to_string())?;
    }
    settle(db).await
}

/// The whole benchmark; prints a report.
///
/// # Errors
/// A message when a step fails.
pub async fn classification(state: AppState) -> Result<String, String> {
    let db = state.db.clone();
    let backend = db.get_database_backend();
    let customers = customer::Entity::find()
        .filter(customer::Column::DeletedAt.is_null())
        .count(&db)
        .await
        .map_err(|e| e.to_string())?;
    let deals: i64 = db
        .query_one_raw(Statement::from_string(backend, "SELECT COUNT(*) AS n FROM deal"))
        .await
        .map_err(|e| e.to_string())?
        .map(|r| r.try_get("", "n"))
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(0);

    // Floor, part 1: the same aggregate statements the pass runs (won deals, line-item
    // margins, complaints), bare: every row fetched, nothing computed.
    let (policy, _) = classification::policy(&db).await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut buyers = 0;
    for statement in classification::fact_statements(&db, &policy, None, chrono::Utc::now().date_naive()) {
        let rows = db.query_all_raw(statement).await.map_err(|e| e.to_string())?;
        if buyers == 0 {
            buyers = rows.len();
        }
    }
    let aggregate = t.elapsed();
    // For reference: one bulk UPDATE of one unindexed column of every customer.
    settle(&db).await?;
    let t = Instant::now();
    db.execute_unprepared("UPDATE customer SET classified_at = CURRENT_TIMESTAMP").await.map_err(|e| e.to_string())?;
    let one_column = t.elapsed();

    // Ungrade everyone, so the pass has real work to do, and drop the history earlier runs
    // left, so that every run on one database writes into the same tables (not timed).
    ungrade(&db).await?;

    // The API, in this process, with a client looking customers up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let server_state = state.clone();
    tokio::spawn(async move {
        let _ = api::serve_on(listener, server_state, std::future::pending()).await;
    });
    let admin = entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(entity::enums::Role::Admin))
        .one(&db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no admin user")?;
    let (token, _) = state.jwt.issue(&admin, Some(chrono::Duration::hours(6))).map_err(|e| e.to_string())?;
    let ids: Vec<Uuid> = customer::Entity::find()
        .select_only()
        .column(customer::Column::Id)
        .limit(2000)
        .into_tuple()
        .all(&db)
        .await
        .map_err(|e| e.to_string())?;

    if ids.is_empty() {
        return Err("no customers: run `crm generate --customers N` first".into());
    }
    let idle_stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn(probe(addr, token.clone(), ids.clone(), idle_stop.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    idle_stop.store(true, Ordering::Relaxed);
    let idle = percentiles(idle.await.map_err(|e| e.to_string())??);

    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(probe(addr, token, ids, stop.clone()));
    let run_id = new_id();
    classification::create_run(&db, run_id, Reason::Reclassify, None).await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    classification::run_full_pass(&db, run_id, Reason::Reclassify, None, chrono::Utc::now().date_naive())
        .await
        .map_err(|e| e.to_string())?;
    let pass = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = percentiles(during.await.map_err(|e| e.to_string())??);
    let run = entity::classification_run::Entity::find_by_id(run_id)
        .one(&db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("run vanished")?;

    // Floor, part 2: the pass's own result written bare: its grades are copied aside, the
    // customers ungraded again, then one UPDATE writes the same columns with the same
    // values into the same rows (those the pass changed), in one statement and one
    // transaction, without history, batches or anything read back.
    let columns = classification::STORED_COLUMNS.join(", ");
    let sets: Vec<String> = classification::STORED_COLUMNS.iter().map(|c| format!("{c} = g.{c}")).collect();
    for sql in [
        "DROP TABLE IF EXISTS bench_grades".to_string(),
        format!("CREATE TABLE bench_grades AS SELECT id, {columns} FROM customer WHERE NOT ({})", is_ungraded()),
    ] {
        db.execute_unprepared(&sql).await.map_err(|e| e.to_string())?;
    }
    ungrade(&db).await?;
    let t = Instant::now();
    db.execute_unprepared(&format!(
        "UPDATE customer SET {}, classified_at = CURRENT_TIMESTAMP FROM bench_grades AS g WHERE customer.id = g.id",
        sets.join(", ")
    ))
    .await
    .map_err(|e| e.to_string())?;
    let bulk_update = t.elapsed();
    db.execute_unprepared("DROP TABLE bench_grades").await.map_err(|e| e.to_string())?;
    settle(&db).await?;

    let floor = aggregate + bulk_update;
    Ok(format!(
        "backend: {backend:?}\ncustomers: {customers}, deals: {deals}, buyers (customer x currency groups): {buyers}\n\
         floor: aggregate {:.2}s + bulk update of the pass's result {:.2}s = {:.2}s\n\
         (for reference: a bulk update of one unindexed column of every customer: {:.2}s)\n\
         reclassifyAll: {:.2}s ({} customers processed, {} changed) = {:.2}x the floor\n\
         customer lookups over HTTP while idle: n={} p50={:.1}ms p99={:.1}ms max={:.1}ms\n\
         customer lookups over HTTP during the pass: n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
        aggregate.as_secs_f64(),
        bulk_update.as_secs_f64(),
        floor.as_secs_f64(),
        one_column.as_secs_f64(),
        pass.as_secs_f64(),
        run.processed,
        run.changed,
        pass.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        idle.count,
        idle.p50.as_secs_f64() * 1e3,
        idle.p99.as_secs_f64() * 1e3,
        idle.max.as_secs_f64() * 1e3,
        during.count,
        during.p50.as_secs_f64() * 1e3,
        during.p99.as_secs_f64() * 1e3,
        during.max.as_secs_f64() * 1e3,
    ))
}

/// A tiny HTTP/1.1 client over one kept-alive connection, enough for the probe (the
/// server's own stack, hyper, is already a dependency; no client crate is needed).
mod reqwest_like {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;
    use tokio::sync::Mutex;

    pub struct Client {
        addr: std::net::SocketAddr,
        conn: Mutex<Option<BufReader<TcpStream>>>,
    }

    impl Client {
        pub fn new(addr: std::net::SocketAddr) -> Self {
            Client { addr, conn: Mutex::new(None) }
        }

        pub async fn post_json(&self, path: &str, token: &str, body: &str) -> Result<String, String> {
            let mut guard = self.conn.lock().await;
            if guard.is_none() {
                *guard = Some(BufReader::new(TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?));
            }
            let conn = guard.as_mut().ok_or("no connection")?;
            let request = format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
                self.addr,
                body.len()
            );
            conn.get_mut().write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                conn.read_line(&mut line).await.map_err(|e| e.to_string())?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().map_err(|_| "bad content-length")?;
                }
            }
            let mut buf = vec![0u8; length];
            conn.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            String::from_utf8(buf).map_err(|e| e.to_string())
        }
    }
}

/// `crm-bench subscriptions`: how many `newLead` subscribers one server process holds,
/// the delay from a lead's creation (the HTTP request leaving the client) to its delivery
/// on every socket at p50/p99, and the server's memory per connection.
///
/// The server runs as a child process (`crm serve` on the same database, the `crm` binary
/// built beside this one), so its resident memory is its own; the clients run in this
/// process. Both share the machine's cores.
///
/// Every subscriber is the same administrator, so all read the same copy of a lead; the
/// operation names split them into `views` groups that the server resolves apart
/// (`api/src/views.rs`): 1 group is the best case, one per subscriber (`0`) the worst.
///
/// # Errors
/// A message when a step fails.
/// The part of a `next` message the subscriptions benchmark reads.
#[derive(serde::Deserialize)]
struct NextLead<'a> {
    #[serde(borrow)]
    payload: Option<NextPayload<'a>>,
}
#[derive(serde::Deserialize)]
struct NextPayload<'a> {
    #[serde(borrow)]
    data: Option<NextData<'a>>,
}
#[derive(serde::Deserialize)]
struct NextData<'a> {
    #[serde(borrow, rename = "newLead")]
    new_lead: Option<LeadName<'a>>,
}
#[derive(serde::Deserialize)]
struct LeadName<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

pub async fn subscriptions(state: AppState, sizes: &[usize], leads: usize, views: usize) -> Result<String, String> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        l.local_addr().map_err(|e| e.to_string())?.port()
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().map_err(|e| format!("{e}"))?;
    let crm = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("crm");
    if !crm.exists() {
        return Err(format!("{} not found: build the server too (cargo build --release -p api)", crm.display()));
    }
    let mut server = tokio::process::Command::new(crm)
        .arg("serve")
        .env("CRM_LISTEN", addr.to_string())
        .env("CRM_SCHEDULER", "off")
        // Every subscriber is the same user here, and every socket comes from one address,
        // thousands of them waiting for their `connection_init` at once.
        .env("CRM_MAX_SOCKETS_PER_USER", "1000000")
        .env("CRM_MAX_CONNECTIONS", "1000000")
        .env("CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS", "1000000")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let server_pid = server.id().ok_or("server exited")?;
    let client = reqwest_like::Client::new(addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            return Err("the server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin = entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(entity::enums::Role::Admin))
        .one(&state.db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no admin user")?;
    let (token, _) = state.jwt.issue(&admin, Some(chrono::Duration::hours(6))).map_err(|e| e.to_string())?;

    let mut report = format!(
        "backend: {:?}; server pid {server_pid}; {leads} leads per size, one at a time; {}\n",
        state.db.get_database_backend(),
        if views == 0 { "one view per subscriber".to_string() } else { format!("{views} distinct view(s)") }
    );
    for &n in sizes {
        let rss_before = rss_kib(server_pid);
        // Per lead: when it was sent, and how many sockets have it.
        let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
            Arc::new((0..leads).map(|_| std::sync::OnceLock::new()).collect());
        let got: Arc<Vec<std::sync::atomic::AtomicUsize>> =
            Arc::new((0..leads).map(|_| std::sync::atomic::AtomicUsize::new(0)).collect());
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(n);
        let stop = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let (token, sent, got, ready, stop) =
                (token.clone(), sent.clone(), got.clone(), ready_tx.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let connect = async {
                    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().map_err(|e| e.to_string())?;
                    req.headers_mut().insert("sec-websocket-protocol", api::ws::PROTOCOL.parse().map_err(|_| "header")?);
                    // tungstenite zeroes its read buffer (128 KiB by default) for every read:
                    // 10,000 clients doing so cost the shared cores more than the server's sends.
                    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
                    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), false)
                        .await
                        .map_err(|e| format!("socket {i}: {e}"))?;
                    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
                    ws.send(Message::text(init.to_string())).await.map_err(|e| e.to_string())?;
                    let view = if views == 0 { i } else { i % views };
                    let query = format!("subscription V{view} {{newLead{{id name}}}}");
                    let sub = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
                    ws.send(Message::text(sub.to_string())).await.map_err(|e| e.to_string())?;
                    ws.send(Message::text(json!({"type": "ping"}).to_string())).await.map_err(|e| e.to_string())?;
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.contains("\"pong\"") => return Ok::<_, String>(ws),
                            Some(Ok(_)) => {}
                            other => return Err(format!("socket {i} closed during set-up: {other:?}")),
                        }
                    }
                };
                let mut delays = Vec::new();
                let mut ws = match connect.await {
                    Ok(ws) => {
                        let _ = ready.send(Ok(())).await;
                        ws
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e)).await;
                        return delays;
                    }
                };
                // One registration for the whole run, not one per message.
                let stopped = stop.notified();
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        () = &mut stopped => break,
                        msg = ws.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                let at = Instant::now();
                                // Typed and borrowed: the client shares the 2 cores with the server,
                                // and a `Value` tree per message would charge the server's latency
                                // with the client's allocations.
                                let Ok(next) = serde_json::from_str::<NextLead<'_>>(t.as_str()) else { continue };
                                let name = next.payload.and_then(|p| p.data).and_then(|d| d.new_lead).map(|l| l.name).unwrap_or_default();
                                if let Some(k) = name.strip_prefix("bench-lead-").and_then(|k| k.parse::<usize>().ok()) {
                                    if let Some(t0) = sent.get(k).and_then(|s| s.get()) {
                                        delays.push(at.duration_since(*t0));
                                    }
                                    if let Some(c) = got.get(k) {
                                        c.fetch_add(1, Ordering::SeqCst);
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                }
                let _ = ws.close(None).await;
                delays
            }));
            // Open sockets in waves, as clients arrive, not in one burst.
            if i % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        drop(ready_tx);
        let mut connected = 0;
        let mut failed: Option<String> = None;
        // One answer per socket (the tasks keep their sender while they listen).
        for _ in 0..n {
            let Some(r) = ready_rx.recv().await else { break };
            match r {
                Ok(()) => connected += 1,
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // Let every subscription task reach its event stream before the first lead.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = rss_kib(server_pid);
        let started = Instant::now();
        let mut missing = 0usize;
        for k in 0..leads {
            let body = json!({"query": "mutation($n:String!){createCustomer(input:{name:$n, kind:INDIVIDUAL}){id}}", "variables": {"n": format!("bench-lead-{k}")}}).to_string();
            let _ = sent[k].set(Instant::now());
            let resp = client.post_json("/graphql", &token, &body).await?;
            if !resp.contains("createCustomer") || resp.contains("errors") {
                return Err(format!("lead not created: {resp}"));
            }
            let wait = Instant::now() + Duration::from_secs(30);
            while got[k].load(Ordering::SeqCst) < connected && Instant::now() < wait {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            missing += connected - got[k].load(Ordering::SeqCst).min(connected);
        }
        let elapsed = started.elapsed();
        stop.notify_waiters();
        let mut delays = Vec::new();
        for t in tasks {
            delays.extend(t.await.map_err(|e| e.to_string())?);
        }
        let lat = percentiles(delays);
        let per_connection = match (rss_before, rss_after) {
            (Some(b), Some(a)) if connected > 0 => {
                format!("{:.1} KiB", (a.saturating_sub(b)) as f64 / connected as f64)
            }
            _ => "n/a".into(),
        };
        report.push_str(&format!(
            "subscribers {n}: connected {connected}{}; deliveries {} (missing {missing}) in {:.1}s; delay p50={:.1}ms p99={:.1}ms max={:.1}ms; \
             server RSS {} -> {} KiB, {per_connection} per connection\n",
            failed.map(|e| format!(" (first failure: {e})")).unwrap_or_default(),
            lat.count,
            elapsed.as_secs_f64(),
            lat.p50.as_secs_f64() * 1e3,
            lat.p99.as_secs_f64() * 1e3,
            lat.max.as_secs_f64() * 1e3,
            rss_before.unwrap_or(0),
            rss_after.unwrap_or(0),
        ));
        // Let the server close the sockets before the next size.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
    Ok(report)
}

/// Resident memory of a process in KiB (Linux).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
