//! What an operator sees of a running server: one log line per request.
use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the server logs under `crm::request` in this test process, as JSON lines.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("crm::request=info")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines_of(request_id: &str) -> Vec<Value> {
    let all = captured().lock().unwrap().clone();
    String::from_utf8_lossy(&all)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn every_request_has_an_id_and_one_log_line_without_secrets() {
    captured();
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东", None).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    app.create_customer(&rep, json!({"name": "日志里不该出现的客户", "kind": "INDIVIDUAL", "phone": "13911112222"}))
        .await;
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let id = format!("it-{}", uuid::Uuid::new_v4().simple());

    // A named query with an error, from a caller that sends its own id and a trace.
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&rep)
        .header("x-request-id", &id)
        .header("traceparent", trace)
        .json(&json!({"query": "query Find($n:String!){customers(filter:{name:{eq:$n}}){totalCount} customer(id:\"nope\"){id}}",
                      "operationName": "Find", "variables": {"n": "日志里不该出现的客户"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], id.as_str(), "the caller's id comes back");
    resp.text().await.unwrap();
    let lines = lines_of(&id);
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let line = &lines[0];
    assert_eq!(
        (&line["path"], &line["status"], &line["operation"], &line["user"], &line["codes"]),
        (&json!("/graphql"), &json!(200), &json!("Find"), &json!(rep_id), &json!("VALIDATION")),
        "{line}"
    );
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(line["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");

    // A login and a CSV export with a filter naming a customer: neither the password, the
    // token nor the customer's name reaches the log.
    let login_id = format!("it-{}", uuid::Uuid::new_v4().simple());
    app.client
        .post(app.url("/graphql"))
        .header("x-request-id", &login_id)
        .json(&json!({"query": "mutation{login(email:\"rep@example.com\",password:\"wrong-pass-日志\"){accessToken}}"}))
        .send()
        .await
        .unwrap();
    let export_id = format!("it-{}", uuid::Uuid::new_v4().simple());
    let export = app
        .client
        .get(format!(
            "{}?filter=%7B%22name%22%3A%7B%22eq%22%3A%22{}%22%7D%7D",
            app.url("/exports/customers.csv"),
            "%E6%97%A5%E5%BF%97%E9%87%8C%E4%B8%8D%E8%AF%A5%E5%87%BA%E7%8E%B0%E7%9A%84%E5%AE%A2%E6%88%B7"
        ))
        .bearer_auth(&rep)
        .header("x-request-id", &export_id)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    export.text().await.unwrap();
    let export_line = &lines_of(&export_id)[0];
    assert_eq!((&export_line["path"], &export_line["user"]), (&json!("/exports/customers.csv"), &json!(rep_id)));
    assert_eq!(lines_of(&login_id)[0]["codes"], "UNAUTHENTICATED");
    let log = String::from_utf8_lossy(&captured().lock().unwrap()).into_owned();
    for secret in ["wrong-pass-日志", "日志里不该出现的客户", "13911112222", rep.as_str()] {
        assert!(!log.contains(secret), "{secret} is not logged");
    }

    // Without an id (or with a bad one) the server makes one and returns it.
    let made = app.client.get(app.url("/healthz")).header("x-request-id", "two words\t").send().await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    assert_eq!(lines_of(&made).len(), 1);
}

/// `GET /metrics`: behind its token on the main port, in the Prometheus text format, with
/// the requests, the pool, sockets, logins and refusals counted.
#[tokio::test]
async fn metrics_are_scraped_with_their_token() {
    let app = TestApp::spawn().await;
    let scrape = |token: Option<&'static str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    for token in [None, Some("wrong-token-wrong-token")] {
        let refused = scrape(token).await.unwrap();
        assert_eq!(refused.status(), 401);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    }

    // Something to count: a named query, a failed login, an operation over the limits.
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"query": "query MetricsProbe{me{id}}", "operationName": "MetricsProbe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.gql(None, "mutation{login(email:\"nobody@example.com\",password:\"wrong-password\"){accessToken}}", json!({}))
        .await;
    let deep = format!("{{{}}}", (0..101).map(|i| format!("a{i}: me{{id}} ")).collect::<String>());
    app.gql(Some(&app.admin_token), &deep, json!({})).await;

    let resp = scrape(Some(METRICS_TOKEN)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    for needle in [
        "# TYPE crm_http_requests_total counter",
        "operation=\"MetricsProbe\"",
        "route=\"/graphql\"",
        "# TYPE crm_http_request_duration_seconds histogram",
        "crm_http_request_duration_seconds_bucket{",
        "crm_db_pool_connections{pool=\"main\",state=\"idle\"}",
        "crm_webhook_queue_depth",
        "crm_logins_total{outcome=\"failure\"}",
        "crm_refused_total{limit=\"operation_limits\"}",
    ] {
        assert!(text.contains(needle), "{needle} in the scrape:\n{text}");
    }
}

/// Without `CRM_METRICS_TOKEN` the main port has no `/metrics` at all.
#[tokio::test]
async fn without_a_token_the_main_port_serves_no_metrics() {
    let app = TestApp::spawn_with(|c| c.metrics_token = None).await;
    let resp = app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");
}
