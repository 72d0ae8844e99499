//! /graphql/ws speaks graphql-transport-ws and authenticates in `connection_init`.
use crate::helpers::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn connect(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    ws
}

/// The next text message as JSON, or the close code.
pub(crate) async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Result<Value, u16> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await.expect("server answers") {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code)).unwrap_or(1005)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(1006),
        }
    }
}

#[tokio::test]
async fn connection_init_authenticates() {
    let app = TestApp::spawn().await;

    let mut ws = connect(&app).await;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}})
            .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await, Ok(json!({"type": "connection_ack"})));

    let mut ws = connect(&app).await;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"authorization": "Bearer forged"}}).to_string(),
    ))
    .await
    .unwrap();
    assert!(next(&mut ws).await.is_err(), "a bad token is not acknowledged");

    let mut ws = connect(&app).await;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    assert!(next(&mut ws).await.is_err(), "no token is not acknowledged");
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect_to(addr: std::net::SocketAddr) -> Ws {
    let mut req = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.expect("websocket connects").0
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Connects and authenticates as `token`.
pub(crate) async fn ready(addr: std::net::SocketAddr, token: &str) -> Ws {
    let mut ws = connect_to(addr).await;
    send(&mut ws, json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
    assert_eq!(next(&mut ws).await, Ok(json!({"type": "connection_ack"})));
    ws
}

pub(crate) const NEW_LEAD: &str = "subscription{newLead{id name ownerId}}";

/// Subscribes and proves the subscription is live (a ping round trip after it).
pub(crate) async fn subscribe(ws: &mut Ws, id: &str, query: &str) {
    send(ws, json!({"id": id, "type": "subscribe", "payload": {"query": query}})).await;
    send(ws, json!({"type": "ping"})).await;
    assert_eq!(next(ws).await, Ok(json!({"type": "pong"})));
}

/// The next `next` payload's data, skipping nothing else silently.
pub(crate) async fn event(ws: &mut Ws) -> Value {
    let msg = next(ws).await.expect("an event");
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"].clone()
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let app = TestApp::spawn_with(|c| c.ws_init_timeout_ms = 300).await;

    // Subscribe before the ack: 4401.
    let mut ws = connect_to(app.addr).await;
    send(&mut ws, json!({"id": "1", "type": "subscribe", "payload": {"query": NEW_LEAD}})).await;
    assert_eq!(next(&mut ws).await, Err(4401));

    // No connection_init within the timeout: 4408.
    let mut ws = connect_to(app.addr).await;
    assert_eq!(next(&mut ws).await, Err(4408));

    // A second connection_init: 4429.
    let mut ws = ready(app.addr, &app.admin_token).await;
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}}),
    )
    .await;
    assert_eq!(next(&mut ws).await, Err(4429));

    // A subscription id already in use: 4409.
    let mut ws = ready(app.addr, &app.admin_token).await;
    subscribe(&mut ws, "same", NEW_LEAD).await;
    send(&mut ws, json!({"id": "same", "type": "subscribe", "payload": {"query": NEW_LEAD}})).await;
    assert_eq!(next(&mut ws).await, Err(4409));

    // A bad, expired or missing token: 4403.
    for payload in [json!({"authorization": "Bearer forged"}), json!({"token": ""}), json!({})] {
        let mut ws = connect_to(app.addr).await;
        send(&mut ws, json!({"type": "connection_init", "payload": payload})).await;
        assert_eq!(next(&mut ws).await, Err(4403), "{payload}");
    }
    let expired = {
        let claims = json!({"sub": uuid::Uuid::nil(), "role": "ADMIN", "exp": 1_000_000_000, "iat": 999_999_000, "iss": ISSUER, "aud": AUDIENCE});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let mut ws = connect_to(app.addr).await;
    send(&mut ws, json!({"type": "connection_init", "payload": {"token": expired}})).await;
    assert_eq!(next(&mut ws).await, Err(4403));

    // Garbage: 4400.
    let mut ws = ready(app.addr, &app.admin_token).await;
    ws.send(Message::text("not json")).await.unwrap();
    assert_eq!(next(&mut ws).await, Err(4400));

    // At most 100 operations at once on one connection: the 101st is refused by id.
    let mut ws = ready(app.addr, &app.admin_token).await;
    for i in 0..100 {
        send(&mut ws, json!({"id": format!("s{i}"), "type": "subscribe", "payload": {"query": NEW_LEAD}})).await;
    }
    send(&mut ws, json!({"id": "one-too-many", "type": "subscribe", "payload": {"query": NEW_LEAD}})).await;
    let refused = next(&mut ws).await.unwrap();
    assert_eq!((refused["type"].clone(), refused["id"].clone()), (json!("error"), json!("one-too-many")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST");

    // The HTTP limits hold here too: a query too deep is refused with an error message
    // for its id, and the connection stays open.
    let mut ws = ready(app.addr, &app.admin_token).await;
    let deep = format!("query{{me{{department{{{}id{}}}}}}}", "parent{".repeat(14), "}".repeat(14));
    send(&mut ws, json!({"id": "deep", "type": "subscribe", "payload": {"query": deep}})).await;
    let refused = next(&mut ws).await.unwrap();
    assert_eq!((refused["type"].clone(), refused["id"].clone()), (json!("error"), json!("deep")), "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST", "{refused}");
    send(&mut ws, json!({"id": "me", "type": "subscribe", "payload": {"query": "{me{email}}"}})).await;
    assert_eq!(event(&mut ws).await["me"]["email"], ADMIN_EMAIL);
    assert_eq!(next(&mut ws).await, Ok(json!({"id": "me", "type": "complete"})));
}

#[tokio::test]
async fn new_leads_reach_only_subscribers_who_may_read_them() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep_east) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, rep_west) = app.create_user("west@example.com", "SALES", &west).await;
    let (_, manager_east) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;

    let mut east_ws = ready(app.addr, &rep_east).await;
    let mut west_ws = ready(app.addr, &rep_west).await;
    let mut boss_ws = ready(app.addr, &manager_east).await;
    for ws in [&mut east_ws, &mut west_ws, &mut boss_ws] {
        subscribe(ws, "leads", NEW_LEAD).await;
    }
    // The analyst may not read customers at all: the subscription is refused.
    let mut bi_ws = ready(app.addr, &analyst).await;
    send(&mut bi_ws, json!({"id": "leads", "type": "subscribe", "payload": {"query": NEW_LEAD}})).await;
    let refused = next(&mut bi_ws).await.unwrap();
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "FORBIDDEN", "{refused}");

    let lead =
        app.create_customer(&rep_east, json!({"name": "新线索", "kind": "INDIVIDUAL", "phone": "13900000001"})).await;
    assert_eq!(event(&mut east_ws).await["newLead"]["id"], lead["id"]);
    assert_eq!(event(&mut boss_ws).await["newLead"]["id"], lead["id"], "the manager of the department sees it");
    // The west rep gets their own next lead first: the east lead was never sent to them.
    let own =
        app.create_customer(&rep_west, json!({"name": "西部线索", "kind": "INDIVIDUAL", "phone": "13900000002"})).await;
    assert_eq!(event(&mut west_ws).await["newLead"]["id"], own["id"]);

    // `complete` from the client ends the subscription: no more events on that id.
    send(&mut east_ws, json!({"id": "leads", "type": "complete"})).await;
    app.create_customer(&rep_east, json!({"name": "再一个", "kind": "INDIVIDUAL", "phone": "13900000003"})).await;
    send(&mut east_ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut east_ws).await, Ok(json!({"type": "pong"})));
}

