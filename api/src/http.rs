//! HTTP routes and the guards around the GraphQL executor: JSON-only POST (a text/plain
//! POST is a CSRF route), a body limit, no batches, no operations over GET, bearer auth,
//! a per-user cap on requests in flight and a per-request timeout ([`edge`]).
//!
//! Responses follow GraphQL over HTTP: with `Accept: application/graphql-response+json`,
//! a request that fails before execution (parse, validation, variables, limits) answers
//! 400 without a `data` entry; with `application/json`, 200. A request refused as a whole
//! for rate answers 429 with `Retry-After`, one stopped by the timeout 503 (TIMEOUT).
use crate::schema::{CrmSchema, loaders};
use crate::state::AppState;
use async_graphql::BatchRequest;
use async_graphql::http::GraphiQLSource;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
}

/// All routes of the API.
pub fn router(http: Http) -> Router {
    let body_limit = http.state.body_limit;
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_post))
        .route("/reports/{file}", get(report_csv))
        .route("/personal-data/{file}", get(personal_data))
        .route("/imports/{kind}", axum::routing::post(import_records))
        .route("/exports/{file}", get(export_csv))
        .route_layer(axum::middleware::from_fn_with_state(http.clone(), edge))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/schema.graphql", get(schema_sdl))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(http)
}

/// A request-level error as a GraphQL response body.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] }))).into_response()
}

fn app_error_response(e: AppError) -> Response {
    let status = match e {
        AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
    if request.uri().path().starts_with("/imports/") {
        return next.run(request).await;
    }
    let limit = http.state.edge.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?user, ms = limit.as_millis(), "request stopped by the timeout");
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

/// Deepest nesting of brackets in a query text, and of lists and objects in its variables.
/// async-graphql parses and coerces input values recursively before any of its limits
/// apply (`limit_depth` counts selections, not values), so a deeply nested filter or list
/// literal would overflow the worker's stack and abort the process. Real operations stay
/// far below: the deepest filter (and/or 5 levels) with 12 levels of selections is ~30.
const MAX_QUERY_NESTING: usize = 64;
const MAX_VARIABLE_NESTING: usize = 32;

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

/// The deepest nesting of `{`, `[` and `(` in GraphQL text, outside strings and comments.
fn query_nesting(query: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' | '[' | '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' | ')' => depth = depth.saturating_sub(1),
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                // A block string `"""..."""` or a plain string with `\` escapes.
                let block = chars.peek() == Some(&'"') && {
                    chars.next();
                    chars.peek() == Some(&'"')
                };
                if block {
                    chars.next();
                    let mut quotes = 0;
                    for c in chars.by_ref() {
                        quotes = if c == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 {
                            break;
                        }
                    }
                } else {
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        match c {
                            _ if escaped => escaped = false,
                            '\\' => escaped = true,
                            '"' | '\n' => break,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let e = essence.trim().to_ascii_lowercase();
            e == "application/json" || e == "application/graphql+json"
        })
        .unwrap_or(false)
}

async fn graphql_post(
    State(http): State<Http>,
    caller: Option<axum::Extension<Caller>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let actor = caller.map(|c| c.0.0);
    // An Idempotency-Key from a known caller on a mutation (`service/src/kernel/idempotency.rs`);
    // anonymous requests (login) have no caller to keep answers for.
    let idempotency = match (headers.get("idempotency-key"), &actor) {
        (Some(value), Some(actor)) => {
            let key = value.to_str().unwrap_or("").trim().to_string();
            if let Err(e) = idempotency::check_key(&key) {
                return app_error_response(e);
            }
            is_mutation(&body).then(|| (actor.id(), key))
        }
        _ => None,
    };
    let Some((user, key)) = idempotency else {
        return respond(&headers, execute(&http, actor, peer, &headers, &body).await, false);
    };
    let vault = http.state.privacy.keys.clone();
    let hash = idempotency::hash(&body);
    match idempotency::claim(&http.state.db, &vault, user, &key, &hash, chrono::Utc::now()).await {
        Err(e) => app_error_response(e),
        Ok(idempotency::Claim::Replay(status, stored)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            respond(&headers, Answered { status, body: stored.into_bytes(), retry_after: None, executed: true }, true)
        }
        Ok(idempotency::Claim::Fresh) => {
            // Run to the end in a task of its own: a client that gives up, or the edge's
            // timeout, must not cut the request between its writes and its kept answer.
            let run_headers = headers.clone();
            let task = tokio::spawn(async move {
                let answered = execute(&http, actor, peer, &run_headers, &body).await;
                let db = &http.state.db;
                // Refused before it ran (limits, rate): nothing was written, a retry may run.
                let kept = if answered.executed {
                    idempotency::finish(db, &vault, user, &key, answered.status.as_u16(), &answered.body).await
                } else {
                    idempotency::release(db, user, &key).await
                };
                if let Err(e) = kept {
                    tracing::error!(error = %e, "idempotency key not settled");
                }
                answered
            });
            match task.await {
                Ok(answered) => respond(&headers, answered, false),
                Err(e) => app_error_response(AppError::Internal(e.to_string().into())),
            }
        }
    }
}

/// Whether a GraphQL request body runs a mutation (only mutations are kept: a query
/// replayed would be stale, and kept for nothing).
fn is_mutation(body: &[u8]) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let Ok(async_graphql::BatchRequest::Single(request)) = serde_json::from_slice(body) else { return false };
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else { return false };
    match &document.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => request
            .operation_name
            .as_deref()
            .and_then(|name| ops.get(name))
            .is_some_and(|op| op.node.ty == OperationType::Mutation),
    }
}

