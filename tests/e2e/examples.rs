//! Every example in README.md and docs/ runs as written, against `crm demo` data, as the
//! caller it names. Each ```graphql, ```sh and ```python block carries a marker on the line
//! before it:
//!
//! - `<!-- example: as chen.jie@demo.crm -->` (a demo login; `as admin` is the server's
//!   first admin, `as an API key` an INTEGRATION key made for the demo's IT department);
//! - `, twice`: it runs a second time with the same answer's outcomes (an idempotent call);
//! - `, "…" is the webhook`: the `"…"` placeholder is the id an earlier example's answer
//!   gave under that name (`webhook { id }`, `importRun { id }`);
//! - `<!-- example: not run (why) -->` for set-up commands the CI runs anyway.
//!
//! GraphQL blocks are sent as they are; shell blocks run in bash with `TOKEN` (or
//! `CRM_KEY`) set and the documented address (`localhost:8080`, `crm.example.com`) pointed
//! at the test server; the Python webhook receiver runs and must accept a real delivery.
//! An answer passes when it has no `errors`, no non-null `error` entry, and no DUPLICATE
//! or INVALID outcome.
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default)]
struct Marker {
    who: Option<String>,
    twice: bool,
    /// The earlier answer's key whose `id` replaces `"…"`.
    placeholder: Option<String>,
    skip: bool,
}

#[derive(Debug)]
struct Example {
    place: String,
    lang: String,
    text: String,
    marker: Marker,
}

fn parse_marker(line: &str) -> Option<Marker> {
    let inner = line.trim().strip_prefix("<!-- example:")?.strip_suffix("-->")?.trim();
    let mut marker = Marker::default();
    if inner.starts_with("not run") {
        marker.skip = true;
        return Some(marker);
    }
    for part in inner.split(',').map(str::trim) {
        if let Some(who) = part.strip_prefix("as ") {
            marker.who = Some(who.trim().to_string());
        } else if part == "twice" {
            marker.twice = true;
        } else if let Some(name) = part.strip_prefix("\"…\" is ") {
            marker.placeholder = Some(name.trim().trim_start_matches("the ").to_string());
        } else {
            panic!("unknown example marker part {part:?} in {line}");
        }
    }
    Some(marker)
}

/// The runnable blocks of a Markdown file; a block of a runnable language without a marker
/// is an error (every example is either run or says why not).
fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < lines.len() {
        // A fence may be indented inside a list item; its lines are by as much.
        let indent = lines[i].len() - lines[i].trim_start().len();
        let Some(lang) = lines[i].trim_start().strip_prefix("```").filter(|l| !l.is_empty()) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut body = Vec::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push(lines[i].get(indent..).unwrap_or(lines[i].trim_start()));
            i += 1;
        }
        i += 1;
        if !matches!(lang, "graphql" | "sh" | "python") {
            continue;
        }
        let place = format!("{}:{}", path.display(), start + 1);
        let marker = (start > 0).then(|| parse_marker(lines[start - 1])).flatten();
        let marker = marker.unwrap_or_else(|| panic!("{place}: a ```{lang} block needs an <!-- example: ... --> line"));
        out.push(Example { place, lang: lang.to_string(), text: body.join("\n") + "\n", marker });
    }
    out
}

/// Every object's `id` by the key it sits under (`webhook`, `importRun`).
fn remember(value: &Value, ids: &mut HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    ids.insert(k.clone(), id.to_string());
                }
                remember(v, ids);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| remember(v, ids)),
        _ => {}
    }
}

/// Why an answer fails, if it does.
fn fault(answer: &Value) -> Option<String> {
    if answer.get("errors").is_some() {
        return Some(format!("errors: {answer}"));
    }
    let text = answer.to_string();
    for bad in ["\"DUPLICATE\"", "\"INVALID\"", "\"FAILED\""] {
        if text.contains(&format!("\"outcome\":{bad}")) {
            return Some(format!("outcome {bad}: {answer}"));
        }
    }
    fn errors(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| (k == "error" && !v.is_null()) || errors(v)),
            Value::Array(a) => a.iter().any(errors),
            _ => false,
        }
    }
    errors(answer).then(|| format!("an error entry: {answer}"))
}