#[tokio::test]
async fn shared_lead_views_keep_each_subscribers_scope_and_id() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let (_, rep_a) = app.create_user("a@example.com", "SALES", &east).await;
    let (_, rep_b) = app.create_user("b@example.com", "SALES", &east).await;
    let boss_1 = app.admin_token.clone();
    // A second administrator in the first one's department: the same rights.
    let me = app.ok(&boss_1, "{me{departmentId}}", json!({})).await;
    let root = me["me"]["departmentId"].as_str().unwrap().to_string();
    let (_, boss_2) = app.create_user("admin2@example.com", "ADMIN", &root).await;
    let query = "subscription{newLead{id name owner{email}}}";

    // Reps with the same rights still read different rows (their own): no shared copy.
    let mut a = ready(app.addr, &rep_a).await;
    let mut b = ready(app.addr, &rep_b).await;
    subscribe(&mut a, "leads", query).await;
    subscribe(&mut b, "leads", query).await;
    // Administrators read the same (everything, every account): one copy, each in its
    // own envelope.
    let mut m1 = ready(app.addr, &boss_1).await;
    let mut m2 = ready(app.addr, &boss_2).await;
    subscribe(&mut m1, "x", query).await;
    subscribe(&mut m1, "y", query).await;
    subscribe(&mut m2, "z", query).await;

    let lead =
        app.create_customer(&rep_a, json!({"name": "A的线索", "kind": "INDIVIDUAL", "phone": "13900000011"})).await;
    let want = json!({"newLead": {"id": lead["id"], "name": "A的线索", "owner": {"email": "a@example.com"}}});
    assert_eq!(event(&mut a).await, want);
    let mut ids = Vec::new();
    for k in 0..3 {
        let msg = next(if k < 2 { &mut m1 } else { &mut m2 }).await.unwrap();
        assert_eq!(msg["type"], "next", "{msg}");
        assert_eq!(msg["payload"]["data"], want);
        ids.push(msg["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    assert_eq!(ids, ["x", "y", "z"]);
    assert_eq!(app.state.views.running(), 3, "one view per rep, one for both administrators");
    // B never got A's lead: its next event is its own.
    let own =
        app.create_customer(&rep_b, json!({"name": "B的线索", "kind": "INDIVIDUAL", "phone": "13900000012"})).await;
    assert_eq!(event(&mut b).await["newLead"]["id"], own["id"]);
    assert_eq!(event(&mut m2).await["newLead"]["id"], own["id"]);

    // One member leaving ends nothing for the others.
    send(&mut m2, json!({"id": "z", "type": "complete"})).await;
    for _ in 0..2 {
        assert_eq!(event(&mut m1).await["newLead"]["id"], own["id"]);
    }
    let third =
        app.create_customer(&rep_a, json!({"name": "第三条", "kind": "INDIVIDUAL", "phone": "13900000013"})).await;
    assert_eq!(event(&mut m1).await["newLead"]["id"], third["id"]);
    assert_eq!(event(&mut m1).await["newLead"]["id"], third["id"]);
    send(&mut m2, json!({"type": "ping"})).await;
    assert_eq!(next(&mut m2).await, Ok(json!({"type": "pong"})), "no event after complete");

    // A refused shared subscription is refused for each member under its own id.
    for (ws, id) in [(&mut m1, "bad1"), (&mut m2, "bad2")] {
        send(ws, json!({"id": id, "type": "subscribe", "payload": {"query": "subscription{newLead{nope}}"}})).await;
        let refused = next(ws).await.unwrap();
        assert_eq!((refused["type"].as_str(), refused["id"].as_str()), (Some("error"), Some(id)), "{refused}");
        assert_eq!(refused["payload"][0]["extensions"]["code"], "BAD_REQUEST", "{refused}");
    }

    // Views go with their last member, refused ones included: nothing is left behind.
    for ws in [a, b, m1, m2] {
        drop(ws);
    }
    for _ in 0..100 {
        if app.state.views.running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.state.views.running(), 0, "views outlived their subscribers");
}

#[tokio::test]
async fn a_subscription_reads_the_classification_policy_as_it_is_at_each_event() {
    let app = TestApp::spawn().await;
    let query = "subscription{newLead{name revenue{currency}}}";
    // Two sockets in one shared view, which lives as long as they do.
    let mut a = ready(app.addr, &app.admin_token).await;
    let mut b = ready(app.addr, &app.admin_token).await;
    subscribe(&mut a, "s", query).await;
    subscribe(&mut b, "s", query).await;

    app.create_customer(&app.admin_token, json!({"name": "一", "kind": "INDIVIDUAL"})).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(event(ws).await["newLead"]["revenue"]["currency"], "CNY");
    }
    let update = "mutation($i:ClassificationPolicyInput!){updateClassificationPolicy(input:$i){version}}";
    app.ok(&app.admin_token, update, json!({"i": {"version": 1, "baseCurrency": "USD"}})).await;
    app.create_customer(&app.admin_token, json!({"name": "二", "kind": "INDIVIDUAL"})).await;
    for ws in [&mut a, &mut b] {
        let lead = event(ws).await;
        assert_eq!(lead["newLead"]["name"], "二");
        assert_eq!(lead["newLead"]["revenue"]["currency"], "USD", "a policy cached at subscribe time");
    }
}

#[tokio::test]
async fn due_reminders_reach_their_assignee() {
    let app = TestApp::spawn().await;
    let d = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &d).await;
    let (_, other) = app.create_user("other@example.com", "SALES", &d).await;
    let c = app.create_customer(&rep, json!({"name": "王女士", "kind": "INDIVIDUAL", "phone": "13800000001"})).await;
    let closed = chrono::Utc::now().date_naive() - chrono::Duration::days(5);
    app.ok(
        &app.admin_token,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": c["id"], "title": "订单", "stage": "WON", "amount": "100.00", "actualCloseDate": closed.to_string()}}),
    )
    .await;
    let mut rep_ws = ready(app.addr, &rep).await;
    let mut other_ws = ready(app.addr, &other).await;
    subscribe(&mut rep_ws, "due", "subscription{reminderDue{id rule customer{name}}}").await;
    subscribe(&mut other_ws, "due", "subscription{reminderDue{id}}").await;

    let when = (closed + chrono::Duration::days(2)).and_hms_opt(1, 0, 0).unwrap().and_utc();
    let tick = app.care_tick(when).await;
    assert_eq!(tick.delivered.len(), 1);
    let due = event(&mut rep_ws).await;
    assert_eq!(due["reminderDue"]["rule"], "DEAL_GREETING");
    assert_eq!(due["reminderDue"]["customer"]["name"], "王女士");
    send(&mut other_ws, json!({"type": "ping"})).await;
    assert_eq!(next(&mut other_ws).await, Ok(json!({"type": "pong"})), "another rep hears nothing");
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    let mut app = TestApp::spawn().await;
    let mut ws = ready(app.addr, &app.admin_token).await;
    subscribe(&mut ws, "leads", NEW_LEAD).await;
    let stopping = app.stop();
    let (_, code) = tokio::join!(stopping, next(&mut ws));
    assert_eq!(code, Err(1001));
}

