//! Webhooks: events from the transactional outbox, fanned out to the webhooks whose
//! account may read them, rendered as that account reads them, signed, retried with
//! back-off, disabled on 410 or repeated failures, logged, redelivered; and an instance
//! killed mid-delivery loses nothing and repeats only the attempt in flight.
use crate::helpers::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CREATE: &str = "mutation($i:CreateWebhookInput!){createWebhook(input:$i){secret webhook{id version active
    events tiers departmentId apiKeyId account{id}}}}";
const DELIVERIES: &str = "query($w:ID!,$s:[DeliveryStatus!]!=[]){webhookDeliveries(webhookId:$w,status:$s,first:100){
    nodes{id eventId eventType status attempts nextAttemptAt deliveredAt lastStatusCode lastError lastLatencyMs
    log{startedAt finishedAt statusCode error latencyMs}}}}";
const WEBHOOK: &str = "query($id:ID!){webhook(id:$id){id version active disabledReason consecutiveFailures}}";
const UPDATE: &str = "mutation($id:ID!,$v:Int!,$i:UpdateWebhookInput!){updateWebhook(id:$id,version:$v,input:$i){
    id version active disabledReason consecutiveFailures}}";
const REDELIVER: &str = "mutation($id:ID!){redeliverWebhook(deliveryId:$id){id status attempts}}";
const CREATE_KEY: &str = "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret apiKey{id account{id}}}}";

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap().to_string()
    }
}

/// How a receiver answers the next requests.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers (the connection stays open).
    Hang,
}

