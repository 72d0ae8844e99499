//! The HTTP edge: slow and idle clients, connection and per-user caps, the request
//! timeout, and GraphQL-over-HTTP status codes. Slow clients are raw sockets.
use crate::helpers::*;
use crate::ws::{connect_to, next, ready, send};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; what it sent, or None if it kept the
/// connection open for `limit` (a generous bound: the server's own limits are far below).
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// The first answer `check` gives within 10 s, polled every 100 ms (the server notices a
/// closed client or a freed place asynchronously).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(mut check: impl FnMut() -> F) -> Option<T> {
    for _ in 0..100 {
        if let Some(answer) = check().await {
            return Some(answer);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Reads one HTTP response head and body of a keep-alive connection (Content-Length bodies).
async fn one_response(stream: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Some(text);
            }
        }
    }
}

/// A client that sends half its headers is disconnected after the header timeout, and an
/// idle keep-alive connection after as long; before, both held their connection for more
/// than 90 s.
#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let app = TestApp::spawn_with(|c| c.header_timeout_ms = 300).await;

    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /graphql HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\n").await.unwrap();
    assert!(until_closed(&mut slow, Duration::from_secs(20)).await.is_some(), "half a header holds the connection");

    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: crm\r\n\r\n").await.unwrap();
    let first = one_response(&mut idle).await.expect("a response");
    assert!(first.starts_with("HTTP/1.1 200") && first.ends_with("ok"), "{first}");
    assert!(until_closed(&mut idle, Duration::from_secs(20)).await.is_some(), "an idle connection stays open");

    // A connection that never sends a byte goes too.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert!(until_closed(&mut silent, Duration::from_secs(20)).await.is_some(), "a silent connection stays open");

    // The start of an HTTP/2 preface, then silence: hyper-util's protocol detection waited
    // for the rest without a timeout.
    for start in [&b"P"[..], b"PRI * HTTP/2.0\r\n\r\nSM\r\n"] {
        let mut drip = TcpStream::connect(app.addr).await.unwrap();
        drip.write_all(start).await.unwrap();
        assert!(until_closed(&mut drip, Duration::from_secs(20)).await.is_some(), "an unfinished preface holds on");
    }
}

/// A client that pipelines requests and never reads the responses is disconnected once
/// the server's writes stall for the request timeout; before, it held the connection.
#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected() {
    let app = TestApp::spawn_with(|c| {
        c.request_timeout_ms = 500;
        c.header_timeout_ms = 60_000;
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    let requests = "GET /schema.graphql HTTP/1.1\r\nHost: crm\r\n\r\n".repeat(200);
    stream.write_all(requests.as_bytes()).await.unwrap();
    // Not reading is the attack: reading now would let the server's writes progress. The
    // writes stall within milliseconds (200 schemas fill any buffer); 3 s is six stall limits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = until_closed(&mut stream, Duration::from_secs(20)).await.expect("the connection is closed");
    let answered = got.matches("HTTP/1.1 200").count();
    assert!(answered < 200, "all {answered} responses were sent: the connection was never cut");
}

/// A request whose body never completes is answered TIMEOUT (503) after the request
/// timeout; before, it waited as long as the client liked.
#[tokio::test]
async fn a_request_that_runs_too_long_is_stopped() {
    let app = TestApp::spawn_with(|c| c.request_timeout_ms = 300).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"query\":",
        app.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = one_response(&mut stream).await.expect("the server answers");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"TIMEOUT\""), "{answer}");
    // Quick requests are untouched.
    app.ok(&app.admin_token, "{me{id}}", json!({})).await;
}