/// Not a test on its own: the second server process of the test below. It serves the
/// database named by CRM_CHILD_DATABASE_URL, prints its address, and stops when its
/// standard input closes.
#[tokio::test]
#[ignore = "started as a child process by a_lead_on_one_instance_reaches_a_subscriber_on_another"]
async fn child_server() {
    let Ok(url) = std::env::var("CRM_CHILD_DATABASE_URL") else { return };
    let config = test_config(url);
    let state = api::prepare(&config).await.expect("prepare");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("LISTENING {}", listener.local_addr().unwrap());
    let stdin_closed = async {
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {}
        })
        .await;
    };
    api::serve_on(listener, state, stdin_closed).await.unwrap();
}

/// Two server processes on one PostgreSQL: a lead created over HTTP on the first reaches
/// a subscriber of the second (LISTEN/NOTIFY); a rep of another department hears nothing.
#[tokio::test]
async fn a_lead_on_one_instance_reaches_a_subscriber_on_another() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |u| u.is_empty()) {
        eprintln!("SQLite runs one instance; this test needs TEST_DATABASE_URL (PostgreSQL)");
        return;
    }
    use std::io::BufRead;
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep_east) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, manager_east) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let (_, rep_west) = app.create_user("west@example.com", "SALES", &west).await;

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ws::child_server", "--ignored", "--nocapture", "--test-threads=1"])
        .env("CRM_CHILD_DATABASE_URL", &app.database_url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the second server process");
    // libtest prints around the child's line ("test ws::child_server ... LISTENING <addr>"),
    // so look for the marker anywhere; keep draining the pipe afterwards.
    let stdout = child.stdout.take().unwrap();
    let (found, address) = tokio::sync::oneshot::channel::<std::net::SocketAddr>();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.split("LISTENING ").nth(1).and_then(|a| a.trim().parse().ok())
                && let Some(tx) = found.take()
            {
                let _ = tx.send(a);
            }
        }
    });
    let addr = tokio::time::timeout(std::time::Duration::from_secs(60), address)
        .await
        .expect("the child starts")
        .expect("the child prints its address");
    assert_ne!(addr, app.addr);

    let mut boss = ready(addr, &manager_east).await;
    let mut west_ws = ready(addr, &rep_west).await;
    subscribe(&mut boss, "leads", NEW_LEAD).await;
    subscribe(&mut west_ws, "leads", NEW_LEAD).await;
    let lead = app
        .create_customer(&rep_east, json!({"name": "跨实例线索", "kind": "INDIVIDUAL", "phone": "13900000009"}))
        .await;
    assert_eq!(event(&mut boss).await["newLead"]["id"], lead["id"], "raised on instance 1, delivered by instance 2");
    let own =
        app.create_customer(&rep_west, json!({"name": "西部线索", "kind": "INDIVIDUAL", "phone": "13900000010"})).await;
    assert_eq!(event(&mut west_ws).await["newLead"]["id"], own["id"], "the east lead never reached the west rep");

    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "the child server stopped cleanly: {status}");
}

