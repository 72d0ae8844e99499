//! One client address cannot take every connection: a cap on its connections and on its
//! WebSockets still waiting for `connection_init`, apart from the instance's global cap
//! (issue: fair and deadlock-free under load).
use crate::helpers::*;
use crate::ws::{Ws, next, send};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn one_address_holding_connections_leaves_the_rest_to_others() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections = 300;
        c.max_connections_per_address = 20;
    })
    .await;
    // From 127.0.0.1: 300 connections that send one byte of a request and wait.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let _ = s.write_all(b"G").await;
        held.push(s);
    }
    // Another address (loopback is a /8 on Linux) is served as if nobody were there.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    for _ in 0..20 {
        let resp = other
            .post(app.url("/graphql"))
            .bearer_auth(&app.admin_token)
            .json(&json!({"query": "{me{id}}"}))
            .send()
            .await
            .expect("served");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
    }
    drop(held);
}

async fn upgrade(app: &TestApp, from: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    req.headers_mut().insert("x-forwarded-for", from.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn sockets_waiting_for_init_are_capped_per_address_behind_a_proxy() {
    let app = TestApp::spawn_with(|c| {
        c.trust_forwarded_for = true;
        c.max_anonymous_sockets_per_address = 8;
    })
    .await;
    let mut waiting = Vec::new();
    for _ in 0..8 {
        waiting.push(upgrade(&app, "203.0.113.9").await.expect("within the cap"));
    }
    assert_eq!(upgrade(&app, "203.0.113.9").await.err(), Some(429), "the ninth waits for nothing");
    // IPv6 clients count by /64.
    for n in 0..8 {
        waiting.push(upgrade(&app, &format!("2001:db8:5:6::{n:x}")).await.expect("within the cap"));
    }
    assert_eq!(upgrade(&app, "2001:db8:5:6:ffff::1").await.err(), Some(429));
    // Another address is not held up.
    let mut honest = upgrade(&app, "198.51.100.7").await.expect("another address");
    send(
        &mut honest,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}}),
    )
    .await;
    assert_eq!(next(&mut honest).await, Ok(json!({"type": "connection_ack"})));
    // An accepted connection_init gives its place back.
    let first = &mut waiting[0];
    send(
        first,
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}}),
    )
    .await;
    assert_eq!(next(first).await, Ok(json!({"type": "connection_ack"})));
    upgrade(&app, "203.0.113.9").await.expect("a place came back");
}
