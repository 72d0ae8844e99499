//! `crm-bench search`: the search box over a generated data set (`BENCHMARKS.md`, issue
//! 28). Eleven kinds of query, twenty typical queries of each drawn from the data, each sent
//! five times over HTTP to a `crm serve` child as an admin and as a sales rep; p50 and p99
//! per kind and role, beside the floor of doing nothing clever: the same queries through
//! the `contains` filter of the customer list (`ILIKE '%…%'` over every row), sent once.
use crate::generate::TRADITIONAL;
use crate::readpath::{first_user, free_port, wait_for};
use api::state::AppState;
use entity::enums::{CustomerKind, Role};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use service::search::fold::{fold, readings, units};
use std::time::{Duration, Instant};

/// Queries per kind, and how often each is sent.
const QUERIES: usize = 20;
const REPEAT: usize = 5;

struct Kind {
    name: &'static str,
    queries: Vec<String>,
    /// The list filter the same need is met with today: field and needle.
    floor: Vec<(&'static str, String)>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The queries, drawn from the first customers generated (their names, numbers and
/// addresses are random), or from the first of those `owner` owns.
async fn kinds(state: &AppState, owner: Option<uuid::Uuid>) -> Result<Vec<Kind>, String> {
    type Row = (CustomerKind, String, Option<String>, Option<String>);
    let mut rows = entity::customer::Entity::find();
    if let Some(o) = owner {
        rows = rows.filter(entity::customer::Column::OwnerId.eq(o));
    }
    let rows: Vec<Row> = rows
        .select_only()
        .columns([
            entity::customer::Column::Kind,
            entity::customer::Column::Name,
            entity::customer::Column::Phone,
            entity::customer::Column::Email,
        ])
        .order_by_asc(entity::customer::Column::Id)
        .limit(20_000)
        .into_tuple()
        .all(&state.db)
        .await
        .map_err(|e| e.to_string())?;
    let mut rng = StdRng::seed_from_u64(28);
    let people: Vec<&Row> = rows.iter().filter(|r| r.0 == CustomerKind::Individual).collect();
    let orgs: Vec<&Row> = rows.iter().filter(|r| r.0 == CustomerKind::Organization).collect();
    let emails: Vec<&String> = rows.iter().filter_map(|r| r.3.as_ref()).collect();
    let mut pick = |from: usize| rng.random_range(0..from);
    let mut draw = |make: &mut dyn FnMut(usize) -> Option<(String, (&'static str, String))>, n: usize| {
        let mut q = Vec::new();
        let mut f = Vec::new();
        while q.len() < QUERIES {
            if let Some((query, floor)) = make(pick(n)) {
                q.push(query);
                f.push(floor);
            }
        }
        (q, f)
    };
    let read = |name: &str| readings(&units(&fold(name)), true);
    let mut out = Vec::new();
    let mut kind = |name: &'static str, (queries, floor): (Vec<String>, Vec<(&'static str, String)>)| {
        out.push(Kind { name, queries, floor });
    };
    kind(
        "two characters of a name (伟明)",
        draw(
            &mut |i| {
                let n: Vec<char> = people[i].1.chars().collect();
                (n.len() >= 3).then(|| {
                    let q: String = n[n.len() - 2..].iter().collect();
                    (q.clone(), ("name", q))
                })
            },
            people.len(),
        ),
    );
    kind(
        "a whole name in traditional characters (張偉)",
        draw(
            &mut |i| {
                let n = &people[i].1;
                let t: String =
                    n.chars().map(|c| TRADITIONAL.iter().find(|(s, _)| *s == c).map_or(c, |(_, t)| *t)).collect();
                (t != *n).then(|| (t.clone(), ("name", t)))
            },
            people.len(),
        ),
    );
    kind(
        "full pinyin (zhangweiming)",
        draw(&mut |i| Some((read(&people[i].1).concat(), ("name", read(&people[i].1).concat()))), people.len()),
    );
    kind(
        "initials (zwm)",
        draw(
            &mut |i| {
                let q: String = read(&people[i].1).iter().filter_map(|r| r.chars().next()).collect();
                (q.len() >= 3).then(|| (q.clone(), ("name", q)))
            },
            people.len(),
        ),
    );
    kind(
        "two initials (zw)",
        draw(
            &mut |i| {
                let q: String = read(&people[i].1).iter().take(2).filter_map(|r| r.chars().next()).collect();
                (q.len() == 2).then(|| (q.clone(), ("name", q)))
            },
            people.len(),
        ),
    );
    kind(
        "pinyin and characters (zhang伟明)",
        draw(
            &mut |i| {
                let n: Vec<char> = people[i].1.chars().collect();
                let r = read(&people[i].1);
                (n.len() == 3 && r.len() == 3).then(|| {
                    let q = format!("{}{}{}", r[0], n[1], n[2]);
                    (q.clone(), ("name", q))
                })
            },
            people.len(),
        ),
    );
    kind(
        "an organization without region and form (鑫瑞商贸)",
        draw(
            &mut |i| {
                let core = service::search::fold::org_core(&orgs[i].1);
                Some((core.clone(), ("name", core)))
            },
            orgs.len(),
        ),
    );
    kind(
        "five digits of a phone (13579)",
        draw(
            &mut |i| {
                let p = rows[i].2.as_ref()?;
                let q = p[4..9].to_string();
                Some((q.clone(), ("phone", q)))
            },
            rows.len(),
        ),
    );
    kind(
        "a whole number as a switchboard sends it (8613912345678)",
        draw(
            &mut |i| {
                let p = rows[i].2.as_ref()?;
                Some((format!("86{p}"), ("phone", p.clone())))
            },
            rows.len(),
        ),
    );
    kind(
        "an e-mail address up to its @ (zhangwei123@)",
        draw(
            &mut |i| {
                let q = format!("{}@", emails[i].split('@').next().unwrap_or_default());
                Some((q.clone(), ("email", q)))
            },
            emails.len(),
        ),
    );
    kind(
        "full pinyin with one typo (zhangwie)",
        draw(
            &mut |i| {
                let mut q: Vec<u8> = read(&people[i].1).concat().into_bytes();
                (q.len() >= 6).then(|| {
                    let at = q.len() - 2;
                    q.swap(at, at + 1);
                    let q = String::from_utf8(q).unwrap_or_default();
                    (q.clone(), ("name", q))
                })
            },
            people.len(),
        ),
    );
    Ok(out)
}

/// Runs the benchmark; returns the report.
///
/// # Errors
/// A message when a step fails.
pub async fn search(state: AppState, only: Option<&str>, rebuild: bool) -> Result<String, String> {
    let db = &state.db;
    let user = |role: Role| first_user(db, role);
    let admin = user(Role::Admin).await?;
    let rep = user(Role::Sales).await?;
    let token = |u: &entity::user::Model| {
        state.jwt.issue(u, Some(chrono::Duration::hours(6))).map(|(t, _)| t).map_err(|e| e.to_string())
    };
    let mut report = String::new();
    if rebuild {
        let started = Instant::now();
        let built = service::search::index::reindex(db).await.map_err(|e| e.to_string())?;
        report = format!(
            "rebuilt the search keys of {} customers in {:.1} s: {} keys\n",
            built.customers,
            started.elapsed().as_secs_f64(),
            built.terms
        );
        // The rebuild's gigabytes are written back before the queries are timed, not while:
        // a PostgreSQL checkpoint, SQLite's write-ahead log moved into the database file.
        let settle = match db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "CHECKPOINT",
            _ => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        db.execute_unprepared(settle).await.map_err(|e| e.to_string())?;
    }
    let wanted = |k: &Kind| only.is_none_or(|o| k.name.contains(o));
    let drawn = [kinds(&state, None).await?, kinds(&state, Some(rep.id)).await?]
        .map(|ks| ks.into_iter().filter(wanted).collect::<Vec<_>>());

    let port = free_port()?;
    let crm = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("crm");
    let _server = tokio::process::Command::new(&crm)
        .arg("serve")
        .env("CRM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CRM_SCHEDULER", "off")
        .env("CRM_MAX_REQUESTS_PER_USER", "100000")
        .env("CRM_MATCH_BUDGET_PER_HOUR", "4000000000")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", crm.display()))?;
    wait_for(port).await?;
    api::webhooks::install_tls();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let send = |token: String, body: Value| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let at = Instant::now();
            let bytes = client
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| e.to_string())?
                .bytes()
                .await
                .map_err(|e| e.to_string())?;
            let resp: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            if resp.get("errors").is_some() {
                return Err(format!("{resp}"));
            }
            Ok::<(Duration, Value), String>((at.elapsed(), resp))
        }
    };
    let search = "query($q:String!){search(query:$q){totalCount nodes{score customer{id name}}}}";
    let list = "query($f:CustomerFilter){customers(filter:$f){totalCount nodes{id name}}}";
    // What any request costs: the floor under every figure below.
    for (who, u) in [("admin", &admin), ("sales rep", &rep)] {
        let t = token(u)?;
        let mut times = Vec::new();
        for _ in 0..QUERIES * REPEAT {
            times.push(send(t.clone(), json!({"query": "{__typename}"})).await?.0);
        }
        times.sort();
        report.push_str(&format!(
            "a request that reads nothing (`{{__typename}}`), {who}: p50 {} ms p99 {} ms\n",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        ));
    }
    report.push_str(&format!(
        "\n{} queries of each kind (the admin's drawn from every customer, the rep's from the rep's own), each sent {REPEAT} times; the floor (the customer list's `contains`, an ILIKE scan) once\n\n",
        QUERIES
    ));
    report.push_str("| kind | caller | search p50 | search p99 | hits (median) | floor p50 | floor p99 | p99 floor / search |\n|---|---|---|---|---|---|---|---|\n");
    for ((who, u), kinds) in [("admin", &admin), ("sales rep", &rep)].into_iter().zip(&drawn) {
        let t = token(u)?;
        for kind in kinds {
            let mut times = Vec::new();
            let mut hits = Vec::new();
            let mut slowest = Vec::new();
            for round in 0..REPEAT {
                for q in &kind.queries {
                    let (d, resp) = send(t.clone(), json!({"query": search, "variables": {"q": q}})).await?;
                    times.push(d);
                    let n = resp["data"]["search"]["totalCount"].as_i64().unwrap_or(0);
                    hits.push(n);
                    slowest.push((d, round, q, n));
                }
            }
            if only.is_some() {
                // One kind alone: which of its queries make its tail.
                slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
                for (d, round, q, n) in slowest.iter().take(6) {
                    report.push_str(&format!("{who}: `{q}` ({n} hits) round {round}: {} ms\n", ms(*d)));
                }
            }
            let mut floor = Vec::new();
            for (field, needle) in &kind.floor {
                let f = json!({ *field: {"contains": needle} });
                let (d, _) = send(t.clone(), json!({"query": list, "variables": {"f": f}})).await?;
                floor.push(d);
            }
            times.sort();
            floor.sort();
            hits.sort();
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
            report.push_str(&format!(
                "| {} | {who} | {} ms | {} ms | {} | {} ms | {} ms | {:.0}x |\n",
                kind.name,
                ms(p50),
                ms(p99),
                hits[hits.len() / 2],
                ms(f50),
                ms(f99),
                f99.as_secs_f64() / p99.as_secs_f64()
            ));
        }
    }

    // What a rep's timing tells about others' customers: whole numbers that exist only
    // outside the rep's scope beside numbers that exist nowhere, interleaved.
    let rep_t = token(&rep)?;
    let theirs: Vec<String> = entity::customer::Entity::find()
        .select_only()
        .column(entity::customer::Column::Phone)
        .filter(entity::customer::Column::OwnerId.ne(rep.id))
        .filter(entity::customer::Column::Phone.is_not_null())
        .order_by_asc(entity::customer::Column::Id)
        .limit(QUERIES as u64)
        .into_tuple::<Option<String>>()
        .all(db)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .flatten()
        .collect();
    let (mut hidden, mut absent) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for p in &theirs {
            let nowhere = format!("145{}", &p[3..]);
            let (d, resp) = send(rep_t.clone(), json!({"query": search, "variables": {"q": p}})).await?;
            if resp["data"]["search"]["totalCount"] != 0 {
                return Err(format!("the rep found another's customer by {p}: {resp}"));
            }
            hidden.push(d);
            absent.push(send(rep_t.clone(), json!({"query": search, "variables": {"q": nowhere}})).await?.0);
        }
    }
    hidden.sort();
    absent.sort();
    report.push_str(&format!(
        "\nA sales rep's whole-number searches, {} each: numbers of others' customers p50 {} ms p99 {} ms; numbers that exist nowhere p50 {} ms p99 {} ms (both found nothing)\n",
        hidden.len(),
        ms(percentile(&hidden, 0.5)),
        ms(percentile(&hidden, 0.99)),
        ms(percentile(&absent, 0.5)),
        ms(percentile(&absent, 0.99)),
    ));
    Ok(report)
}