/// An executed (or refused) GraphQL request, ready to send.
struct Answered {
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u64>,
    /// Whether any resolver ran (so something may have been written).
    executed: bool,
}

fn wants_graphql_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/graphql-response+json"))
}

/// The HTTP response of an answer; `replayed` marks an idempotent replay.
fn respond(headers: &HeaderMap, answered: Answered, replayed: bool) -> Response {
    let content_type =
        if wants_graphql_json(headers) { "application/graphql-response+json" } else { "application/json" };
    let mut resp = (answered.status, answered.body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(seconds) = answered.retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Parses, checks and runs one GraphQL request.
async fn execute(
    http: &Http,
    actor: Option<Actor>,
    peer: Option<axum::Extension<Peer>>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answered {
    let refused = |status: StatusCode, message: &str| Answered {
        status,
        body: serde_json::to_vec(&json!({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}))
            .unwrap_or_default(),
        retry_after: None,
        executed: false,
    };
    if !is_json(headers) {
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let mut request = match serde_json::from_slice::<BatchRequest>(body) {
        Ok(BatchRequest::Single(r)) => r,
        Ok(BatchRequest::Batch(_)) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "batch requests are not supported; send one operation per request",
            );
        }
        Err(e) => {
            return refused(StatusCode::BAD_REQUEST, &format!("body is not a GraphQL request: {e}"));
        }
    };
    if let Some(message) = too_deep(&request) {
        return refused(StatusCode::BAD_REQUEST, &message);
    }
    let mut response = match crate::schema::guards::check(&mut request, &http.state.limits, actor.is_some()) {
        Err(refused) => async_graphql::Response::from_errors(vec![refused]),
        Ok(()) => {
            request = request.data(loaders::new_loader(http.state.db.clone(), actor.clone()));
            if let Some(actor) = actor {
                request = request.data(actor);
            }
            if let Some(address) = client_address(&http.state, headers, peer.map(|p| p.0)) {
                request = request.data(crate::schema::common::ClientAddress(address));
            }
            http.schema.execute(request).await
        }
    };
    response.errors.iter_mut().for_each(crate::schema::error::default_code);
    let wants_graphql_json = wants_graphql_json(headers);
    // Refused before execution: no field has run, so no error has a path.
    let not_executed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let retry_after = (response.data == async_graphql::Value::Null)
        .then(|| {
            response.errors.iter().find_map(|e| {
                let ext = e.extensions.as_ref()?;
                match (ext.get("code"), ext.get("retryAfter")) {
                    (Some(async_graphql::Value::String(c)), Some(async_graphql::Value::Number(n)))
                        if c == "RATE_LIMITED" =>
                    {
                        n.as_u64()
                    }
                    _ => None,
                }
            })
        })
        .flatten();
    let status = match (retry_after, not_executed && wants_graphql_json) {
        (Some(_), _) => StatusCode::TOO_MANY_REQUESTS,
        (None, true) => StatusCode::BAD_REQUEST,
        (None, false) => StatusCode::OK,
    };
    // Serialised straight into the body: no intermediate JSON tree. A request refused
    // before execution has no `data` entry.
    let body = if not_executed {
        serde_json::to_vec(&json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let body = body.unwrap_or_else(|e| {
        tracing::error!(error = %e, "response not serialisable");
        br#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#.to_vec()
    });
    Answered { status, body, retry_after, executed: !not_executed && retry_after.is_none() }
}

/// GraphiQL for people; operations over GET are refused (a GET must never mutate).
async fn graphiql(uri: axum::http::Uri) -> Response {
    if uri.query().is_some_and(|q| q.contains("query=")) {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "send operations with POST and Content-Type: application/json",
        );
    }
    Html(GraphiQLSource::build().endpoint("/graphql").subscription_endpoint("/graphql/ws").finish()).into_response()
}

/// GraphQL over WebSocket (graphql-transport-ws; see `ws.rs`). The socket keeps its
/// connection's slot (`serve_on`'s connection cap) while it is open.
async fn graphql_ws(
    State(http): State<Http>,
    slot: Option<axum::Extension<crate::ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> Response {
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
            crate::ws::serve(socket, state, schema).await;
        })
        .into_response()
}

/// `GET /reports/<name>.csv` for BI tools (see `csv.rs`).
async fn report_csv(
    State(http): State<Http>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    let Some(name) = file.strip_suffix(".csv") else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "reports are served as <name>.csv");
    };
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    match crate::csv::report(&http.state, actor, name, &params).await {
        Ok(resp) => resp,
        Err(AppError::NotFound(_)) => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such report"),
        Err(e @ AppError::Forbidden(_)) => error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string()),
        Err(e) => app_error_response(e),
    }
}