struct Runner<'a> {
    app: &'a TestApp,
    tokens: HashMap<String, String>,
    ids: HashMap<String, String>,
    api_key: String,
    dir: tempfile::TempDir,
}

impl<'a> Runner<'a> {
    async fn new(app: &'a TestApp) -> Runner<'a> {
        // The partner's key, as an administrator makes it for the demo's IT department.
        let departments = app.ok(&app.admin_token, "{departments{id name}}", json!({})).await;
        let it = departments["departments"].as_array().unwrap().iter().find(|d| d["name"] == "信息技术部").unwrap();
        let key = app
            .ok(
                &app.admin_token,
                "mutation($d:ID!){createApiKey(input:{name:\"官网\", role:INTEGRATION, departmentId:$d}){secret}}",
                json!({"d": it["id"]}),
            )
            .await["createApiKey"]["secret"]
            .as_str()
            .unwrap()
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("book.csv"), BOOK).unwrap();
        Runner { app, tokens: HashMap::new(), ids: HashMap::new(), api_key: key, dir }
    }

    async fn token(&mut self, who: &str) -> String {
        match who {
            "admin" => self.app.admin_token.clone(),
            "an API key" => self.api_key.clone(),
            email => {
                if !self.tokens.contains_key(email) {
                    let token = self.app.login(email, service::demo::DEMO_PASSWORD).await;
                    self.tokens.insert(email.to_string(), token);
                }
                self.tokens[email].clone()
            }
        }
    }

    fn fill(&self, ex: &Example) -> String {
        let mut text = ex.text.clone();
        if let Some(name) = &ex.marker.placeholder {
            let id = self.ids.get(name).unwrap_or_else(|| panic!("{}: no earlier answer gave a {name} id", ex.place));
            text = text.replace("\"…\"", &format!("\"{id}\""));
        }
        // A placeholder may stay in a comment (`# departmentId: "…"  optional`), nowhere else.
        let code = text.lines().map(|l| if ex.lang == "python" { "" } else { l.split('#').next().unwrap_or("") });
        assert!(code.clone().all(|l| !l.contains('…')), "{}: an unfilled placeholder", ex.place);
        text
    }

    async fn graphql(&mut self, ex: &Example) {
        let who = ex.marker.who.clone().unwrap_or_else(|| panic!("{}: say who runs it", ex.place));
        let token = self.token(&who).await;
        let query = self.fill(ex);
        let runs = if ex.marker.twice { 2 } else { 1 };
        for run in 0..runs {
            let answer = self.app.gql(Some(&token), &query, json!({})).await;
            if let Some(why) = fault(&answer) {
                panic!("{} (run {}) as {who}: {why}", ex.place, run + 1);
            }
            remember(&answer, &mut self.ids);
        }
    }

    async fn shell(&mut self, ex: &Example) {
        let who = ex.marker.who.clone().unwrap_or_else(|| panic!("{}: say who runs it", ex.place));
        let token = self.token(&who).await;
        let base = self.app.url("");
        let base = base.trim_end_matches('/');
        let script = self
            .fill(ex)
            .replace("https://crm.example.com", base)
            .replace("http://127.0.0.1:8080", base)
            .replace("localhost:8080", base)
            .replace("admin@localhost", ADMIN_EMAIL)
            .replace("\"PASSWORD\\\"", &format!("\"{PASSWORD}\\\""));
        let runs = if ex.marker.twice { 2 } else { 1 };
        for run in 0..runs {
            let out = tokio::process::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(self.dir.path())
                .env("TOKEN", &token)
                .env("CRM_KEY", &token)
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{} (run {}): exit {:?}: {stdout} {stderr}", ex.place, run + 1, out.status);
            assert!(!stdout.contains("\"errors\""), "{} (run {}): {stdout}", ex.place, run + 1);
            // curl prints answers back to back, without a line between them.
            let answers = if stdout.trim_start().starts_with('{') { stdout.trim() } else { "" };
            for answer in serde_json::Deserializer::from_str(answers).into_iter::<Value>() {
                let answer = answer.unwrap_or_else(|e| panic!("{}: {e}: {stdout}", ex.place));
                if let Some(why) = fault(&answer) {
                    panic!("{} (run {}): {why}", ex.place, run + 1);
                }
                remember(&answer, &mut self.ids);
            }
        }
        // Files the example saved are what was asked for, not an error answer.
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let head = std::fs::read(&path).unwrap();
            assert!(!head.starts_with(b"{\"errors\""), "{}: {} holds an error", ex.place, path.display());
        }
    }
}