/// A socket follows its token: it closes with 4403 when the token expires (it kept working
/// after expiry before).
#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let app = TestApp::spawn().await;
    let me = app.ok(&app.admin_token, "{me{id}}", json!({})).await["me"]["id"].clone();
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"sub": me, "role": "ADMIN", "dept": "x", "iat": now, "exp": now + 2, "iss": ISSUER, "aud": AUDIENCE});
    let token = encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    let mut ws = ready(app.addr, &token).await;
    subscribe(&mut ws, "leads", NEW_LEAD).await;
    // Nothing else happens on the socket: the next thing it sees is the close at expiry.
    assert_eq!(next(&mut ws).await, Err(4403));
}

/// A socket follows its user: deactivation, a role change or a password change closes it
/// (4403) at the next re-check or operation; before, a deactivated user's socket kept
/// receiving leads and running operations.
#[tokio::test]
async fn a_socket_follows_its_user() {
    let app = TestApp::spawn_with(|c| c.ws_recheck_ms = 200).await;
    let dept = app.create_department("华东", None).await;
    let (rep, rep_token) = app.create_user("rep@example.com", "SALES", &dept).await;
    let (other, other_token) = app.create_user("other@example.com", "SALES", &dept).await;
    let (third, third_token) = app.create_user("third@example.com", "SALES", &dept).await;

    // Deactivated: closed by the periodic re-check.
    let mut ws = ready(app.addr, &rep_token).await;
    subscribe(&mut ws, "leads", NEW_LEAD).await;
    app.ok(&app.admin_token, "mutation($id:ID!){deactivateUser(id:$id){active}}", json!({"id": rep})).await;
    assert_eq!(next(&mut ws).await, Err(4403));

    // Demoted to another role: closed, whatever the socket does next.
    let mut ws = ready(app.addr, &other_token).await;
    let update = "mutation($i:UpdateUserInput!){updateUser(input:$i){version}}";
    app.ok(&app.admin_token, update, json!({"i": {"id": other, "version": 1, "role": "ANALYST"}})).await;
    send(&mut ws, json!({"id": "q", "type": "subscribe", "payload": {"query": "{customers{totalCount}}"}})).await;
    assert_eq!(next(&mut ws).await, Err(4403));

    // A new password ends the sessions of the old one; a rename does not.
    let mut ws = ready(app.addr, &third_token).await;
    app.ok(&app.admin_token, update, json!({"i": {"id": third, "version": 1, "name": "新名字"}})).await;
    send(&mut ws, json!({"id": "me", "type": "subscribe", "payload": {"query": "{me{name}}"}})).await;
    assert_eq!(event(&mut ws).await["me"]["name"], "新名字");
    assert_eq!(next(&mut ws).await, Ok(json!({"id": "me", "type": "complete"})));
    app.ok(&app.admin_token, update, json!({"i": {"id": third, "version": 2, "password": "a brand new secret"}})).await;
    assert_eq!(next(&mut ws).await, Err(4403));

    // A grant of the role changes (setRolePermission): its sockets close; the next
    // connection runs with the new grant.
    let (_, service) = app.create_user("service@example.com", "SERVICE", &dept).await;
    let mut ws = ready(app.addr, &service).await;
    subscribe(&mut ws, "leads", NEW_LEAD).await;
    let grant = json!({"i": {"role": "SERVICE", "resource": "PERSONAL_DETAILS", "action": "READ", "scope": "ALL"}});
    app.ok(&app.admin_token, "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}", grant).await;
    assert_eq!(next(&mut ws).await, Err(4403));
}
