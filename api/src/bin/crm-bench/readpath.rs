//! `crm-bench read-path`: the read path under load, side by side with PostGraphile v5 on
//! the same database (`BENCHMARKS.md`). Our server runs as a child process (`crm serve`,
//! the binary beside this one); PostGraphile runs from the command given with
//! `--postgraphile` (its port in `PORT`, the database in `DATABASE_URL`); `wrk` loads
//! each in turn with one query per scenario and counts GraphQL errors in the bodies.
use api::state::AppState;
use entity::enums::Role;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What wrk reported for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx answers, socket errors and bodies with GraphQL `errors`.
    pub errors: u64,
}

/// Reads wrk's `--latency` output (and the error count our script prints).
pub fn parse_wrk(out: &str) -> Load {
    let ms = |v: &str| -> f64 {
        let v = v.trim();
        let (num, factor) = if let Some(n) = v.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = v.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = v.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (v, 1.0)
        };
        num.parse::<f64>().map(|n| n * factor).unwrap_or(f64::NAN)
    };
    let mut load = Load::default();
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            load.requests_per_sec = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            load.p50_ms = ms(v);
        } else if let Some(v) = line.strip_prefix("99%") {
            load.p99_ms = ms(v);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            load.errors += v.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        } else if let Some(v) = line.strip_prefix("GRAPHQL_ERRORS") {
            load.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    load
}

/// A wrk script posting one GraphQL request and counting answers with `errors`.
fn script(body: &str, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n")).unwrap_or_default();
    format!(
        r#"wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{auth}local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) errors = 0 end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local e = 0
  for _, t in ipairs(threads) do e = e + t:get("errors") end
  io.write("GRAPHQL_ERRORS " .. e .. "\n")
end
"#
    )
}

/// Runs wrk against `url` with one request body.
async fn wrk(url: &str, body: &str, token: Option<&str>, connections: u32, seconds: u32) -> Result<Load, String> {
    let path = std::env::temp_dir().join(format!("crm-bench-{}.lua", Uuid::new_v4().simple()));
    std::fs::write(&path, script(body, token)).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&path)
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let _ = std::fs::remove_file(&path);
    Ok(parse_wrk(&String::from_utf8_lossy(&out.stdout)))
}