/// A small customer file for the import example (`@book.csv`).
const BOOK: &str = "name,kind,phone,region\r\n王小明,INDIVIDUAL,13900000077,上海\r\n";

#[tokio::test]
async fn every_example_in_the_docs_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    docs.sort();
    files.extend(docs.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")));
    let (mut ran, mut skipped) = (0, 0);
    for file in &files {
        let (runnable, not_run): (Vec<Example>, Vec<Example>) =
            examples(file).into_iter().partition(|ex| !ex.marker.skip);
        skipped += not_run.len();
        if runnable.is_empty() {
            continue;
        }
        // Each document on its own server with fresh demo data: its examples build on each
        // other (a webhook made, then its deliveries), not on another document's.
        let app = TestApp::spawn().await;
        service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 60, 7).await.expect("demo data");
        let mut runner = Runner::new(&app).await;
        for ex in &runnable {
            match ex.lang.as_str() {
                "graphql" => runner.graphql(ex).await,
                "sh" => runner.shell(ex).await,
                "python" => python_receiver(&app, ex).await,
                other => unreachable!("{other}"),
            }
            ran += 1;
        }
    }
    assert!(ran >= 10, "{ran} examples ran, {skipped} not run");
}

/// The partner guide's webhook receiver, run as written (on a free port rather than 8000)
/// with a webhook's secret: a real delivery from the server reaches it and is accepted, and
/// a forged one is refused.
async fn python_receiver(app: &TestApp, ex: &Example) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(ex.text.contains("8000"), "{}: the receiver's port", ex.place);
    let script = ex.text.replace("8000", &port.to_string());
    let hook = app
        .ok(
            &app.admin_token,
            "mutation($u:String!){createWebhook(input:{name:\"示例接收端\", url:$u, events:[CUSTOMER_CREATED]}){secret webhook{id}}}",
            json!({"u": format!("http://127.0.0.1:{port}/crm-hooks")}),
        )
        .await["createWebhook"]
        .clone();
    let mut child = tokio::process::Command::new("python3")
        .args(["-u", "-c", &script])
        .env("CRM_WEBHOOK_SECRET", hook["secret"].as_str().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // A forged delivery is refused.
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/crm-hooks");
    let mut forged = None;
    for _ in 0..50 {
        let sent = client.post(&url).header("X-CRM-Signature", "t=1,v1=00").body("{}").send().await;
        if let Ok(resp) = sent {
            forged = Some(resp.status().as_u16());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(forged, Some(401), "{}: a forged delivery is refused", ex.place);
    // A real one is accepted: the receiver prints the event's type and data.
    app.create_customer(&app.admin_token, json!({"name": "回调测试客户", "kind": "INDIVIDUAL"})).await;
    let _worker = api::webhooks::spawn(&app.state).expect("the delivery worker");
    let mut stdout = child.stdout.take().unwrap();
    // Bytes, decoded whole: a read may end inside a line or a character.
    let (mut bytes, mut printed) = (Vec::new(), String::new());
    let seen = |p: &str| p.contains("customer.created") && p.contains("回调测试客户");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !seen(&printed) && tokio::time::Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        let read = tokio::time::timeout(std::time::Duration::from_millis(500), {
            use tokio::io::AsyncReadExt;
            stdout.read(&mut buf)
        })
        .await;
        if let Ok(Ok(n)) = read {
            bytes.extend_from_slice(&buf[..n]);
            printed = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    assert!(seen(&printed), "{}: {printed}", ex.place);
    let _ = child.kill().await;
}