/// `GET /exports/<customers|contacts|deals>.csv`: the records the caller may read (see
/// `export.rs`).
async fn export_csv(
    State(http): State<Http>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    let Some(what) = service::transfer::export::What::parse(&file) else {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "exports are customers.csv, contacts.csv, deals.csv",
        );
    };
    match crate::export::export(&http.state, actor, what, &params).await {
        Ok(resp) => resp,
        Err(e @ AppError::Forbidden(_)) => error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string()),
        Err(e) => app_error_response(e),
    }
}

/// `POST /imports/customers`, `/imports/contacts`: records as CSV (see `import.rs`). The body is read
/// as a stream (the body limit of GraphQL requests does not apply; the import's own does).
async fn import_records(
    State(http): State<Http>,
    axum::extract::Path(kind): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
    request: axum::extract::Request,
) -> Response {
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    let kind = match kind.as_str() {
        "customers" => entity::enums::ImportKind::Customers,
        "contacts" => entity::enums::ImportKind::Contacts,
        "deals" => entity::enums::ImportKind::Deals,
        _ => {
            return error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "imports are /imports/customers, /imports/contacts, /imports/deals",
            );
        }
    };
    let (parts, body) = request.into_parts();
    // The token as verified now: the import re-reads the user's rights with it per chunk.
    let token = bearer(&parts.headers).and_then(|t| t.ok_or(AppError::Unauthenticated("authentication required")));
    let verified = match token {
        Ok(t) => verify_credential(&http.state, t).await,
        Err(e) => Err(e),
    };
    let verified = match verified {
        Ok(v) => v,
        Err(e) => return app_error_response(e),
    };
    crate::import::upload(http.state.clone(), actor, verified, kind, params, &parts.headers, body).await
}

/// `GET /personal-data/<customer id>.json`: `exportPersonalData` as a download.
async fn personal_data(
    State(http): State<Http>,
    axum::extract::Path(file): axum::extract::Path<String>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    let Some(id) = file.strip_suffix(".json").and_then(|s| uuid::Uuid::parse_str(s).ok()) else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "served as <customer id>.json");
    };
    let state = &http.state;
    match service::personal::export(&state.db, &state.privacy.keys, &actor, id).await {
        Ok(doc) => {
            let mut resp = Json(doc).into_response();
            let disposition = format!("attachment; filename=\"personal-data-{id}.json\"");
            if let Ok(v) = axum::http::HeaderValue::from_str(&disposition) {
                resp.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
            }
            resp.headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            resp
        }
        Err(e @ AppError::NotFound(_)) => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", &e.to_string()),
        Err(e @ AppError::Forbidden(_)) => error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string()),
        Err(e) => app_error_response(e),
    }
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
