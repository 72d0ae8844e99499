//! /graphql/ws speaks graphql-transport-ws and authenticates in `connection_init`.
use crate::helpers::*;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn connect(app: &TestApp) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket connects");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    ws
}

/// The next text message as JSON, or the close code.
async fn next(ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>) -> Result<Value, u16> {
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
    ws.send(Message::text(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {}", app.admin_token)}}).to_string())).await.unwrap();
    assert_eq!(next(&mut ws).await, Ok(json!({"type": "connection_ack"})));

    let mut ws = connect(&app).await;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {"authorization": "Bearer forged"}}).to_string())).await.unwrap();
    assert!(next(&mut ws).await.is_err(), "a bad token is not acknowledged");

    let mut ws = connect(&app).await;
    ws.send(Message::text(json!({"type": "connection_init", "payload": {}}).to_string())).await.unwrap();
    assert!(next(&mut ws).await.is_err(), "no token is not acknowledged");
}
