//! GraphQL over WebSocket at /graphql/ws: the graphql-transport-ws protocol, followed
//! exactly (async-graphql's own handler closes with generic codes).
//!
//! - `connection_init` carries the token (`{"authorization": "Bearer ..."}` or
//!   `{"token": "..."}`) or an API key (the same, or `{"apiKey": "crm_..."}`), checked
//!   with the same rules as HTTP; a bad or missing one
//!   closes with 4403; none within the timeout, 4408; a second one, 4429; a user who
//!   already has `CRM_MAX_SOCKETS_PER_USER` sockets open on the instance, 4029.
//! - The socket follows its token and its user: it closes with 4403 when the token
//!   expires, when the user's session ends (password change, deactivation,
//!   `logoutEverywhere`, an API key revoked) or their role or department changes. Changes reach the socket
//!   at once on every instance (`service/src/access/session.rs`); the user is also re-checked before
//!   each operation and every `CRM_WS_RECHECK_MS`.
//! - `subscribe` before the ack closes with 4401; a subscription id already in use, 4409;
//!   a malformed message, 4400.
//! - Operations run through the same schema, hence the same depth and complexity limits.
//! - On shutdown, operations in flight finish, their results are sent, and the socket
//!   closes with 1001.
use crate::schema::{CrmSchema, loaders};
use crate::state::AppState;
use async_graphql::{Request, ServerError};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use service::access::Actor;
use service::access::jwt::Verified;
use service::access::session::SocketSlot;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The subprotocol served.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Operations one connection may run at once.
const MAX_OPERATIONS: usize = 100;

/// View messages a connection sends in a row before its other work gets a turn.
const FAIR_BURST: usize = 32;

/// What operation tasks send back to the connection.
enum Out {
    /// A message, serialised.
    Send(String),
    Finished(String),
}

struct Operation {
    running: Running,
    subscription: bool,
    /// Counted in `crm_subscriptions_active` while it runs (subscriptions only).
    _counted: Option<crate::meters::Held>,
}

/// Where an operation runs: its own task, or a shared view the connection reads itself
/// (`Relays`; leaving it is removing it from there).
enum Running {
    Task(JoinHandle<()>),
    View,
}

impl Operation {
    fn stop(&self) {
        if let Running::Task(task) = &self.running {
            task.abort();
        }
    }
}

/// The shared views a connection reads, by operation id: polled in turn from a rotating
/// start, with the connection's own waker (no task and no waker of their own: an event
/// for 10,000 sockets costs 10,000 wake-ups, not twice that).
#[derive(Default)]
struct Relays {
    streams: Vec<(String, BoxStream<'static, Out>)>,
    /// Where the next poll starts, so that a busy view cannot starve the others.
    start: usize,
}

impl Relays {
    fn push(&mut self, id: String, messages: BoxStream<'static, Out>) {
        self.streams.push((id, messages));
    }

    /// Leaves a view (its membership goes with the stream).
    fn remove(&mut self, id: &str) {
        self.streams.retain(|(i, _)| i != id);
    }

    fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

impl futures::Stream for Relays {
    type Item = Out;

    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Out>> {
        use std::task::Poll;
        let this = &mut *self;
        let n = this.streams.len();
        let mut ended = Vec::new();
        let mut found = None;
        for k in 0..n {
            let i = (this.start + k) % n;
            match this.streams[i].1.poll_next_unpin(cx) {
                Poll::Ready(Some(out)) => {
                    this.start = i + 1;
                    found = Some(out);
                    break;
                }
                Poll::Ready(None) => ended.push(i),
                Poll::Pending => {}
            }
        }
        ended.sort_unstable_by(|a, b| b.cmp(a));
        for i in ended {
            drop(this.streams.swap_remove(i));
        }
        match found {
            Some(out) => Poll::Ready(Some(out)),
            None if this.streams.is_empty() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Why a connection ends.
struct Close(u16, String);

/// Serves one socket until it closes.
pub async fn serve(
    socket: WebSocket,
    state: AppState,
    schema: CrmSchema,
    mut anonymous: Option<crate::addresses::AddressSlot>,
) {
    let _open = state.shutdown.enter();
    let _counted = crate::meters::Held::new("crm_websockets_open");
    let mut shutdown = state.shutdown.watch();
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(256);
    let mut operations: HashMap<String, Operation> = HashMap::new();
    // The messages of this connection's shared views, read here: no task per view member.
    let mut from_views = Relays::default();
    // View messages sent since the other branches last had a turn.
    let mut burst = 0usize;
    let mut actor: Option<Actor> = None;
    let mut token: Option<Verified> = None;
    let mut _slot: Option<SocketSlot> = None;
    let mut changes = state.sessions.changes();
    let mut init_received = false;
    let init_timeout = tokio::time::sleep(state.ws_init_timeout);
    tokio::pin!(init_timeout);
    // The token's expiry (set at `connection_init`) and the periodic re-check of the user.
    let expiry = tokio::time::sleep(std::time::Duration::from_secs(86_400 * 365));
    tokio::pin!(expiry);
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + state.ws_recheck, state.ws_recheck);

    let close = loop {
        if *shutdown.borrow() {
            break going_away(&mut operations, &mut out_rx, &mut sink).await;
        }
        tokio::select! {
            // In this order: an event for 10,000 sockets wakes each of them, and a socket
            // with a message to send polls nothing else (no timers re-registered). After
            // `FAIR_BURST` view messages in a row every other branch gets its turn (the
            // last branch ends the pause when none is ready), so a flood of events never
            // holds back an expired token, a revoked user, a client's `complete` or a
            // query's answer.
            biased;
            Some(out) = from_views.next(), if !from_views.is_empty() && burst < FAIR_BURST => {
                burst += 1;
                if let Err(close) = deliver(out, &mut operations, &mut sink).await {
                    break close;
                }
            }
            Some(out) = out_rx.recv() => {
                if let Err(close) = deliver(out, &mut operations, &mut sink).await {
                    break close;
                }
            }
            () = &mut init_timeout, if !init_received => break Close(4408, "Connection initialisation timeout".into()),
            () = &mut expiry, if actor.is_some() => break Close(4403, "Token expired".into()),
            _ = recheck.tick(), if actor.is_some() => {
                let (Some(old), Some(t)) = (&actor, &token) else { continue };
                match current(&state, old, t).await {
                    Ok(new) => actor = Some(new),
                    Err(close) => break close,
                }
            }
            change = changes.recv(), if actor.is_some() => {
                let (Some(old), Some(t)) = (&actor, &token) else { continue };
                // A lagging receiver may have missed this user's change: check anyway.
                let concerns = match change {
                    Ok(c) => c.concerns(old.id()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                };
                if concerns {
                    match current(&state, old, t).await {
                        Ok(new) => actor = Some(new),
                        Err(close) => break close,
                    }
                }
            }
            _ = shutdown.changed() => continue,
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => break Close(4400, "Binary messages are not supported".into()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Close(1000, String::new()),
                };
                let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text.as_str()) else {
                    break Close(4400, "Invalid message received".into());
                };
                match msg.get("type").and_then(Value::as_str) {
                    Some("connection_init") => {
                        if init_received {
                            break Close(4429, "Too many initialisation requests".into());
                        }
                        init_received = true;
                        match authenticate(&state, msg.get("payload")).await {
                            Some((a, verified, expires)) => {
                                let Some(slot) = state.sessions.socket_slot(a.id()) else {
                                    crate::meters::refused("sockets_per_user");
                                    break Close(4029, "Too many WebSockets for this user".into());
                                };
                                _slot = Some(slot);
                                // Authenticated: no longer one of its address's waiting sockets.
                                anonymous.take();
                                actor = Some(a);
                                token = Some(verified);
                                expiry.as_mut().reset(expires);
                                if sink.send(Message::Text(json!({"type": "connection_ack"}).to_string().into())).await.is_err() {
                                    break Close(1006, String::new());
                                }
                            }
                            None => break Close(4403, "Forbidden".into()),
                        }
                    }
                    Some("ping") => {
                        let mut pong = json!({"type": "pong"});
                        if let Some(p) = msg.get("payload") {
                            pong["payload"] = p.clone();
                        }
                        if sink.send(Message::Text(pong.to_string().into())).await.is_err() {
                            break Close(1006, String::new());
                        }
                    }
                    Some("pong") => {}
                    Some("subscribe") => {
                        let (Some(old), Some(t)) = (&actor, &token) else { break Close(4401, "Unauthorized".into()) };
                        // Each operation runs as the user is now, like an HTTP request.
                        match current(&state, old, t).await {
                            Ok(new) => actor = Some(new),
                            Err(close) => break close,
                        }
                        let Some(actor) = &actor else { break Close(4401, "Unauthorized".into()) };
                        let Some(id) = msg.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()).map(str::to_string) else {
                            break Close(4400, "Invalid message received: subscribe needs an id".into());
                        };
                        if operations.contains_key(&id) {
                            break Close(4409, format!("Subscriber for {id} already exists"));
                        }
                        let Some(request) = msg.get("payload").and_then(|p| serde_json::from_value::<Request>(p.clone()).ok()) else {
                            break Close(4400, "Invalid message received: subscribe needs a payload with a query".into());
                        };
                        let mut request = request;
                        let refused = if operations.len() >= MAX_OPERATIONS {
                            Some(ServerError::new(format!("at most {MAX_OPERATIONS} operations per connection"), None))
                        } else if let Err(refusal) = state.documents.resolve(&mut request, true) {
                            let mut error = ServerError::new(refusal.message, None);
                            error.extensions.get_or_insert_with(Default::default).set("code", refusal.code);
                            Some(error)
                        } else if let Some(message) = crate::http::too_deep(&request) {
                            Some(ServerError::new(message, None))
                        } else {
                            crate::schema::guards::check(&mut request, &state.limits, true).err()
                        };
                        if let Some(mut error) = refused {
                            crate::schema::error::default_code(&mut error);
                            let error = json!({"id": id, "type": "error", "payload": [error]});
                            if sink.send(Message::Text(error.to_string().into())).await.is_err() {
                                break Close(1006, String::new());
                            }
                            continue;
                        }
                        let (subscription, shared) = operation_kind(&mut request);
                        let running = if shared {
                            // One resolution for every subscriber who would read the same.
                            let (schema, db, as_actor) = (schema.clone(), state.db.clone(), actor.clone());
                            let membership = state.views.join(request, actor, move |request| {
                                let request = request.data(loaders::stream_loader(db, Some(as_actor.clone()))).data(as_actor);
                                schema.execute_stream(request).boxed()
                            });
                            from_views.push(id.clone(), relay(membership, id.clone()).boxed());
                            Running::View
                        } else {
                            let loader = if subscription { loaders::stream_loader } else { loaders::new_loader };
                            // No interactive ticket here: an answer waits for a slow reader
                            // with its request (and a ticket) alive, so one stalled socket
                            // would slow every report. Interactive work is HTTP's.
                            let request = request.data(loader(state.db.clone(), Some(actor.clone()))).data(actor.clone());
                            let wrote = Wrote { heavy: state.heavy.clone(), user: actor.id() };
                            let task = run(schema.clone(), request, id.clone(), out_tx.clone(), state.limits.response_bytes, wrote);
                            Running::Task(tokio::spawn(async move {
                                service::kernel::store::noting_commits(task).await;
                            }))
                        };
                        let counted = subscription.then(|| crate::meters::Held::new("crm_subscriptions_active"));
                        operations.insert(id, Operation { running, subscription, _counted: counted });
                    }
                    Some("complete") => {
                        if let Some(id) = msg.get("id").and_then(Value::as_str)
                            && let Some(op) = operations.remove(id)
                        {
                            op.stop();
                            from_views.remove(id);
                        }
                    }
                    _ => break Close(4400, "Invalid message received".into()),
                }
            }
            () = std::future::ready(()), if burst >= FAIR_BURST => burst = 0,
        }
    };
    for op in operations.values() {
        op.stop();
    }
    if close.0 != 1006 {
        let frame = CloseFrame { code: close.0, reason: close.1.into() };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// Shutdown: subscriptions end, queries and mutations in flight finish (within a bound)
/// and their results are sent, then 1001.
async fn going_away(
    operations: &mut HashMap<String, Operation>,
    out_rx: &mut mpsc::Receiver<Out>,
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
) -> Close {
    operations.retain(|_, op| {
        if op.subscription {
            op.stop();
        }
        !op.subscription
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !operations.is_empty() {
        match tokio::time::timeout_at(deadline, out_rx.recv()).await {
            Ok(Some(Out::Send(text))) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return Close(1006, String::new());
                }
            }
            Ok(Some(Out::Finished(id))) => {
                operations.remove(&id);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Close(1001, "Server shutting down".into())
}

/// A `next` message, serialised straight from the answer.
#[derive(serde::Serialize)]
struct Next<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a async_graphql::Response,
}

/// Whose writes an operation's answer follows: their reads stay on the primary while a
/// replica may lag (`service::access::heavy`), as after a write over HTTP.
struct Wrote {
    heavy: service::access::heavy::HeavyReads,
    user: uuid::Uuid,
}

/// Runs one operation, sending `next` for each result and `complete` at the end, or one
/// `error` when the operation is refused before it runs (parse, validation, limits).
/// Inside `noting_commits`: a result sent after a commit notes the writer first.
async fn run(schema: CrmSchema, request: Request, id: String, out: mpsc::Sender<Out>, cap: usize, wrote: Wrote) {
    let mut results = schema.execute_stream(request);
    let mut first = true;
    let mut refused = false;
    while let Some(response) = results.next().await {
        if service::kernel::store::committed_so_far() {
            wrote.heavy.wrote(wrote.user);
        }
        let response = crate::views::coded(response);
        if first && crate::views::refused(&response) {
            refused = true;
            let _ =
                out.send(Out::Send(json!({"id": id, "type": "error", "payload": response.errors}).to_string())).await;
            break;
        }
        first = false;
        // Serialised from the answer itself (no copy as a JSON value), stopping at the cap.
        let message = crate::capped::to_json(&Next { id: &id, kind: "next", payload: &response }, cap)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_else(|| {
                crate::meters::refused("response_bytes");
                json!({"id": id, "type": "next", "payload": {"data": null, "errors": [crate::capped::too_large(cap)]}})
                    .to_string()
            });
        if out.send(Out::Send(message)).await.is_err() {
            return;
        }
    }
    if !refused {
        let _ = out.send(Out::Send(json!({"id": id, "type": "complete"}).to_string())).await;
    }
    let _ = out.send(Out::Finished(id)).await;
}

/// Sends one message of an operation, or forgets a finished operation.
async fn deliver(
    out: Out,
    operations: &mut HashMap<String, Operation>,
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
) -> Result<(), Close> {
    match out {
        Out::Send(text) => sink.send(Message::Text(text.into())).await.map_err(|_| Close(1006, String::new())),
        Out::Finished(id) => {
            operations.remove(&id);
            Ok(())
        }
    }
}

/// A shared view's results as this subscriber's messages, each in this operation's
/// envelope (the payload was serialised once for the whole view), then `Finished`.
fn relay(membership: crate::views::Membership, id: String) -> impl futures::Stream<Item = Out> + Send + 'static {
    use crate::views::Item;
    use tokio::sync::broadcast::error::RecvError;
    let id_json = Value::String(id.clone()).to_string();
    let next = format!(r#"{{"id":{id_json},"type":"next","payload":"#);
    // `Some` while the view runs; the last message and `Finished` follow its end.
    let state = Some((membership, next, id_json, id));
    futures::stream::unfold((state, Vec::<Out>::new()), |(mut state, mut tail)| async move {
        if let Some(out) = tail.pop() {
            return Some((out, (state, tail)));
        }
        let (mut membership, next, id_json, id) = state.take()?;
        loop {
            let last = match membership.items.recv().await {
                Ok(Item::Next(payload)) => {
                    let mut message = String::with_capacity(next.len() + payload.len() + 1);
                    message.push_str(&next);
                    message.push_str(&payload);
                    message.push('}');
                    return Some((Out::Send(message), (Some((membership, next, id_json, id)), tail)));
                }
                Ok(Item::Refused(errors)) => format!(r#"{{"id":{id_json},"type":"error","payload":{errors}}}"#),
                Ok(Item::Complete) | Err(RecvError::Closed) => format!(r#"{{"id":{id_json},"type":"complete"}}"#),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and skipped events");
                    continue;
                }
            };
            // Popped from the end: the last message, then `Finished`.
            tail.push(Out::Finished(id));
            return Some((Out::Send(last), (None, tail)));
        }
    })
}

/// Whether the request's operation is a subscription (it never finishes on its own), and
/// whether it may run as a shared view: a subscription whose root fields are all
/// `views::SHARED_TOPICS` (aliases allowed; fragments at the root are not shared).
fn operation_kind(request: &mut Request) -> (bool, bool) {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    let operation_name = request.operation_name.clone();
    // Parsed once already, by the guards: this reads the document they left in the request.
    let Ok(doc) = request.parsed_query() else { return (false, false) };
    let op = match (&doc.operations, &operation_name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name.as_str()) {
            Some(op) => op,
            None => return (false, false),
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) => op,
            None => return (false, false),
        },
    };
    if op.node.ty != OperationType::Subscription {
        return (false, false);
    }
    let shared = op.node.selection_set.node.items.iter().all(|s| match &s.node {
        Selection::Field(f) => crate::views::SHARED_TOPICS.contains(&f.node.name.node.as_str()),
        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => false,
    });
    (true, shared)
}

/// The actor of a `connection_init` payload, if its token holds.
async fn authenticate(state: &AppState, payload: Option<&Value>) -> Option<(Actor, Verified, tokio::time::Instant)> {
    let payload = payload?;
    let token = payload
        .get("authorization")
        .or_else(|| payload.get("Authorization"))
        .and_then(Value::as_str)
        .map(|v| v.trim().trim_start_matches("Bearer ").trim_start_matches("bearer ").trim().to_string())
        .or_else(|| payload.get("token").and_then(Value::as_str).map(str::to_string))
        .or_else(|| payload.get("apiKey").and_then(Value::as_str).map(|k| k.trim().to_string()))?;
    let verified = crate::http::verify_credential(state, &token).await.ok()?;
    let left = (verified.expires - chrono::Utc::now()).to_std().unwrap_or_default();
    let actor = state.sessions.actor(&state.db, &verified).await.ok()?;
    Some((actor, verified, tokio::time::Instant::now() + left))
}

/// The socket's user as it is now (from the actor cache, which every change empties), or
/// why the socket must close: session ended or user deactivated (4403), role or
/// department changed (4403: subscriptions already running filter with the old
/// permissions), or the database failing (1011).
async fn current(state: &AppState, old: &Actor, token: &Verified) -> Result<Actor, Close> {
    match state.sessions.actor(&state.db, token).await {
        Ok(new) if old.same_rights(&new) => Ok(new),
        Ok(_) => Err(Close(4403, "Permissions changed; reconnect".into())),
        Err(service::error::AppError::Unauthenticated(_)) => Err(Close(4403, "Session ended".into())),
        Err(e) => {
            tracing::error!(error = %e, "cannot re-check a WebSocket's user");
            Err(Close(1011, "Internal error".into()))
        }
    }
}
