//! HTTP routes and the guards around the GraphQL executor: JSON-only POST (a text/plain
//! POST is a CSRF route), a body limit, no batches, no operations over GET, bearer auth,
//! a per-user cap on requests in flight and a per-request timeout ([`edge`]).
//!
//! Responses follow GraphQL over HTTP: with `Accept: application/graphql-response+json`,
//! a request that fails before execution (parse, validation, variables, limits) answers
//! 400 without a `data` entry; with `application/json`, 200. A request refused as a whole
//! for rate answers 429 with `Retry-After`, one stopped by the timeout 503 (TIMEOUT).
mod files;
mod graphql;

use crate::schema::{CrmSchema, loaders};
use crate::state::AppState;
use async_graphql::BatchRequest;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use files::*;
use graphql::*;
use serde_json::json;
use service::access::Actor;
use service::access::jwt::Verified;
use service::error::AppError;
use service::kernel::idempotency;

/// Router state: the shared state and the schema.
#[derive(Clone)]
pub struct Http {
    pub state: AppState,
    pub schema: CrmSchema,
    /// The same schema without validation rules, for documents validated before
    /// (`crate::documents::Parsed::Checked`).
    pub checked: CrmSchema,
}

/// All routes of the API.
pub fn router(http: Http) -> Router {
    let body_limit = http.state.body_limit;
    Router::new()
        .route("/graphql", get(explorer).post(graphql_post))
        .route("/reports/{file}", get(report_file))
        .route("/personal-data/{file}", get(personal_data))
        .route("/imports/{kind}", axum::routing::post(import_records))
        .route("/exports/{file}", get(export_file))
        .route_layer(axum::middleware::from_fn_with_state(http.clone(), edge))
        .route("/graphql/ws", get(graphql_ws))
        .route("/explorer/{file}", get(explorer_asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/schema.graphql", get(schema_sdl))
        .route("/metrics", get(metrics_behind_token))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::access_log::access_log))
        .with_state(http)
}

/// `GET /metrics` on the main port: only with `CRM_METRICS_TOKEN` set, to that bearer
/// token (compared in constant time); 404 otherwise, as if there were no such route.
async fn metrics_behind_token(State(http): State<Http>, headers: HeaderMap) -> Response {
    let Some(expected) = http.state.metrics_token.clone() else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let matches = given.is_some_and(|g| {
        use subtle::ConstantTimeEq;
        bool::from(g.as_bytes().ct_eq(expected.as_bytes()))
    });
    if !matches {
        return error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "the metrics token is required");
    }
    metrics_text(&http.state).await
}

/// The Prometheus text of a scrape.
pub async fn metrics_text(state: &AppState) -> Response {
    let body = crate::meters::render(state).await;
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// A request-level error as a GraphQL response body.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))).into_response()
}

fn app_error_response(e: AppError) -> Response {
    match &e {
        AppError::RateLimited { retry_after, message } => return rate_limited(*retry_after, message),
        AppError::Collided => return rate_limited(1, &e.to_string()),
        _ => {}
    }
    let status = match e {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AppError::RateLimited { .. } | AppError::Collided => StatusCode::TOO_MANY_REQUESTS,
        AppError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    if let AppError::Internal(source) = &e {
        tracing::error!(error = %source, "internal error before execution");
    }
    error_response(status, e.code(), &e.to_string())
}

/// The credential of a request, if it sends one: `Authorization: Bearer <token or API
/// key>`, or an API key alone in `X-Api-Key`.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Some)
            .ok_or(AppError::Unauthenticated("expected Authorization: Bearer <token>"));
    }
    let Some(value) = headers.get("x-api-key") else { return Ok(None) };
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| k.starts_with(service::access::api_key::KEY_PREFIX))
        .map(Some)
        .ok_or(AppError::Unauthenticated("X-Api-Key holds an API key (crm_...)"))
}

/// What a credential stands for: an API key (`crm_...`, through the key cache) or a JWT.
///
/// # Errors
/// UNAUTHENTICATED.
pub async fn verify_credential(state: &AppState, credential: &str) -> Result<Verified, AppError> {
    if credential.starts_with(service::access::api_key::KEY_PREFIX) {
        state.sessions.key(&state.db, credential).await
    } else {
        state.jwt.verify(credential)
    }
}

/// Resolves the credential of a request, if any, to an Actor (through the actor cache).
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Actor>, AppError> {
    let Some(token) = bearer(headers)? else { return Ok(None) };
    let verified = verify_credential(state, token).await?;
    state.sessions.actor(&state.db, &verified).await.map(Some)
}

/// The peer of a connection, set on each request by `serve_on`.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub address: std::net::SocketAddr,
}