pub(crate) async fn wait_for(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing answers on port {port}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The first user of `role` by e-mail (generated data: `admin`, `manager0`, `sales0`…).
pub(crate) async fn first_user(db: &sea_orm::DatabaseConnection, role: Role) -> Result<entity::user::Model, String> {
    entity::user::Entity::find()
        .filter(entity::user::Column::Role.eq(role))
        .order_by_asc(entity::user::Column::Email)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no {role} user"))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// One scenario: who asks, and the query in both dialects.
struct Scenario {
    name: String,
    token: String,
    ours: String,
    theirs: Option<String>,
}

/// The read-path benchmark (see the module docs).
///
/// # Errors
/// A message when a step fails.
pub async fn read_path(
    state: AppState,
    database_url: &str,
    postgraphile: Option<&str>,
    connections: u32,
    seconds: u32,
    rounds: u32,
) -> Result<String, String> {
    let db = &state.db;
    let user = |role: Role| first_user(db, role);
    let admin = user(Role::Admin).await?;
    let manager = user(Role::Manager).await?;
    let rep = user(Role::Sales).await?;
    let token = |u: &entity::user::Model| {
        state.jwt.issue(u, Some(chrono::Duration::hours(6))).map(|(t, _)| t).map_err(|e| e.to_string())
    };
    // A customer of the rep's, so that the by-id lookup answers for every caller.
    let customer: Uuid = entity::customer::Entity::find()
        .select_only()
        .column(entity::customer::Column::Id)
        .filter(entity::customer::Column::OwnerId.eq(rep.id))
        .order_by_asc(entity::customer::Column::Id)
        .into_tuple()
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the rep has no customer")?;
    let customers = entity::customer::Entity::find().count(db).await.map_err(|e| e.to_string())?;
    let gql = |q: &str, vars: serde_json::Value| json!({"query": q, "variables": vars}).to_string();
    let by_id = gql("query($id:ID!){customer(id:$id){id name email}}", json!({"id": customer}));
    // PostGraphile v5 (amber) names the `id` column `rowId` (`id` is its node id).
    let by_id_pg = gql("query($id:UUID!){customerByRowId(rowId:$id){rowId name email}}", json!({"id": customer}));
    let nested = gql(
        "{customers(first:10){edges{node{name contacts(first:10){edges{node{name mobile}}} deals(first:10){edges{node{id}}}}}}}",
        json!({}),
    );
    let nested_pg = gql(
        "{allCustomers(first:10){nodes{name contactsByCustomerId(first:10){nodes{name mobile}} dealsByCustomerId(first:10){nodes{rowId}}}}}",
        json!({}),
    );
    // A caller's own page of 20 by name with its total (issue 29): ours as the rep and the
    // manager under row scope; PostGraphile, which has no scope, given the same rows as a
    // condition where it can say them (the rep's: `ownerId`; a manager's subtree is several
    // departments, which its `condition` cannot name: the manager's first branch instead).
    let page =
        gql("{customers(first:20,orderBy:[{field:NAME}]){totalCount edges{node{id name email phone}}}}", json!({}));
    let page_pg = |condition: serde_json::Value| {
        gql(
            "query($c:CustomerCondition!){allCustomers(first:20,orderBy:[NAME_ASC,PRIMARY_KEY_ASC],condition:$c)\
             {totalCount nodes{rowId name email phone}}}",
            json!({ "c": condition }),
        )
    };
    let branch: Uuid = entity::department::Entity::find()
        .select_only()
        .column(entity::department::Column::Id)
        .filter(entity::department::Column::ParentId.eq(manager.department_id))
        .order_by_asc(entity::department::Column::Name)
        .into_tuple()
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(manager.department_id);
    let mut scenarios = vec![
        Scenario {
            name: "a rep's own page of 20 by name with totalCount".into(),
            token: token(&rep)?,
            ours: page.clone(),
            theirs: Some(page_pg(json!({ "ownerId": rep.id }))),
        },
        Scenario {
            name: "a manager's department page of 20 by name with totalCount".into(),
            token: token(&manager)?,
            ours: page,
            theirs: Some(page_pg(json!({ "departmentId": branch }))),
        },
    ];
    for (who, u) in [("admin", &admin), ("sales rep (own rows)", &rep), ("manager (subtree)", &manager)] {
        let t = token(u)?;
        let theirs = |q: &String| (who == "admin").then(|| q.clone());
        scenarios.push(Scenario {
            name: format!("one customer by id, {who}"),
            token: t.clone(),
            ours: by_id.clone(),
            theirs: theirs(&by_id_pg),
        });
        scenarios.push(Scenario {
            name: format!("10 customers x 10 contacts + 10 deals, {who}"),
            token: t,
            ours: nested.clone(),
            theirs: theirs(&nested_pg),
        });
    }

    let port = free_port()?;
    let crm = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("crm");
    let mut ours = tokio::process::Command::new(&crm)
        .arg("serve")
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM_SCHEDULER", "off")
        .env("CRM_MAX_REQUESTS_PER_USER", "100000")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", crm.display()))?;
    wait_for(port).await?;
    let mut theirs = None;
    let their_port = free_port()?;
    if let Some(cmd) = postgraphile {
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("PORT", their_port.to_string())
            .env("DATABASE_URL", database_url)
            .env("GRAPHILE_ENV", "production")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start PostGraphile: {e}"))?;
        wait_for(their_port).await?;
        theirs = Some(child);
    }

    let mut report = format!(
        "{customers} customers; wrk -t1 -c{connections} -d{seconds}s, best of {rounds}; ours: {}\n\n| scenario | ours req/s | p50 ms | p99 ms | errors | PostGraphile req/s | p99 ms | errors | ratio |\n|---|---|---|---|---|---|---|---|---|\n",
        crm.display()
    );
    let best = |a: Load, b: Load| if b.requests_per_sec > a.requests_per_sec { b } else { a };
    for s in &scenarios {
        let mut mine = Load::default();
        for _ in 0..rounds {
            mine = best(
                mine,
                wrk(&format!("http://127.0.0.1:{port}/graphql"), &s.ours, Some(&s.token), connections, seconds).await?,
            );
        }
        let other = match (&theirs, &s.theirs) {
            (Some(_), Some(q)) => {
                let mut l = Load::default();
                for _ in 0..rounds {
                    l = best(
                        l,
                        wrk(&format!("http://127.0.0.1:{their_port}/graphql"), q, None, connections, seconds).await?,
                    );
                }
                Some(l)
            }
            _ => None,
        };
        let (their_rps, their_p99, their_errors, ratio) = match &other {
            Some(l) => (
                format!("{:.0}", l.requests_per_sec),
                format!("{:.1}", l.p99_ms),
                l.errors.to_string(),
                format!("{:.2}", mine.requests_per_sec / l.requests_per_sec.max(1.0)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        report.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {} | {their_rps} | {their_p99} | {their_errors} | {ratio} |\n",
            s.name, mine.requests_per_sec, mine.p50_ms, mine.p99_ms, mine.errors
        ));
    }
    let _ = ours.kill().await;
    if let Some(mut c) = theirs {
        let _ = c.kill().await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 8s test @ http://127.0.0.1:8080/graphql\n  1 threads and 32 connections\n  Latency Distribution\n     50%    4.12ms\n     75%    6.00ms\n     90%    9.00ms\n     99%   19.50ms\n  25000 requests in 8.00s, 9.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:   3125.50\nTransfer/sec:      1.12MB\nGRAPHQL_ERRORS 7\n";
        let l = parse_wrk(out);
        assert_eq!(l.requests_per_sec, 3125.5);
        assert_eq!((l.p50_ms, l.p99_ms), (4.12, 19.5));
        assert_eq!(l.errors, 3 + 4 + 7);
        assert_eq!(parse_wrk("     99%  850.00us").p99_ms, 0.85);
        assert_eq!(parse_wrk("     99%    1.20s").p99_ms, 1200.0);
    }
}
