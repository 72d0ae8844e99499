//! `crm-bench fairness`: what one hostile or clumsy caller does to everyone else
//! (`docs/limits.md`), against the `crm` binary beside this one, on a generated database.
//! Each part prints its figure and the target it is held to:
//! - pool: a rep's `customers(first:5)` p99 alone and while an analyst keeps 16 requests
//!   of 25 aliased `classificationReport(groupBy:[TIER,REGION,OWNER])` in flight (within
//!   3x, no failure);
//! - import: another user's `createCustomer` latency while a 40,000-line import runs (a dry
//!   run: it takes the write lock as a real one and leaves nothing behind; under 500 ms);
//! - webhooks: an honest account's event while one account's 25 webhooks point at a
//!   receiver answering after 9.5 s with 20 events due (within 5 s);
//! - exports: the server's resident memory while six loops send aliased
//!   `exportPersonalData` (under 300 MiB);
//! - matching: how many `duplicateCandidates` checks a rep gets answered in a burst.
use api::state::AppState;
use entity::enums::Role;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The rep's lists timed alone and under the attack (after 200 to warm up).
const SAMPLES: usize = 2000;
/// Turns of alone and under attack the pool part takes its samples in.
const ROUNDS: usize = 4;

/// The matching budget of the server under test.
const MATCH_BUDGET: u32 = 3000;

struct Server {
    url: String,
    client: reqwest::Client,
}

impl Server {
    async fn gql(&self, token: &str, query: &str, variables: Value) -> Result<Value, String> {
        let mut request = self.client.post(format!("{}/graphql", self.url));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let resp = request
            .header("content-type", "application/json")
            .body(json!({"query": query, "variables": variables}).to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|_| {
            format!("HTTP {status}: {}", String::from_utf8_lossy(&body).chars().take(200).collect::<String>())
        })
    }
}

/// Prints a part's line as soon as it is measured, and keeps it for the summary.
fn say(report: &mut String, line: &str) {
    print!("{line}");
    report.push_str(line);
}

fn failed(v: &Value) -> bool {
    v.get("errors").is_some()
}