/// One user's requests in flight are capped (429 RATE_LIMITED with Retry-After); other
/// users are not affected, and the slot frees when the request ends.
#[tokio::test]
async fn one_user_cannot_hold_every_worker() {
    let app = TestApp::spawn_with(|c| c.max_requests_per_user = 1).await;
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;

    // The admin's one request in flight: a body that is still arriving.
    let mut held = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{",
        app.admin_token
    );
    held.write_all(head.as_bytes()).await.unwrap();
    // Once the server has taken that request in, the admin's next one is refused.
    let refused = eventually(|| async {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&app.admin_token)
            .json(&json!({"query": "{me{id}}"}))
            .send()
            .await
            .unwrap();
        (resp.status() == 429).then_some(resp)
    })
    .await
    .expect("the second request in flight was never refused");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    app.ok(&rep, "{me{id}}", json!({})).await;

    // A revoked token holds no slot: it is refused before its body is read.
    let old = app.login("rep@example.com", PASSWORD).await;
    app.ok(&old, "mutation{logoutEverywhere{id}}", json!({})).await;
    let fresh = app.login("rep@example.com", PASSWORD).await;
    let mut stale = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: crm\r\nContent-Type: application/json\r\nAuthorization: Bearer {old}\r\nContent-Length: 100\r\n\r\n{{"
    );
    stale.write_all(head.as_bytes()).await.unwrap();
    let answer = one_response(&mut stale).await.expect("an answer before the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    app.ok(&fresh, "{me{id}}", json!({})).await;

    drop(held);
    let freed = eventually(|| async {
        app.gql(Some(&app.admin_token), "{me{id}}", json!({})).await.get("errors").is_none().then_some(())
    })
    .await;
    assert!(freed.is_some(), "the slot is freed when the client goes away");
}

/// At most `CRM_MAX_CONNECTIONS` connections are open; the next is closed at once (it
/// was served before), and a freed place is taken again.
#[tokio::test]
async fn open_connections_are_capped() {
    let app = TestApp::spawn_with(|c| c.max_connections = 4).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..6 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: crm\r\n\r\n").await.unwrap();
        match one_response(&mut stream).await {
            Some(r) => {
                assert!(r.starts_with("HTTP/1.1 200"), "{r}");
                open.push(stream);
            }
            None => refused += 1,
        }
    }
    // The test client's pooled connection may hold one place.
    assert!(open.len() <= 4 && refused >= 2, "{} served, {refused} refused", open.len());
    drop(open);
    let served = eventually(|| async {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: crm\r\n\r\n").await.unwrap();
        one_response(&mut stream).await
    })
    .await;
    assert!(served.is_some(), "closed connections free their places");
}

/// One user's open WebSockets are capped (4029); other users are not affected.
#[tokio::test]
async fn one_user_cannot_open_unbounded_sockets() {
    let app = TestApp::spawn_with(|c| c.max_sockets_per_user = 2).await;
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let first = ready(app.addr, &app.admin_token).await;
    let _second = ready(app.addr, &app.admin_token).await;
    let mut third = connect_to(app.addr).await;
    let init = json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}});
    send(&mut third, init.clone()).await;
    assert_eq!(next(&mut third).await, Err(4029));
    let _theirs = ready(app.addr, &rep).await;

    drop(first);
    let acked = eventually(|| async {
        let mut again = connect_to(app.addr).await;
        send(&mut again, init.clone()).await;
        next(&mut again).await.ok()
    })
    .await;
    assert!(acked.is_some(), "a closed socket frees its place");
}

/// With `Accept: application/graphql-response+json`, a request that fails before execution
/// answers 400 without `data` (it was 200 with `data: null`); field errors stay 200.
#[tokio::test]
async fn request_errors_are_400_for_graphql_response_json() {
    let app = TestApp::spawn().await;
    let post = |body: Value, accept: &'static str| {
        app.client.post(app.url("/graphql")).bearer_auth(&app.admin_token).header("accept", accept).json(&body).send()
    };
    let modern = "application/graphql-response+json";
    let failures = [
        json!({"query": "{ me { id "}),
        json!({"query": "{ nothing }"}),
        json!({"query": "query($n:Int!){customers(first:$n){totalCount}}", "variables": {"n": "ten"}}),
        json!({"query": "query($n:Int!){customers(first:$n){totalCount}}"}),
    ];
    for body in &failures {
        let resp = post(body.clone(), modern).await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], modern);
        let answer: Value = resp.json().await.unwrap();
        assert!(answer.get("data").is_none() && answer["errors"].is_array(), "{answer}");

        let legacy = post(body.clone(), "application/json").await.unwrap();
        assert_eq!(legacy.status(), 200, "{body}");
    }
    // An error of a field that ran: 200 with data.
    let resp =
        post(json!({"query": "{customer(id:\"00000000-0000-7000-8000-000000000000\"){id}}"}), modern).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer.get("data").is_some(), "{answer}");
}