/// A local HTTP receiver recording every request.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
    /// Hang on the request with this index (0-based), whatever `answer` says.
    hang_at: Arc<Mutex<Option<usize>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            got: Arc::default(),
            answer: Arc::new(Mutex::new(Answer::Status(200))),
            hang_at: Arc::default(),
        };
        let me = r.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(me.clone().serve(socket));
            }
        });
        r
    }

    async fn serve(self, mut socket: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
        let answer = {
            let mut got = self.got.lock().unwrap();
            got.push(Received { headers, body });
            if *self.hang_at.lock().unwrap() == Some(got.len() - 1) {
                Answer::Hang
            } else {
                *self.answer.lock().unwrap()
            }
        };
        match answer {
            Answer::Hang => std::future::pending::<()>().await,
            Answer::Status(code) => {
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        }
    }

    fn answer(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most 60 s) until the receiver has `n` requests.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1200 {
            if self.got.lock().unwrap().len() >= n {
                return self.got();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the receiver got {} requests, not {n}", self.got().len());
    }
}

/// Checks a delivery's signature as a receiver would: `t` within five minutes, and a `v1`
/// that is HMAC-SHA256 of `"{t}.{body}"` under `secret`.
fn signed_by(r: &Received, secret: &str) -> bool {
    let header = &r.headers["x-crm-signature"];
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (chrono::Utc::now().timestamp() - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    sigs.contains(&expected)
}

/// Makes a webhook as `token`; returns (webhook, secret).
async fn webhook(app: &TestApp, token: &str, input: Value) -> (Value, String) {
    let data = app.ok(token, CREATE, json!({"i": input})).await;
    (data["createWebhook"]["webhook"].clone(), data["createWebhook"]["secret"].as_str().unwrap().to_string())
}

async fn deliveries(app: &TestApp, token: &str, hook: &Value) -> Vec<Value> {
    let data = app.ok(token, DELIVERIES, json!({"w": hook["id"]})).await;
    data["webhookDeliveries"]["nodes"].as_array().unwrap().clone()
}

pub(crate) fn worker(app: &TestApp) -> api::webhooks::Worker {
    api::webhooks::Worker::new(&app.state).unwrap()
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[tokio::test]
async fn webhooks_deliver_signed_events_scoped_to_their_account() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("华西", None).await;
    let (_, east_rep) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, west_rep) = app.create_user("west@example.com", "SALES", &west).await;
    // A partner's key reads customers and deals of the east, without contact details or
    // amounts.
    let key = app
        .ok(
            &admin,
            CREATE_KEY,
            json!({"i": {"name": "ERP", "departmentId": east, "grants": [
                {"resource": "CUSTOMER", "action": "READ", "scope": "DEPARTMENT"},
                {"resource": "DEAL", "action": "READ", "scope": "DEPARTMENT"},
            ]}}),
        )
        .await;
    let key_secret = key["createApiKey"]["secret"].as_str().unwrap().to_string();
    let partner = Receiver::start().await;
    let (hook, secret) = webhook(
        &app,
        &key_secret,
        json!({"name": "ERP sync", "url": partner.url, "events": ["CUSTOMER_CREATED", "DEAL_WON"]}),
    )
    .await;
    assert_eq!(hook["apiKeyId"], key["createApiKey"]["apiKey"]["id"]);
    assert_eq!(hook["account"]["id"], key["createApiKey"]["apiKey"]["account"]["id"]);
    assert!(secret.starts_with("whsec_"), "{secret}");
    // An administrator's webhook, narrowed to the west.
    let ops = Receiver::start().await;
    let (ops_hook, ops_secret) = webhook(
        &app,
        &admin,
        json!({"name": "BI", "url": ops.url, "events": ["CUSTOMER_CREATED"], "departmentId": west}),
    )
    .await;

    // Created by a request that carries a W3C trace: its delivery continues it.
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let created: Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&east_rep)
        .header("traceparent", parent)
        .json(&json!({"query": "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}",
                      "variables": {"i": {"name": "东方商贸", "kind": "ORGANIZATION", "phone": "13800138000"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let e = created["data"]["createCustomer"].clone();
    let w = app
        .create_customer(&west_rep, json!({"name": "西部零售", "kind": "ORGANIZATION", "phone": "13900139000"}))
        .await;
    let tick = worker(&app).tick(now()).await.unwrap();
    assert_eq!(tick.dispatched, 2);
    assert_eq!(tick.attempted.len(), 2, "{tick:?}");

    let got = partner.wait_for(1).await;
    assert_eq!(got.len(), 1, "the key hears of the east only");
    let r = &got[0];
    assert!(signed_by(r, &secret), "{:?}", r.headers);
    assert!(!signed_by(r, &ops_secret));
    let body = r.json();
    assert_eq!(body["type"], "customer.created");
    assert_eq!(r.headers["x-crm-event-type"], "customer.created");
    assert_eq!(r.headers["x-crm-event-id"], body["id"].as_str().unwrap());
    assert_eq!(r.headers["content-type"], "application/json");
    let traced = &r.headers["traceparent"];
    assert!(traced.starts_with("00-0af7651916cd43dd8448eb211c80319c-") && traced.ends_with("-01"), "{traced}");
    assert_ne!(traced, parent, "a span of its own in the caller's trace");
    assert_eq!(body["webhookId"], hook["id"]);
    let c = &body["data"]["customer"];
    assert_eq!(c["id"], e["id"]);
    assert_eq!(c["name"], "东方商贸");
    // Contact details are a field group the key was not given.
    assert_eq!(c["phone"], Value::Null, "{body}");

    let got = ops.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert!(signed_by(&got[0], &ops_secret));
    let c = &got[0].json()["data"]["customer"];
    assert_eq!(c["id"], w["id"]);
    assert!(!got[0].headers.contains_key("traceparent"), "no trace where the request sent none");
    assert_eq!(c["phone"], "13900139000", "the administrator reads contact details");

    // A deal won in the east, with its amount hidden from the key.
    let deal = app
        .ok(
            &east_rep,
            "mutation($i:CreateDealInput!){createDeal(input:$i){id version}}",
            json!({"i": {"customerId": e["id"], "title": "年度框架", "amount": "80000.00"}}),
        )
        .await["createDeal"]
        .clone();
    app.ok(
        &east_rep,
        "mutation($i:UpdateDealInput!){updateDeal(input:$i){id}}",
        json!({"i": {"id": deal["id"], "version": deal["version"], "stage": "WON"}}),
    )
    .await;
    worker(&app).tick(now()).await.unwrap();
    let got = partner.wait_for(2).await;
    let won = got[1].json();
    assert_eq!(won["type"], "deal.won");
    assert_eq!(won["data"]["deal"]["id"], deal["id"]);
    assert_eq!(won["data"]["deal"]["stage"], "WON");
    assert_eq!(won["data"]["deal"]["amount"], Value::Null, "amounts are a field group the key was not given");
    assert_eq!(won["data"]["deal"]["customer"]["id"], e["id"]);
    assert_ne!(won["id"], got[0].json()["id"]);

    // The log, as the key reads it.
    let log = deliveries(&app, &key_secret, &hook).await;
    assert_eq!(log.len(), 2);
    for d in &log {
        assert_eq!(d["status"], "DELIVERED", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["lastStatusCode"], 200);
        assert!(d["lastLatencyMs"].is_i64());
        assert_eq!(d["log"].as_array().unwrap().len(), 1);
        assert_eq!(d["log"][0]["statusCode"], 200);
        assert_eq!(d["nextAttemptAt"], Value::Null);
    }
    assert_eq!(log[0]["eventType"], "DEAL_WON");
    assert_eq!(log[0]["eventId"], won["id"]);
    // Nothing more to do: a tick sends nothing twice.
    let tick = worker(&app).tick(now()).await.unwrap();
    assert!(tick.attempted.is_empty() && tick.dispatched == 0, "{tick:?}");
    assert_eq!(partner.got().len(), 2);

    // The administrator's webhook is not the key's to read.
    let resp = app.gql(Some(&key_secret), WEBHOOK, json!({"id": ops_hook["id"]})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");

    // An erasure forgets the kept payloads: a redelivery renders what is left.
    let first = log.iter().find(|d| d["eventType"] == "CUSTOMER_CREATED").unwrap();
    app.ok(
        &admin,
        "mutation($c:ID!){erasePersonalData(customerId:$c, reason:\"客户要求\"){id}}",
        json!({"c": e["id"]}),
    )
    .await;
    app.ok(&key_secret, REDELIVER, json!({"id": first["id"]})).await;
    worker(&app).tick(now()).await.unwrap();
    let got = partner.wait_for(3).await;
    let again = got[2].json();
    assert_eq!(again["id"], got[0].json()["id"], "the same event id");
    assert_ne!(again["data"]["customer"]["name"], "东方商贸", "{again}");
}

#[tokio::test]
async fn every_domain_event_reaches_its_subscriber() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("门店", None).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let all = [
        "CUSTOMER_CREATED",
        "CUSTOMER_UPDATED",
        "CUSTOMER_ASSIGNED",
        "CUSTOMER_MERGED",
        "CUSTOMER_DELETED",
        "DEAL_WON",
        "DEAL_LOST",
        "FEEDBACK_RECEIVED",
        "REMINDER_DUE",
    ];
    let receiver = Receiver::start().await;
    let (hook, _) = webhook(&app, &admin, json!({"name": "all", "url": receiver.url, "events": all})).await;
    let a = app.create_customer(&admin, json!({"name": "甲公司", "kind": "ORGANIZATION"})).await;
    let b = app.create_customer(&admin, json!({"name": "甲公司分部", "kind": "ORGANIZATION"})).await;
    let c = app.create_customer(&admin, json!({"name": "丙", "kind": "INDIVIDUAL"})).await;
    // Delivered before the records change: a payload is rendered at its first attempt, as
    // the account may read the record then.
    worker(&app).tick(now()).await.unwrap();
    let a = app
        .ok(
            &admin,
            "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id version}}",
            json!({"i": {"id": a["id"], "version": a["version"], "region": "上海"}}),
        )
        .await["updateCustomer"]
        .clone();
    app.ok(
        &admin,
        "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}",
        json!({"id": a["id"], "o": rep_id}),
    )
    .await;
    app.ok(
        &admin,
        "mutation($s:ID!,$m:[ID!]!){mergeCustomers(survivorId:$s,mergedIds:$m){customer{id}}}",
        json!({"s": a["id"], "m": [b["id"]]}),
    )
    .await;
    app.ok(&admin, "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": c["id"]})).await;
    for (title, stage, reason) in [("赢", "WON", None), ("输", "LOST", Some("价格"))] {
        app.ok(
            &rep,
            "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
            json!({"i": {"customerId": a["id"], "title": title, "stage": stage, "lostReason": reason, "amount": "100.00"}}),
        )
        .await;
    }
    app.ok(
        &rep,
        "mutation($i:CreateFeedbackInput!){createFeedback(input:$i){id}}",
        json!({"i": {"customerId": a["id"], "kind": "COMPLAINT", "channel": "PHONE", "content": "送货慢"}}),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    app.ok(
        &rep,
        "mutation($c:ID!,$d:Date!){createFollowUp(customerId:$c,dueOn:$d,note:\"回访\"){id}}",
        json!({"c": a["id"], "d": today.to_string()}),
    )
    .await;
    // The administrator's own follow-up: a webhook hears of its account's reminders only
    // (the rep's above quotes the rep's note, which the administrator's `myReminders`
    // does not show either).
    let d = app.create_customer(&admin, json!({"name": "丁", "kind": "INDIVIDUAL"})).await;
    app.ok(
        &admin,
        "mutation($c:ID!,$d:Date!){createFollowUp(customerId:$c,dueOn:$d,note:\"对账\"){id}}",
        json!({"c": d["id"], "d": today.to_string()}),
    )
    .await;
    app.care_tick(chrono::Utc::now() + chrono::Duration::days(1)).await;

    worker(&app).tick(now()).await.unwrap();
    let got = receiver.got();
    let mut kinds: Vec<String> = got.iter().map(Received::event_type).collect();
    kinds.sort();
    kinds.dedup();
    let mut want: Vec<String> = all.iter().map(|k| k.to_ascii_lowercase().replacen('_', ".", 1)).collect();
    want.sort();
    assert_eq!(kinds, want, "{:?}", got.iter().map(Received::event_type).collect::<Vec<_>>());
    let of = |t: &str| got.iter().map(Received::json).filter(|b| b["type"] == t).collect::<Vec<_>>();
    assert_eq!(of("customer.created").len(), 4);
    let merged = &of("customer.merged")[0];
    assert_eq!(merged["data"]["customer"]["id"], b["id"]);
    assert_eq!(merged["data"]["customer"]["mergedInto"], a["id"]);
    assert_eq!(of("customer.deleted")[0]["data"]["customer"]["id"], c["id"]);
    assert_eq!(of("customer.assigned")[0]["data"]["customer"]["ownerId"], json!(rep_id));
    assert_eq!(of("deal.lost")[0]["data"]["deal"]["lostReason"], "价格");
    assert_eq!(of("deal.won")[0]["data"]["deal"]["amount"]["amount"], "100.00");
    assert_eq!(of("feedback.received")[0]["data"]["feedback"]["content"], "送货慢");
    let due = of("reminder.due");
    assert_eq!(due.len(), 1, "only the account's own reminder: {due:?}");
    assert_eq!(due[0]["data"]["reminder"]["rule"], "FOLLOW_UP");
    assert_eq!(due[0]["data"]["customer"]["id"], d["id"]);
    // Every event once, and each delivery's id is its own.
    let ids: std::collections::HashSet<String> = got.iter().map(|r| r.headers["x-crm-event-id"].clone()).collect();
    assert_eq!(ids.len(), got.len());
    assert!(deliveries(&app, &admin, &hook).await.iter().all(|d| d["status"] == "DELIVERED"));
}

#[tokio::test]
async fn failing_receivers_are_retried_with_back_off_and_disabled() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.retry_base = std::time::Duration::from_secs(60);
        c.webhooks.max_attempts = 3;
        c.webhooks.disable_after = 5;
    })
    .await;
    let admin = app.admin_token.clone();
    let receiver = Receiver::start().await;
    receiver.answer(Answer::Status(500));
    let (hook, _) =
        webhook(&app, &admin, json!({"name": "flaky", "url": receiver.url, "events": ["CUSTOMER_CREATED"]})).await;
    app.create_customer(&admin, json!({"name": "一号", "kind": "INDIVIDUAL"})).await;
    let t0 = now();
    let w = worker(&app);
    assert_eq!(w.tick(t0).await.unwrap().attempted.len(), 1);
    let d = &deliveries(&app, &admin, &hook).await[0];
    assert_eq!(d["status"], "PENDING");
    assert_eq!(d["lastStatusCode"], 500);
    assert_eq!(d["lastError"], "the receiver answered 500");
    // Still queued: a redelivery would skip the back-off.
    let resp = app.gql(Some(&admin), REDELIVER, json!({"id": d["id"]})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    let next = chrono::DateTime::parse_from_rfc3339(d["nextAttemptAt"].as_str().unwrap()).unwrap();
    let wait = next.signed_duration_since(t0).num_seconds();
    assert!((59..=61).contains(&wait), "the first retry after the base delay: {wait}");
    // Not before it is due; then after 60 s, and after 120 s more.
    assert!(w.tick(t0 + chrono::Duration::seconds(30)).await.unwrap().attempted.is_empty());
    assert_eq!(w.tick(t0 + chrono::Duration::seconds(61)).await.unwrap().attempted.len(), 1);
    assert!(w.tick(t0 + chrono::Duration::seconds(150)).await.unwrap().attempted.is_empty());
    assert_eq!(w.tick(t0 + chrono::Duration::seconds(185)).await.unwrap().attempted.len(), 1);
    let d = deliveries(&app, &admin, &hook).await[0].clone();
    assert_eq!(d["status"], "FAILED", "three attempts, then it fails: {d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["log"].as_array().unwrap().len(), 3);
    assert_eq!(receiver.got().len(), 3);
    let h = app.ok(&admin, WEBHOOK, json!({"id": hook["id"]})).await["webhook"].clone();
    assert_eq!(h["consecutiveFailures"], 3);
    assert_eq!(h["active"], true);

    // Redelivered once the receiver is fixed: the same event, a fresh round.
    receiver.answer(Answer::Status(204));
    let again = app.ok(&admin, REDELIVER, json!({"id": d["id"]})).await["redeliverWebhook"].clone();
    assert_eq!(again["status"], "PENDING");
    assert_eq!(w.tick(now()).await.unwrap().attempted.len(), 1);
    let d2 = deliveries(&app, &admin, &hook).await[0].clone();
    assert_eq!(d2["status"], "DELIVERED");
    assert_eq!(d2["attempts"], 4);
    let got = receiver.got();
    assert_eq!(got[3].headers["x-crm-event-id"], got[0].headers["x-crm-event-id"]);
    assert_eq!(got[3].body, got[0].body, "the payload is kept, byte for byte");
    let h = app.ok(&admin, WEBHOOK, json!({"id": hook["id"]})).await["webhook"].clone();
    assert_eq!(h["consecutiveFailures"], 0, "a success starts the count over");

    // Failures in a row disable the webhook.
    receiver.answer(Answer::Status(503));
    for name in ["二号", "三号", "四号", "五号", "六号"] {
        app.create_customer(&admin, json!({"name": name, "kind": "INDIVIDUAL"})).await;
    }
    w.tick(now()).await.unwrap();
    let h = app.ok(&admin, WEBHOOK, json!({"id": hook["id"]})).await["webhook"].clone();
    assert_eq!(h["active"], false, "{h}");
    assert_eq!(h["disabledReason"], "5 failed attempts in a row");
    // While disabled, nothing is sent and new events are not queued.
    app.create_customer(&admin, json!({"name": "七号", "kind": "INDIVIDUAL"})).await;
    let sent = receiver.got().len();
    assert!(w.tick(t0 + chrono::Duration::hours(1)).await.unwrap().attempted.is_empty());
    assert_eq!(receiver.got().len(), sent);
    let pending = app.ok(&admin, DELIVERIES, json!({"w": hook["id"], "s": ["PENDING"]})).await;
    let pending = pending["webhookDeliveries"]["nodes"].as_array().unwrap().clone();
    assert_eq!(pending.len(), 5, "the undelivered wait; the event after disabling is not queued");
    let resp = app.gql(Some(&admin), REDELIVER, json!({"id": pending[0]["id"]})).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");

    // Enabled again, the waiting deliveries go out; a 410 disables at once.
    receiver.answer(Answer::Status(410));
    let h = app
        .ok(&admin, UPDATE, json!({"id": hook["id"], "v": h["version"], "i": {"active": true}}))
        .await["updateWebhook"]
        .clone();
    assert_eq!(h["consecutiveFailures"], 0);
    w.tick(t0 + chrono::Duration::hours(2)).await.unwrap();
    let h = app.ok(&admin, WEBHOOK, json!({"id": hook["id"]})).await["webhook"].clone();
    assert_eq!(h["active"], false);
    assert_eq!(h["disabledReason"], "the receiver answered 410 Gone");
    let failed = app.ok(&admin, DELIVERIES, json!({"w": hook["id"], "s": ["FAILED"]})).await;
    assert!(!failed["webhookDeliveries"]["nodes"].as_array().unwrap().is_empty());
    // A stale version is a conflict.
    let resp = app.gql(Some(&admin), UPDATE, json!({"id": hook["id"], "v": 1, "i": {"name": "x"}})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
}

#[tokio::test]
async fn webhooks_are_managed_by_administrators_and_their_own_keys() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("渠道", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let receiver = Receiver::start().await;
    let input = |url: &str| json!({"name": "hook", "url": url, "events": ["CUSTOMER_CREATED"]});
    let resp = app.gql(Some(&rep), CREATE, json!({"i": input(&receiver.url)})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");

    let key = |name: &str| json!({"i": {"name": name, "grants": [{"resource": "CUSTOMER", "action": "READ", "scope": "ALL"}]}});
    let k1 = app.ok(&admin, CREATE_KEY, key("一")).await["createApiKey"].clone();
    let k2 = app.ok(&admin, CREATE_KEY, key("二")).await["createApiKey"].clone();
    let (s1, s2) = (k1["secret"].as_str().unwrap(), k2["secret"].as_str().unwrap());
    let (h1, _) = webhook(&app, s1, input(&receiver.url)).await;
    // Another key's webhook is invisible, and a key makes none for another.
    let resp = app.gql(Some(s2), WEBHOOK, json!({"id": h1["id"]})).await;
    assert_eq!(code(&resp), "NOT_FOUND");
    let mut other = input(&receiver.url);
    other["apiKeyId"] = k1["apiKey"]["id"].clone();
    let resp = app.gql(Some(s2), CREATE, json!({"i": other})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let mut unknown = input(&receiver.url);
    unknown["apiKeyId"] = json!(uuid::Uuid::new_v4());
    let resp = app.gql(Some(&admin), CREATE, json!({"i": unknown})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    let list = app.ok(s2, "{webhooks{nodes{id}}}", json!({})).await;
    assert_eq!(list["webhooks"]["nodes"], json!([]));
    // An administrator sees every webhook and makes one for a key.
    let (h2, _) = webhook(&app, &admin, other).await;
    assert_eq!(h2["account"]["id"], k1["apiKey"]["account"]["id"]);
    let list = app.ok(&admin, "{webhooks{nodes{id}}}", json!({})).await;
    assert_eq!(list["webhooks"]["nodes"].as_array().unwrap().len(), 2);
    let list = app.ok(s1, "{webhooks{nodes{id}}}", json!({})).await;
    assert_eq!(list["webhooks"]["nodes"].as_array().unwrap().len(), 2, "both speak for key 一");

    // Every bad field at once.
    let resp = app
        .gql(
            Some(&admin),
            CREATE,
            json!({"i": {"name": " ", "url": "ftp://example.com/x", "events": [], "departmentId": uuid::Uuid::new_v4()}}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    assert_eq!(invalid_fields(&resp), ["name", "url", "events", "departmentId"]);

    // Rotation: the old secret signs beside the new one for a day.
    let (h3, old) = webhook(&app, &admin, input(&receiver.url)).await;
    let rotated = app
        .ok(&admin, "mutation($id:ID!){rotateWebhookSecret(id:$id){secret webhook{id}}}", json!({"id": h3["id"]}))
        .await;
    let new = rotated["rotateWebhookSecret"]["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    app.create_customer(&admin, json!({"name": "轮换", "kind": "INDIVIDUAL"})).await;
    worker(&app).tick(now()).await.unwrap();
    let got = receiver.got();
    let to_h3: Vec<&Received> =
        got.iter().filter(|r| r.headers["x-crm-webhook-id"] == h3["id"].as_str().unwrap()).collect();
    assert_eq!(to_h3.len(), 1);
    assert!(signed_by(to_h3[0], &new) && signed_by(to_h3[0], &old));
    assert_eq!(to_h3[0].headers["x-crm-signature"].matches("v1=").count(), 2);

    // Revoking a key stops its webhooks.
    app.ok(&admin, "mutation($id:ID!){revokeApiKey(id:$id){id}}", json!({"id": k1["apiKey"]["id"]})).await;
    let h = app.ok(&admin, WEBHOOK, json!({"id": h1["id"]})).await["webhook"].clone();
    assert_eq!(h["active"], false);
    assert_eq!(h["disabledReason"], "its API key was revoked");
    // A person's webhook stops when the person leaves.
    let (boss_id, boss) = app.create_user("boss@example.com", "ADMIN", &dept).await;
    let (h4, _) = webhook(&app, &boss, input(&receiver.url)).await;
    app.ok(&admin, "mutation($id:ID!){deactivateUser(id:$id){id}}", json!({"id": boss_id})).await;
    let h = app.ok(&admin, WEBHOOK, json!({"id": h4["id"]})).await["webhook"].clone();
    assert_eq!(h["active"], false);
    assert_eq!(h["disabledReason"], "its account was deactivated");
    // Deleted with its log.
    app.ok(&admin, "mutation($id:ID!){deleteWebhook(id:$id){id}}", json!({"id": h3["id"]})).await;
    let resp = app.gql(Some(&admin), DELIVERIES, json!({"w": h3["id"]})).await;
    assert_eq!(code(&resp), "NOT_FOUND");

    // By default only https to public addresses.
    let strict = TestApp::spawn_with(|c| c.webhooks.allow_private = false).await;
    for url in
        ["http://hooks.example.com/x", "https://127.0.0.1/x", "https://169.254.169.254/latest", "https://localhost/x"]
    {
        let resp = strict.gql(Some(&strict.admin_token), CREATE, json!({"i": input(url)})).await;
        assert_eq!(code(&resp), "VALIDATION", "{url}: {resp}");
        assert_eq!(invalid_fields(&resp), ["url"]);
    }
    strict.ok(&strict.admin_token, CREATE, json!({"i": input("https://hooks.example.com/crm")})).await;
}

/// Instance A delivers; the receiver holds one request open; A is killed (its runtime
/// dropped, as a process dies: no shutdown code runs); instance B takes the attempt over
/// when A's lease ends. Every event arrives; only the one in flight at the kill arrives
/// twice, with the same event id and body.
#[tokio::test]
async fn an_instance_killed_mid_delivery_loses_nothing_and_repeats_only_the_attempt_in_flight() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let receiver = Receiver::start().await;
    let (hook, secret) =
        webhook(&app, &admin, json!({"name": "kill", "url": receiver.url, "events": ["CUSTOMER_CREATED"]})).await;
    for i in 0..6 {
        app.create_customer(&admin, json!({"name": format!("客户{i}"), "kind": "INDIVIDUAL"})).await;
    }
    *receiver.hang_at.lock().unwrap() = Some(2);
    let timeout = |c: &mut api::config::Config| c.webhooks.timeout = std::time::Duration::from_secs(3);

    // Instance A on a runtime of its own, with its worker running.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut config = test_config(app.database_url.clone());
    timeout(&mut config);
    let started = runtime.spawn(async move {
        let state = api::prepare(&config).await.expect("prepare");
        api::webhooks::spawn(&state).expect("worker");
        std::future::pending::<()>().await;
    });
    // The hanging request has arrived and the others are recorded as delivered.
    receiver.wait_for(6).await;
    for _ in 0..200 {
        let done = app.ok(&admin, DELIVERIES, json!({"w": hook["id"], "s": ["DELIVERED"]})).await;
        if done["webhookDeliveries"]["nodes"].as_array().unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let in_flight = receiver.got()[2].clone();
    runtime.shutdown_background();
    drop(started);
    let before = app.ok(&admin, DELIVERIES, json!({"w": hook["id"]})).await;
    let pending: Vec<Value> = before["webhookDeliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "PENDING")
        .cloned()
        .collect();
    assert_eq!(pending.len(), 1, "only the attempt in flight is unsettled: {before}");

    // Instance B takes over once A's lease has ended.
    receiver.answer(Answer::Status(200));
    let b = app.another_instance(timeout).await;
    let _worker = api::webhooks::spawn(&b.state).unwrap();
    let got = receiver.wait_for(7).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let got_all = receiver.got();
    assert_eq!(got_all.len(), 7, "nothing else is sent again");
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in &got {
        assert!(signed_by(r, &secret));
        *count.entry(r.headers["x-crm-event-id"].clone()).or_default() += 1;
    }
    assert_eq!(count.len(), 6, "no event lost");
    let twice: Vec<&String> = count.iter().filter(|(_, n)| **n == 2).map(|(id, _)| id).collect();
    assert_eq!(twice, [&in_flight.headers["x-crm-event-id"]], "only the one in flight came twice");
    assert_eq!(got[6].body, in_flight.body, "the same payload");
    let after = deliveries(&app, &admin, &hook).await;
    assert!(after.iter().all(|d| d["status"] == "DELIVERED"), "{after:?}");
    let retried = after.iter().find(|d| d["id"] == pending[0]["id"]).unwrap();
    assert_eq!(retried["attempts"], 2);
    let log = retried["log"].as_array().unwrap();
    assert_eq!(log[0]["statusCode"], 200);
    assert_eq!(log[1]["finishedAt"], Value::Null, "the attempt cut short by the kill: {log:?}");
}
