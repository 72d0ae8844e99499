//! The test harness: `TestApp::spawn()` serves the real app on a fresh database.
#![allow(dead_code)]
use api::config::Config;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use std::net::SocketAddr;

pub const SECRET: &str = "test-secret-that-is-long-enough-0123456789";
pub const ISSUER: &str = "crm";
pub const AUDIENCE: &str = "crm-api";
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const PASSWORD: &str = "correct horse battery";
/// The data key of PostgreSQL test servers (32 bytes, base64url).
pub const TEST_DATA_KEY: &str = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// The configuration of a test server on `url` (no scheduler: tests tick it themselves).
/// The bearer token of `/metrics` in tests.
pub const METRICS_TOKEN: &str = "metrics-token-of-the-tests-0123456789";

pub fn test_config(url: String) -> Config {
    // PostgreSQL needs a data key; SQLite makes a key file beside its database.
    let data_key = (!url.starts_with("sqlite:")).then(|| TEST_DATA_KEY.to_string());
    Config {
        database_url: url,
        listen: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(SECRET.into()),
        jwt_issuer: ISSUER.into(),
        jwt_audience: AUDIENCE.into(),
        access_token_ttl: 3600,
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        body_limit: 64 * 1024,
        scheduler: false,
        reclassify_hour_utc: 18,
        max_depth: 12,
        max_complexity: 50_000,
        anonymous_introspection: false,
        max_response_bytes: 16 * 1024 * 1024,
        max_root_fields: 100,
        ws_init_timeout_ms: 10_000,
        ws_recheck_ms: 30_000,
        refresh_token_ttl: 30 * 86_400,
        refresh_grace_secs: 2,
        log_json: false,
        metrics_listen: None,
        metrics_token: Some(METRICS_TOKEN.into()),
        trusted_documents: None,
        compiled_reads: true,
        read_database_url: None,
        replica_max_lag_ms: 1_000,
        login_limits: Default::default(),
        trust_forwarded_for: false,
        request_timeout_ms: 30_000,
        // Some tests race 20 writers of one user; the cap itself is tested in edge.rs.
        max_requests_per_user: 64,
        max_sockets_per_user: 20,
        pool_size: service::kernel::db::DEFAULT_POOL_SIZE,
        heavy_reads: 4,
        header_timeout_ms: 10_000,
        max_connections: 20_000,
        max_connections_per_address: 20_000,
        max_anonymous_sockets_per_address: 32,
        report_min_group: 5,
        data_key,
        import_max_bytes: 256 * 1024 * 1024,
        import_idle_ms: 60_000,
        import_retention_days: 30,
        match_budget_per_hour: 20_000,
        // The tests' receivers listen on 127.0.0.1.
        webhooks: service::webhook::Settings { allow_private: true, ..Default::default() },
    }
}

/// A server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The database this server uses.
    pub database_url: String,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub admin_token: String,
    /// SQL statements the server has run.
    pub statements: service::kernel::db::StatementCounter,
    /// The server's state (the care scheduler's tick is driven through it with the time a
    /// test needs: a controllable clock, no sleeps).
    pub state: api::state::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    cleanup: Option<Cleanup>,
}

enum Cleanup {
    Sqlite(std::path::PathBuf),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match self.cleanup.take() {
            Some(Cleanup::Sqlite(path)) => {
                for suffix in ["", "-wal", "-shm", ".key"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Some(Cleanup::Postgres { admin_url, name }) => {
                // Drop runs inside the test's runtime; use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    rt.block_on(async {
                        if let Ok(db) = Database::connect(&admin_url).await {
                            let _ = db
                                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                                .await;
                        }
                    });
                })
                .join();
            }
            None => {}
        }
    }
}

