//! Webhook deliveries are fair per webhook and per account: a partner whose 25 webhooks
//! point at a receiver that answers slowly does not hold up another account's events
//! (issue: fair and deadlock-free under load).
use crate::helpers::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CREATE: &str = "mutation($i:CreateWebhookInput!){createWebhook(input:$i){webhook{id}}}";

/// A receiver that answers 200 after `delay`, counting the requests it got.
async fn receiver(delay: std::time::Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(AtomicUsize::new(0));
    let counted = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let got = counted.clone();
            tokio::spawn(async move {
                // The headers, then the body its Content-Length announces.
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
    (url, got)
}

#[tokio::test]
async fn a_partner_with_slow_webhooks_does_not_hold_up_another_accounts_event() {
    let app = TestApp::spawn_with(|c| c.webhooks.timeout = std::time::Duration::from_secs(5)).await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("合作伙伴", None).await;
    let (_, honest) = app.create_user("honest@example.com", "ADMIN", &dept).await;
    let (slow_url, slow_got) = receiver(std::time::Duration::from_secs(3)).await;
    let (fast_url, fast_got) = receiver(std::time::Duration::ZERO).await;
    for i in 0..25 {
        app.ok(
            &admin,
            CREATE,
            json!({"i": {"name": format!("慢{i}"), "url": slow_url, "events": ["CUSTOMER_CREATED"]}}),
        )
        .await;
    }
    app.ok(&honest, CREATE, json!({"i": {"name": "诚实", "url": fast_url, "events": ["CUSTOMER_UPDATED"]}})).await;
    let mut last = json!(null);
    for i in 0..20 {
        last = app.create_customer(&admin, json!({"name": format!("客户{i}"), "kind": "INDIVIDUAL"})).await;
    }
    // 500 slow deliveries are due; the worker runs as it does in production.
    let worker = api::webhooks::spawn(&app.state).unwrap();
    while slow_got.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.ok(
        &admin,
        "mutation($id:ID!){updateCustomer(input:{id:$id, version:1, industry:\"茶叶\"}){id}}",
        json!({"id": last["id"]}),
    )
    .await;
    while fast_got.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Arrival order, not a stopwatch: a worker that served the deliveries in the order
    // they fell due would first send all 500 slow ones (at 32 a round of 3 s each).
    let slow = slow_got.load(Ordering::SeqCst);
    worker.abort();
    assert!(slow <= 40, "the honest event came after {slow} slow attempts");
    // The slow partner holds at most its account's share of attempts at once.
    assert!(slow >= 1);
}
