//! Heavy reads on a real streaming replica (`CRM_READ_DATABASE_URL`, docs/replica.md): the
//! test makes a PostgreSQL cluster of its own (`initdb`, trust on loopback, replication
//! allowed), a replica of it by `pg_basebackup -R` on another port, and a server on both.
//! It shows a report and a search served from the replica, a writer's own report and
//! search served from the primary, and the fall back to the primary when the replica
//! stops. PostgreSQL only (with
//! `TEST_DATABASE_URL`): it needs the server's binaries, which the SQLite run does not.
use crate::helpers::*;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The directory of PostgreSQL's server programs (`PG_BINDIR`, else the newest under
/// `/usr/lib/postgresql`).
fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's programs under /usr/lib/postgresql (or PG_BINDIR)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| p.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0));
    versions.pop().expect("initdb under /usr/lib/postgresql/<version>/bin")
}

/// Whether this process runs as root (PostgreSQL refuses to: its programs then run as the
/// `postgres` user).
fn root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// One of PostgreSQL's programs, as the `postgres` user when this process is root.
fn command(program: &str) -> Command {
    let path = bindir().join(program);
    if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

/// Runs one of PostgreSQL's programs; panics with its output when it fails.
fn run(program: &str, args: &[&str]) {
    let out = command(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running cluster in a directory of the test's, stopped and removed on drop.
struct Cluster {
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn start(&self) {
        let log = self.data.with_extension("log");
        run("pg_ctl", &["-D", path(&self.data), "-l", path(&log), "-w", "-t", "60", "start"]);
    }

    fn stop(&self) {
        run("pg_ctl", &["-D", path(&self.data), "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn configure(&self, socket_dir: &Path, primary: bool) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new().append(true).open(self.data.join("postgresql.conf")).unwrap();
        writeln!(conf, "port = {}", self.port).unwrap();
        writeln!(conf, "listen_addresses = '127.0.0.1'").unwrap();
        writeln!(conf, "unix_socket_directories = '{}'", socket_dir.display()).unwrap();
        if primary {
            writeln!(conf, "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nshared_buffers = 32MB").unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stopped already, or stopping after a failed assertion: the outcome does not matter.
        let _ = command("pg_ctl").args(["-D", path(&self.data), "-m", "immediate", "stop"]).output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// The directory holding both clusters, removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A primary and its streaming replica, both running.
fn primary_and_replica() -> (Scratch, Cluster, Cluster) {
    let dir = std::env::temp_dir().join(format!("crm_replica_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    if root() {
        let ok = Command::new("chown").arg("postgres").arg(&dir).status().is_ok_and(|s| s.success());
        assert!(ok, "chown postgres {}", dir.display());
    }
    let scratch = Scratch(dir.clone());
    let primary = Cluster { data: dir.join("primary"), port: free_port() };
    run("initdb", &["-D", path(&primary.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]);
    primary.configure(&dir, true);
    primary.start();
    let replica = Cluster { data: dir.join("replica"), port: free_port() };
    let source = primary.port.to_string();
    run(
        "pg_basebackup",
        &["-h", "127.0.0.1", "-p", &source, "-U", "postgres", "-D", path(&replica.data), "-R", "-X", "stream"],
    );
    replica.configure(&dir, false);
    replica.start();
    (scratch, primary, replica)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `crm_heavy_reads_total{store=...}` as this process counted it.
fn heavy_reads(store: &str) -> u64 {
    counted("crm_heavy_reads_total", store)
}

/// `crm_search_reads_total{store=...}` as this process counted it.
fn search_reads(store: &str) -> u64 {
    counted("crm_search_reads_total", store)
}

fn counted(metric: &str, store: &str) -> u64 {
    let text = api::meters::handle().render();
    let prefix = format!("{metric}{{store=\"{store}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Reads of the customer table on `db` (the replica's own statistics).
async fn customer_scans(db: &DatabaseConnection) -> i64 {
    scans(db, "customer").await
}

/// Reads of `table` on `db`.
async fn scans(db: &DatabaseConnection, table: &str) -> i64 {
    let sql = format!(
        "SELECT (coalesce(sum(seq_scan), 0) + coalesce(sum(idx_scan), 0))::bigint AS n \
         FROM pg_stat_user_tables WHERE relname = '{table}'"
    );
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

const REPORT: &str = "{dataCompleteness(groupBy:OWNER){customers}}";
const SEARCH: &str = "query($q:String!){search(query:$q){totalCount}}";

fn total(data: &serde_json::Value) -> i64 {
    data["dataCompleteness"].as_array().unwrap().iter().map(|g| g["customers"].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn reports_read_from_a_streaming_replica_and_fall_back_to_the_primary() {
    if std::env::var("TEST_DATABASE_URL").is_err() {
        return; // PostgreSQL's binaries and a cluster of the test's own: the PostgreSQL run.
    }
    let (_scratch, primary, replica) = primary_and_replica();
    let admin = Database::connect(primary.url("postgres")).await.unwrap();
    admin.execute_unprepared("CREATE DATABASE crm").await.unwrap();
    let app = TestApp::on(primary.url("crm"), |c| {
        c.read_database_url = Some(replica.url("crm"));
        c.replica_max_lag_ms = 1_000;
    })
    .await;
    let watched = app.state.heavy.replica().expect("a replica").clone();
    eventually("the replica is usable", async || watched.db().is_some()).await;
    let t = app.admin_token.clone();
    for (i, name) in ["上海华联", "北京物美", "广州百佳"].iter().enumerate() {
        app.create_customer(&t, json!({"name": name, "kind": "ORGANIZATION", "phone": format!("1381234000{i}")})).await;
    }
    let standby = Database::connect(replica.url("crm")).await.unwrap();
    let count = "SELECT count(*) AS n FROM customer";
    eventually("the customers replayed", async || {
        let row = standby.query_one_raw(sea_orm::Statement::from_string(standby.get_database_backend(), count)).await;
        row.ok().flatten().and_then(|r| r.try_get::<i64>("", "n").ok()) == Some(3)
    })
    .await;
    // The writer's own report waits out the lag bound on the primary; then the replica.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (replica_before, scans_before) = (heavy_reads("replica"), customer_scans(&standby).await);
    let data = app.ok(&t, REPORT, json!({})).await;
    assert_eq!(total(&data), 3, "{data}");
    assert_eq!(heavy_reads("replica"), replica_before + 1, "served from the replica");
    eventually("the replica's statistics show the report's read", async || {
        customer_scans(&standby).await > scans_before
    })
    .await;

    // A search reads the replica's keys under the same rule.
    let (replica_before, keys_before) = (search_reads("replica"), scans(&standby, "search_term").await);
    let found = app.ok(&t, SEARCH, json!({"q": "华联"})).await;
    assert_eq!(found["search"]["totalCount"], 1, "{found}");
    assert_eq!(search_reads("replica"), replica_before + 1, "searched on the replica");
    eventually("the replica's statistics show the search's read", async || {
        scans(&standby, "search_term").await > keys_before
    })
    .await;

    // Right after a write of one's own, the report and a search read the primary and
    // show it.
    let primary_before = heavy_reads("primary");
    let searched_before = search_reads("primary");
    app.create_customer(&t, json!({"name": "深圳沃尔玛", "kind": "ORGANIZATION", "phone": "13812340009"})).await;
    let found = app.ok(&t, SEARCH, json!({"q": "沃尔玛"})).await;
    assert_eq!(found["search"]["totalCount"], 1, "the writer finds what they entered: {found}");
    assert_eq!(search_reads("primary"), searched_before + 1, "the writer's search on the primary");
    let data = app.ok(&t, REPORT, json!({})).await;
    assert_eq!(total(&data), 4, "{data}");
    assert_eq!(heavy_reads("primary"), primary_before + 1, "the writer's report on the primary");

    // An import is a write of the importer's own too: their search reads the primary.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let searched_before = search_reads("primary");
    let csv = "姓名,类型,手机\r\n杭州联华,企业,13812340077\r\n".as_bytes().to_vec();
    let (status, run) = crate::imports::import(&app, Some(&t), "", csv).await;
    assert_eq!(status, 200, "{run}");
    let found = app.ok(&t, SEARCH, json!({"q": "杭州联华"})).await;
    assert_eq!(found["search"]["totalCount"], 1, "the importer finds what they imported: {found}");
    assert_eq!(search_reads("primary"), searched_before + 1, "the importer's search on the primary");

    // So is a mutation over WebSocket: the answer arrives after the writer is noted.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let searched_before = search_reads("primary");
    let mut ws = crate::ws::ready(app.addr, &t).await;
    let create = "mutation{createCustomer(input:{name:\"苏州联华\",kind:ORGANIZATION,phone:\"13812340078\"}){id}}";
    crate::ws::send(&mut ws, json!({"id": "w", "type": "subscribe", "payload": {"query": create}})).await;
    let created = crate::ws::event(&mut ws).await;
    assert!(created["createCustomer"]["id"].is_string(), "{created}");
    let found = app.ok(&t, SEARCH, json!({"q": "苏州联华"})).await;
    assert_eq!(found["search"]["totalCount"], 1, "the writer finds what they entered: {found}");
    assert_eq!(search_reads("primary"), searched_before + 1, "the WebSocket writer's search on the primary");
    drop(ws);

    // The replica stops: reads go to the primary, and the gauges say so.
    replica.stop();
    eventually("the stopped replica is unusable", async || watched.db().is_none()).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let primary_before = heavy_reads("primary");
    let data = app.ok(&t, REPORT, json!({})).await;
    assert_eq!(total(&data), 6, "{data}");
    assert_eq!(heavy_reads("primary"), primary_before + 1, "fell back to the primary");
    let searched_before = search_reads("primary");
    let found = app.ok(&t, SEARCH, json!({"q": "华联"})).await;
    assert_eq!(found["search"]["totalCount"], 1, "{found}");
    assert_eq!(search_reads("primary"), searched_before + 1, "searched on the primary");
    let metrics = api::meters::handle().render();
    assert!(metrics.contains("crm_replica_usable 0"), "{metrics}");
    assert!(metrics.contains("crm_replica_lag_seconds -1"), "{metrics}");
    drop(app);
    drop(standby);
    drop(admin);
    primary.stop();
}

/// A replica of an SQLite file is refused at start, by name.
#[tokio::test]
async fn a_read_replica_needs_postgresql() {
    let path = std::env::temp_dir().join(format!("crm_test_{}.db", uuid::Uuid::new_v4().simple()));
    let mut config = test_config(format!("sqlite://{}", path.display()));
    config.read_database_url = Some("postgres://postgres@127.0.0.1:5432/crm".into());
    let refused = api::prepare(&config).await.err();
    for suffix in ["", "-wal", "-shm", ".key"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let refused = refused.expect("a replica of SQLite is refused");
    assert!(refused.contains("CRM_READ_DATABASE_URL needs PostgreSQL"), "{refused}");
}