/// Where the test databases live: SQLite by default, PostgreSQL with TEST_DATABASE_URL.
async fn fresh_database() -> (String, Cleanup) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(base) => {
            let name = format!("crm_test_{id}");
            let db = Database::connect(&base).await.expect("connect to TEST_DATABASE_URL");
            db.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create test database");
            let _ = db.close().await;
            let (prefix, _) = base.rsplit_once('/').expect("TEST_DATABASE_URL has a database name");
            (format!("{prefix}/{name}"), Cleanup::Postgres { admin_url: base, name })
        }
        None => {
            let path = std::env::temp_dir().join(format!("crm_test_{id}.db"));
            (format!("sqlite://{}", path.display()), Cleanup::Sqlite(path))
        }
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (url, cleanup) = fresh_database().await;
        Self::serve(url, Some(cleanup), tweak).await
    }

    /// A server on a database the test made and drops itself (a cluster of its own).
    pub async fn on(url: String, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::serve(url, None, tweak).await
    }

    /// Another server on this app's database (a restart, or a second instance).
    pub async fn another_instance(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::serve(self.database_url.clone(), None, tweak).await
    }

    async fn serve(url: String, cleanup: Option<Cleanup>, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(url.clone());
        tweak(&mut config);
        let state = api::prepare(&config).await.expect("prepare");
        let db = state.db.clone();
        let statements = state.sql_statements.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let server = tokio::spawn(async move {
            let _ = api::serve_on(listener, serving, async move {
                let _ = stopped.await;
            })
            .await;
        });
        let mut app = TestApp {
            addr,
            database_url: url,
            client: {
                api::webhooks::install_tls();
                reqwest::Client::new()
            },
            db,
            admin_token: String::new(),
            statements,
            state,
            stop: Some(stop),
            server: Some(server),
            cleanup,
        };
        app.admin_token = app.login(ADMIN_EMAIL, PASSWORD).await;
        app
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Switches the pool's return rule off (for tests that tick years ahead without any
    /// contact, whose customers would otherwise return to the pool on the way).
    pub async fn keep_customers_owned(&self) {
        let q = "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays
            minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays}
            dueHourUtc poolReturn{enabled days warnDays byTier{tier days} byCategory{category days}}}}";
        let mut input = self.ok(&self.admin_token, q, json!({})).await["carePolicy"].clone();
        let version = input.as_object_mut().unwrap().remove("version").unwrap();
        input["poolReturn"]["enabled"] = json!(false);
        let update = "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){version}}";
        self.ok(&self.admin_token, update, json!({"i": input, "v": version})).await;
    }

    /// One tick of the care scheduler at `at`.
    pub async fn care_tick(&self, at: chrono::DateTime<chrono::Utc>) -> service::care::Tick {
        api::care_tick(&self.state, at).await.expect("care tick")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a GraphQL operation; returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request").json().await.expect("json body")
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.gql(Some(token), query, variables).await;
        assert!(resp.get("errors").is_none(), "unexpected errors: {resp}");
        resp["data"].clone()
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .gql(
                None,
                "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}",
                json!({"e": email, "p": password}),
            )
            .await;
        resp["data"]["login"]["accessToken"].as_str().unwrap_or_else(|| panic!("login failed: {resp}")).to_string()
    }

    pub async fn create_department(&self, name: &str, parent: Option<&str>) -> String {
        let data = self
            .ok(
                &self.admin_token,
                "mutation($n:String!,$p:ID){createDepartment(input:{name:$n,parentId:$p}){id}}",
                json!({"n": name, "p": parent}),
            )
            .await;
        data["createDepartment"]["id"].as_str().unwrap().to_string()
    }

    /// Creates a user and logs in; returns (id, token).
    pub async fn create_user(&self, email: &str, role: &str, department: &str) -> (String, String) {
        let data = self
            .ok(
                &self.admin_token,
                "mutation($e:String!,$r:Role!,$d:ID!,$p:String!){createUser(input:{email:$e,name:$e,password:$p,role:$r,departmentId:$d}){id}}",
                json!({"e": email, "r": role, "d": department, "p": PASSWORD}),
            )
            .await;
        let id = data["createUser"]["id"].as_str().unwrap().to_string();
        (id, self.login(email, PASSWORD).await)
    }

    /// Creates a customer as `token`; returns the customer JSON (id, version, ...).
    pub async fn create_customer(&self, token: &str, input: Value) -> Value {
        let data = self
            .ok(
                token,
                &format!("mutation($i:CreateCustomerInput!){{createCustomer(input:$i){{{CUSTOMER_FIELDS}}}}}"),
                json!({"i": input}),
            )
            .await;
        data["createCustomer"].clone()
    }

    /// Runs an operation and returns its data with the number of SQL statements it took.
    pub async fn counted(&self, token: &str, query: &str, variables: Value) -> (Value, u64) {
        use std::sync::atomic::Ordering;
        let before = self.statements.load(Ordering::SeqCst);
        let data = self.ok(token, query, variables).await;
        (data, self.statements.load(Ordering::SeqCst) - before)
    }

    pub async fn audit_count(&self, record_id: &str) -> i64 {
        let backend = self.db.get_database_backend();
        let id = uuid::Uuid::parse_str(record_id).unwrap();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => "SELECT COUNT(*) AS n FROM audit_log WHERE record_id = $1",
            _ => "SELECT COUNT(*) AS n FROM audit_log WHERE record_id = ?",
        };
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [id.into()]))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

pub const CUSTOMER_FIELDS: &str =
    "id name kind category phone phoneE164 email version ownerId departmentId lifecycleStage tier deletedAt";

/// The fields a VALIDATION error lists, in order.
pub fn invalid_fields(resp: &Value) -> Vec<&str> {
    resp["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|list| list.iter().filter_map(|f| f["field"].as_str()).collect())
        .unwrap_or_default()
}

/// The `extensions.code` of the first error.
pub fn code(resp: &Value) -> &str {
    resp["errors"][0]["extensions"]["code"].as_str().unwrap_or("<no error>")
}