fn p(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
    samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The server's resident memory in MiB: its own (heap, stacks: `RssAnon`) and the pages of
/// files it maps (`RssFile`: SQLite's memory-mapped database, shared with the page cache).
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// The fairness benchmark (see the module docs).
///
/// # Errors
/// A message when a step fails.
pub async fn fairness(state: AppState, pool_only: bool) -> Result<String, String> {
    let db = &state.db;
    let admin = entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(Role::Admin))
        .order_by_asc(entity::user::Column::CreatedAt)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no admin")?;
    let rep = entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(Role::Sales))
        .order_by_asc(entity::user::Column::Email)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no sales rep")?;
    let token = |u: &entity::user::Model| {
        state.jwt.issue(u, Some(chrono::Duration::hours(6))).map(|(t, _)| t).map_err(|e| e.to_string())
    };
    let (admin_t, rep_t) = (token(&admin)?, token(&rep)?);

    let port = crate::readpath::free_port()?;
    let crm = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("crm");
    let child = tokio::process::Command::new(&crm)
        .arg("serve")
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        // The webhook worker runs with the scheduler; the daily pass waits for 23:00 UTC.
        .env("CRM_SCHEDULER", "on")
        .env("CRM_RECLASSIFY_HOUR_UTC", "23")
        .env("CRM_WEBHOOK_ALLOW_PRIVATE", "on")
        .env("CRM_WEBHOOK_TIMEOUT_MS", "10000")
        // Small enough that the matching part spends it within its 20 seconds.
        .env("CRM_MATCH_BUDGET_PER_HOUR", MATCH_BUDGET.to_string())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", crm.display()))?;
    let pid = child.id().unwrap_or(0);
    crate::readpath::wait_for(port).await?;
    api::webhooks::install_tls();
    let server = Server {
        url: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().pool_max_idle_per_host(64).build().map_err(|e| e.to_string())?,
    };
    // People of their own for the parts that need them (made through the API).
    let dept = server
        .gql(&admin_t, "mutation{createDepartment(input:{name:\"公平性测试\"}){id}}", json!({}))
        .await?
        .pointer("/data/createDepartment/id")
        .cloned()
        .or(Some(Value::Null))
        .filter(|v| !v.is_null());
    let dept = match dept {
        Some(d) => d,
        None => server
            .gql(&admin_t, "{departments{id name}}", json!({}))
            .await?
            .pointer("/data/departments")
            .and_then(|l| l.as_array()?.iter().find(|d| d["name"] == "公平性测试").map(|d| d["id"].clone()))
            .ok_or("no bench department")?,
    };
    let person = |role: &'static str| {
        let server = &server;
        let (admin_t, dept) = (admin_t.clone(), dept.clone());
        async move {
            let email = format!("{}-{}@bench.crm", role.to_lowercase(), uuid::Uuid::new_v4().simple());
            let v = server
                .gql(
                    &admin_t,
                    "mutation($i:CreateUserInput!){createUser(input:$i){id}}",
                    json!({"i": {"email": email, "name": role, "password": "bench-password-1", "role": role, "departmentId": dept}}),
                )
                .await?;
            if failed(&v) {
                return Err(format!("createUser: {v}"));
            }
            let login = server
                .gql(
                    "",
                    "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}",
                    json!({"e": email, "p": "bench-password-1"}),
                )
                .await?;
            login
                .pointer("/data/login/accessToken")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("login: {login}"))
        }
    };
    let analyst_t = person("ANALYST").await?;
    let honest_t = person("ADMIN").await?;
    let mut report = String::new();

    // Pool.
    let list = "{customers(first:5){nodes{id name}}}";
    for _ in 0..200 {
        server.gql(&rep_t, list, json!({})).await?;
    }
    let aliased = format!(
        "{{{}}}",
        (0..25)
            .map(|i| format!("r{i}: classificationReport(groupBy:[TIER,REGION,OWNER]){{customerCount}} "))
            .collect::<String>()
    );
    let (answered, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // When each attack request came back, to tell whether the rep's slow samples meet them.
    let returns = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    // Alone and under attack in turns, so that what else the machine does (a checkpoint,
    // autovacuum, the host) falls on both sides rather than on one.
    let (mut alone, mut loaded, mut failures, mut spans) = (Vec::new(), Vec::new(), 0, Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..SAMPLES / ROUNDS {
            let t = Instant::now();
            let v = server.gql(&rep_t, list, json!({})).await?;
            alone.push(t.elapsed());
            if failed(&v) {
                return Err(format!("rep list: {v}"));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut attack = Vec::new();
        for _ in 0..16 {
            let (stop, answered, limited, returns) = (stop.clone(), answered.clone(), limited.clone(), returns.clone());
            let (server, q, t) =
                (Server { url: server.url.clone(), client: server.client.clone() }, aliased.clone(), analyst_t.clone());
            attack.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let v = server.gql(&t, &q, json!({})).await;
                    returns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
                    if let Ok(v) = v {
                        let refused = v["errors"].as_array().map_or(0, Vec::len);
                        limited.fetch_add(refused, Ordering::Relaxed);
                        answered.fetch_add(25 - refused.min(25), Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for _ in 0..SAMPLES / ROUNDS {
            let t = Instant::now();
            let v = server.gql(&rep_t, list, json!({})).await;
            loaded.push(t.elapsed());
            spans.push((t, t.elapsed()));
            if v.map_or(true, |v| failed(&v)) {
                failures += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for a in attack {
            let _ = a.await;
        }
    }
    let (a99, l99) = (p(&mut alone, 0.99), p(&mut loaded, 0.99));
    // The rep's samples over twice the unloaded p99, and how many of them had an attack
    // request come back while they ran (or within 20 ms before).
    let returns = std::mem::take(&mut *returns.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let slow: Vec<_> = spans.iter().filter(|(_, d)| d.as_secs_f64() * 1000.0 > 2.0 * a99).collect();
    let met = slow
        .iter()
        .filter(|(t, d)| {
            let from = t.checked_sub(Duration::from_millis(20)).unwrap_or(*t);
            returns.iter().any(|r| *r >= from && *r <= *t + *d)
        })
        .count();
    say(
        &mut report,
        &format!(
            "pool: rep customers(first:5) alone p50 {:.1} ms p99 {a99:.1} ms; under the analyst's 16 x 25 reports p50 {:.1} ms p99 {l99:.1} ms ({:.2}x, target <= 3x), {failures} failed of {SAMPLES}; reports answered {}, refused RATE_LIMITED {}; {} samples over 2x the unloaded p99, {met} of them beside an attack answer\n",
            p(&mut alone, 0.5),
            p(&mut loaded, 0.5),
            l99 / a99.max(0.001),
            answered.load(Ordering::Relaxed),
            limited.load(Ordering::Relaxed),
            slow.len()
        ),
    );

    if pool_only {
        return Ok(report);
    }

    // Import against other writers.
    let mut csv = String::from("name,phone\r\n");
    for n in 0..40_000 {
        csv.push_str(&format!("公平导入{n},166{n:08}\r\n"));
    }
    let import = {
        let (client, url, t) =
            (server.client.clone(), format!("{}/imports/customers?dryRun=true", server.url), admin_t.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client.post(url).bearer_auth(t).header("content-type", "text/csv").body(csv).send().await;
            (r.map(|r| r.status().as_u16()).unwrap_or(0), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut writes, mut write_failures) = (Vec::new(), 0);
    while !import.is_finished() {
        let t = Instant::now();
        let v = server
            .gql(
                &rep_t,
                "mutation($n:String!){createCustomer(input:{name:$n, kind:INDIVIDUAL}){id}}",
                json!({"n": format!("公平{}", uuid::Uuid::new_v4().simple())}),
            )
            .await;
        writes.push(t.elapsed());
        if v.map_or(true, |v| failed(&v)) {
            write_failures += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, took) = import.await.map_err(|e| e.to_string())?;
    say(
        &mut report,
        &format!(
            "import: 40,000 lines (dry run) took {:.1} s (HTTP {status}); meanwhile {} createCustomer: p50 {:.0} ms p99 {:.0} ms max {:.0} ms (target < 500 ms), {write_failures} failed\n",
            took.as_secs_f64(),
            writes.len(),
            p(&mut writes, 0.5),
            p(&mut writes, 0.99),
            p(&mut writes, 1.0)
        ),
    );

    // Webhooks.
    say(&mut report, &webhooks(&server, &admin_t, &honest_t).await?);

    // Exports and memory.
    let customer = server
        .gql(&rep_t, list, json!({}))
        .await?
        .pointer("/data/customers/nodes/0/id")
        .cloned()
        .ok_or("no customer")?;
    let exports = format!(
        "mutation($c:ID!){{{}}}",
        (0..25).map(|i| format!("e{i}: exportPersonalData(customerId:$c) ")).collect::<String>()
    );
    let too_many = format!(
        "mutation($c:ID!){{{}}}",
        (0..100).map(|i| format!("e{i}: exportPersonalData(customerId:$c) ")).collect::<String>()
    );
    let refused = server.gql(&admin_t, &too_many, json!({"c": customer})).await?;
    let before = rss_mib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut loops = Vec::new();
    for _ in 0..6 {
        let (stop, sent) = (stop.clone(), sent.clone());
        let (server, q, t, c) = (
            Server { url: server.url.clone(), client: server.client.clone() },
            exports.clone(),
            admin_t.clone(),
            customer.clone(),
        );
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if server.gql(&t, &q, json!({"c": c})).await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let (mut peak, mut peak_file) = before;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let (anon, file) = rss_mib(pid);
        peak = peak.max(anon);
        peak_file = peak_file.max(file);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    say(
        &mut report,
        &format!(
            "exports: 100 aliased exportPersonalData refused ({}); six loops of 25 for 30 s: {} requests, server memory of its own (RssAnon) {:.0} MiB before, peak {peak:.0} MiB (target < 300 MiB); mapped database pages (RssFile) {:.0} -> {peak_file:.0} MiB\n",
            refused["errors"][0]["message"].as_str().unwrap_or("not refused!"),
            sent.load(Ordering::Relaxed),
            before.0,
            before.1
        ),
    );

    // Matching.
    let candidates = format!(
        "{{{}}}",
        (0..100)
            .map(|i| format!("c{i}: duplicateCandidates(input:{{kind:INDIVIDUAL, phone:\"1350000{i:04}\"}}){{score}} "))
            .collect::<String>()
    );
    let (mut checked, mut refused) = (0usize, 0usize);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let v = server.gql(&rep_t, &candidates, json!({})).await?;
        let r = v["errors"].as_array().map_or(0, Vec::len);
        refused += r;
        checked += 100 - r.min(100);
    }
    say(
        &mut report,
        &format!(
            "matching: a rep sending 100 aliased duplicateCandidates for 20 s had {checked} checks answered and {refused} refused (CRM_MATCH_BUDGET_PER_HOUR={MATCH_BUDGET} for this run; default 20000)\n"
        ),
    );
    drop(child);
    Ok(report)
}

/// 25 webhooks of one account to a receiver answering after 9.5 s, 20 events due; then
/// one event for an honest account's webhook, timed from its write to its arrival.
async fn webhooks(server: &Server, attacker: &str, honest: &str) -> Result<String, String> {
    // Webhooks an earlier, interrupted run left behind (an account holds at most 25).
    let left = server.gql(attacker, "{webhooks(first:100){nodes{id name}}}", json!({})).await?;
    for hook in left.pointer("/data/webhooks/nodes").and_then(Value::as_array).into_iter().flatten() {
        if hook["name"].as_str().is_some_and(|n| n.starts_with("slow") || n == "honest") {
            server.gql(attacker, "mutation($id:ID!){deleteWebhook(id:$id){id}}", json!({"id": hook["id"]})).await?;
        }
    }
    let slow = receiver(Duration::from_millis(9_500)).await?;
    let fast = receiver(Duration::ZERO).await?;
    let create = "mutation($i:CreateWebhookInput!){createWebhook(input:$i){webhook{id}}}";
    let mut hooks = Vec::new();
    for i in 0..25 {
        let v = server
            .gql(
                attacker,
                create,
                json!({"i": {"name": format!("slow{i}"), "url": slow.0, "events": ["CUSTOMER_CREATED"]}}),
            )
            .await?;
        hooks.push((
            attacker.to_string(),
            v.pointer("/data/createWebhook/webhook/id").cloned().ok_or(format!("createWebhook: {v}"))?,
        ));
    }
    let v = server
        .gql(honest, create, json!({"i": {"name": "honest", "url": fast.0, "events": ["CUSTOMER_UPDATED"]}}))
        .await?;
    hooks.push((
        honest.to_string(),
        v.pointer("/data/createWebhook/webhook/id").cloned().ok_or(format!("createWebhook: {v}"))?,
    ));
    let mut last = Value::Null;
    for i in 0..20 {
        let v = server
            .gql(
                attacker,
                "mutation($n:String!){createCustomer(input:{name:$n, kind:INDIVIDUAL}){id version}}",
                json!({"n": format!("慢速{i}-{}", uuid::Uuid::new_v4().simple())}),
            )
            .await?;
        last = v.pointer("/data/createCustomer").cloned().ok_or(format!("createCustomer: {v}"))?;
    }
    while slow.1.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    server
        .gql(
            attacker,
            "mutation($id:ID!,$v:Int!){updateCustomer(input:{id:$id, version:$v, industry:\"茶\"}){id}}",
            json!({"id": last["id"], "v": last["version"]}),
        )
        .await?;
    let mut arrived = None;
    while started.elapsed() < Duration::from_secs(120) {
        if fast.1.load(Ordering::SeqCst) > 0 {
            arrived = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slow_seen = slow.1.load(Ordering::SeqCst);
    for (t, id) in hooks {
        let _ = server.gql(&t, "mutation($id:ID!){deleteWebhook(id:$id){id}}", json!({"id": id})).await;
    }
    Ok(match arrived {
        Some(d) => format!(
            "webhooks: the honest event arrived {:.2} s after its write (target < 5 s), while 500 slow deliveries were due ({slow_seen} slow requests received so far)\n",
            d.as_secs_f64()
        ),
        None => "webhooks: the honest event did not arrive within 120 s (target < 5 s)\n".into(),
    })
}

/// A receiver answering 200 after `delay`; its URL and the requests it got.
async fn receiver(delay: Duration) -> Result<(String, Arc<AtomicUsize>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(|e| e.to_string())?);
    let got = Arc::new(AtomicUsize::new(0));
    let counted = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let got = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                got.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    Ok((url, got))
}