/// The client's address: the peer's, or behind a trusted proxy the last `X-Forwarded-For`
/// entry over all its header lines (the one the proxy appended; earlier ones are whatever
/// the client claimed), with any port stripped.
fn client_address(state: &AppState, headers: &HeaderMap, peer: Option<Peer>) -> Option<std::net::IpAddr> {
    if state.edge.trust_forwarded_for
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
    {
        let parsed = last
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| last.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            .or_else(|| last.trim_start_matches('[').trim_end_matches(']').parse().ok());
        if let Some(address) = parsed {
            return Some(address);
        }
        tracing::debug!(entry = last, "unreadable X-Forwarded-For entry; counting the peer");
    }
    peer.map(|p| p.address.ip())
}

/// The caller of a request, authenticated by [`edge`].
#[derive(Clone)]
struct Caller(Actor);

/// The edge of `/graphql` and `/reports`: authenticates the caller (a bad, expired or
/// revoked token is refused here, before it can hold anything), caps one user's requests
/// in flight (RATE_LIMITED, 429), and stops a request that runs longer than the timeout,
/// its body upload included (TIMEOUT, 503).
async fn edge(State(http): State<Http>, mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let actor = match authenticate(&http.state, request.headers()).await {
        Ok(actor) => actor,
        Err(e) => return app_error_response(e),
    };
    let user = actor.as_ref().map(Actor::id);
    let _slot = match user {
        Some(user) => match http.state.sessions.request_slot(user) {
            Some(slot) => Some(slot),
            None => {
                let cap = http.state.sessions.caps().requests;
                tracing::warn!(%user, cap, "request refused: too many in flight");
                crate::meters::refused("requests_per_user");
                return rate_limited(
                    1,
                    &format!("at most {cap} requests of one user at once; retry when one has finished"),
                );
            }
        },
        None => None,
    };
    if let Some(actor) = actor {
        request.extensions_mut().insert(Caller(actor));
    }
    // An import reads a large file as it arrives: no overall limit, its own idle limit
    // between the body's chunks (`import.rs`).
    let note_user = |mut response: Response| {
        if let Some(user) = user {
            response.extensions_mut().insert(crate::access_log::User(user));
        }
        response
    };
    if request.uri().path().starts_with("/imports/") {
        return note_user(next.run(request).await);
    }
    let limit = http.state.edge.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => note_user(response),
        Err(_) => {
            tracing::warn!(?user, ms = limit.as_millis(), "request stopped by the timeout");
            crate::meters::refused("request_timeout");
            app_error_response(AppError::Timeout(format!(
                "the request took longer than {} ms and was stopped; a mutation in it may not have been applied",
                limit.as_millis()
            )))
        }
    }
}

/// 429 with `Retry-After` and `extensions.retryAfter`.
fn rate_limited(retry_after: u64, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": "RATE_LIMITED", "retryAfter": retry_after } }] });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

/// Why a request nests too deep to be parsed safely, if it does (HTTP and WebSocket).
pub(crate) fn too_deep(request: &async_graphql::Request) -> Option<String> {
    if query_nesting(&request.query) > MAX_QUERY_NESTING {
        return Some(format!("the query nests brackets more than {MAX_QUERY_NESTING} levels deep"));
    }
    let mut stack: Vec<(&async_graphql::Value, usize)> = request.variables.values().map(|v| (v, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_VARIABLE_NESTING {
            return Some(format!("variables nest more than {MAX_VARIABLE_NESTING} levels deep"));
        }
        match value {
            async_graphql::Value::List(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            async_graphql::Value::Object(fields) => stack.extend(fields.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    None
}

/// GraphQL over WebSocket (graphql-transport-ws; see `ws.rs`). The socket keeps its
/// connection's slot (`serve_on`'s connection cap) while it is open.
async fn graphql_ws(
    State(http): State<Http>,
    slot: Option<axum::Extension<crate::ConnectionSlot>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // A socket holds a place of its address until its `connection_init` is accepted.
    let anonymous = match client_address(&http.state, &headers, peer.map(|p| p.0)) {
        Some(address) => match http.state.anonymous_sockets.take(address) {
            Some(place) => Some(place),
            None => {
                let cap = http.state.anonymous_sockets.cap();
                tracing::warn!(%address, cap, "WebSocket refused: too many unauthenticated from its address");
                crate::meters::refused("anonymous_sockets_per_address");
                let mut resp = rate_limited(
                    1,
                    &format!(
                        "at most {cap} WebSockets of one address may wait for connection_init; authenticate those first"
                    ),
                );
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        },
        None => None,
    };
    let state = http.state.clone();
    let schema = http.schema.clone();
    let slot = slot.map(|s| s.0);
    upgrade
        .protocols([crate::ws::PROTOCOL])
        .max_message_size(state.body_limit)
        // Small buffers: a subscriber mostly waits, and 10,000 of them should not hold
        // 256 KiB each (tungstenite's defaults); messages are flushed as they are sent.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            crate::ws::serve(socket, state, schema, anonymous).await;
        })
        .into_response()
}

async fn readyz(State(http): State<Http>) -> Response {
    match http.state.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

async fn schema_sdl(State(http): State<Http>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], http.schema.sdl()).into_response()
}
