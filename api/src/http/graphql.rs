//! `POST /graphql` (and GET for queries): our own route, not async-graphql-axum's extractor,
//! which would run GET mutations, read any Content-Type as JSON and ignore the body limit.
//! Nesting limits, content negotiation, idempotent replays, the GraphiQL page.
use super::*;
use crate::documents::{Documents, Parsed, Refused, Reused};
use async_graphql::parser::types::ExecutableDocument;

/// Deepest nesting of brackets in a query text, and of lists and objects in its variables.
/// async-graphql parses and coerces input values recursively before any of its limits
/// apply (`limit_depth` counts selections, not values), so a deeply nested filter or list
/// literal would overflow the worker's stack and abort the process. Real operations stay
/// far below: the deepest filter (and/or 5 levels) with 12 levels of selections is ~30.
pub(super) const MAX_QUERY_NESTING: usize = 64;
pub(super) const MAX_VARIABLE_NESTING: usize = 32;

/// The deepest nesting of `{`, `[` and `(` in GraphQL text, outside strings and comments.
pub(super) fn query_nesting(query: &str) -> usize {
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

pub(super) fn is_json(headers: &HeaderMap) -> bool {
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

pub(super) async fn graphql_post(
    State(http): State<Http>,
    caller: Option<axum::Extension<Caller>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let actor = caller.map(|c| c.0.0);
    // A document named by its hash is written into the body here, once: what runs, what
    // tells a mutation and what an Idempotency-Key keeps are then the same document.
    let body = if is_json(&headers) {
        match whole(&http.state.documents, body, actor.is_some()) {
            Ok(body) => body,
            Err(refusal) => return respond(&headers, refused_document(&headers, None, refusal), false),
        }
    } else {
        body
    };
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
            let note = crate::access_log::Note { operation: Some("(replayed)".into()), codes: Vec::new() };
            respond(
                &headers,
                Answered { status, body: stored.into_bytes(), retry_after: None, executed: true, note },
                true,
            )
        }
        Ok(idempotency::Claim::Fresh) => {
            // Run to the end in a task of its own: a client that gives up, or the edge's
            // timeout, must not cut the request between its writes and its kept answer.
            let run_headers = headers.clone();
            let trace = service::kernel::trace::current();
            let task = tokio::spawn(async move {
                let answered =
                    service::kernel::trace::scope(trace, execute(&http, actor, peer, &run_headers, &body)).await;
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
pub(super) fn is_mutation(body: &[u8]) -> bool {
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

/// The body of a request whose document its persisted-query hash names, with the document
/// written in (`query`; the hash stays, and is checked again), in the same bytes for the
/// hash alone and for the hash with its document; in trusted-only mode, refused unless its
/// document is the manifest's. Any other body is left as it is (`execute` refuses what is
/// not a request).
fn whole(documents: &Documents, body: Bytes, learn: bool) -> Result<Bytes, Refused> {
    const NAMED: &[u8] = b"persistedQuery";
    if !documents.trusted_only() && !body.windows(NAMED.len()).any(|w| w == NAMED) {
        return Ok(body);
    }
    let Ok(BatchRequest::Single(mut request)) = serde_json::from_slice::<BatchRequest>(&body) else { return Ok(body) };
    documents.resolve(&mut request, learn)?;
    if !Documents::names_by_hash(&request) {
        return Ok(body);
    }
    let extensions: std::collections::BTreeMap<&String, &async_graphql::Value> = request.extensions.iter().collect();
    let rewritten = json!({
        "query": request.query,
        "operationName": request.operation_name,
        "variables": request.variables,
        "extensions": extensions,
    });
    Ok(serde_json::to_vec(&rewritten).map(Bytes::from).unwrap_or(body))
}

/// A request refused before anything ran: one error with its code.
fn refused_before(status: StatusCode, code: &str, message: &str, operation: Option<String>) -> Answered {
    let error = json!({"message": message, "extensions": {"code": code}});
    Answered {
        status,
        body: serde_json::to_vec(&json!({ "errors": [error] })).unwrap_or_default(),
        retry_after: None,
        executed: false,
        note: crate::access_log::Note { operation, codes: vec![code.into()] },
    }
}

/// The answer to a request whose document is refused, before anything runs (as a parse
/// error is: Apollo's clients read the code).
fn refused_document(headers: &HeaderMap, operation: Option<String>, refusal: Refused) -> Answered {
    let status = if wants_graphql_json(headers) { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    refused_before(status, refusal.code, &refusal.message, operation)
}

/// An executed (or refused) GraphQL request, ready to send.
pub(super) struct Answered {
    status: StatusCode,
    body: Vec<u8>,
    retry_after: Option<u64>,
    /// Whether any resolver ran (so something may have been written).
    executed: bool,
    /// For the request's log line.
    note: crate::access_log::Note,
}

pub(super) fn wants_graphql_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/graphql-response+json"))
}

/// The HTTP response of an answer; `replayed` marks an idempotent replay.
pub(super) fn respond(headers: &HeaderMap, answered: Answered, replayed: bool) -> Response {
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
    resp.extensions_mut().insert(answered.note);
    resp
}

/// Parses, checks and runs one GraphQL request.
pub(super) async fn execute(
    http: &Http,
    actor: Option<Actor>,
    peer: Option<axum::Extension<Peer>>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answered {
    let refused = |status: StatusCode, message: &str| refused_before(status, "BAD_REQUEST", message, None);
    if !is_json(headers) {
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let mut attempt = 0;
    let mut operation;
    let mut response = loop {
        // Read as one request directly: async-graphql's `BatchRequest` (an untagged enum)
        // buffers the whole body into serde's generic content before it tries each form.
        if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return refused(
                StatusCode::BAD_REQUEST,
                "batch requests are not supported; send one operation per request",
            );
        }
        let mut request = match serde_json::from_slice::<async_graphql::Request>(body) {
            Ok(r) => r,
            Err(e) => {
                return refused(StatusCode::BAD_REQUEST, &format!("body is not a GraphQL request: {e}"));
            }
        };
        operation = Some(crate::access_log::operation_label(request.operation_name.as_deref()));
        if let Err(refusal) = http.state.documents.resolve(&mut request, actor.is_some()) {
            return refused_document(headers, operation, refusal);
        }
        if let Some(message) = too_deep(&request) {
            return refused(StatusCode::BAD_REQUEST, &message);
        }
        let reused = http.state.documents.reuse_parsed(&request);
        if let (Some(actor), Some(Reused { document, parsed: Parsed::Checked })) = (&actor, &reused)
            && let Some(answered) = direct(http, actor, document, &request, &operation).await
        {
            return answered;
        }
        let parsed = reused.map_or(Parsed::Unchecked, |reused| reused.into_request(&mut request));
        let response = match crate::schema::guards::check(&mut request, &http.state.limits, actor.is_some()) {
            Err(refused) => {
                crate::meters::refused("operation_limits");
                async_graphql::Response::from_errors(vec![refused])
            }
            Ok(()) => {
                let kept = http.state.documents.keep_parsed(&mut request);
                request = request.data(loaders::new_loader(http.state.db.clone(), actor.clone()));
                // Interactive work until the request ends (heavy reads give way to it); only
                // a known caller's, so that anonymous traffic (logins) cannot slow reports.
                if actor.is_some() {
                    request = request.data(service::kernel::interactive::Ticket::begin());
                }
                if let Some(actor) = actor.clone() {
                    request = request.data(actor);
                }
                if let Some(address) = client_address(&http.state, headers, peer.as_ref().map(|p| p.0)) {
                    request = request.data(crate::schema::common::ClientAddress(address));
                }
                // A document validated before runs without the validation rules.
                let (schema, unchecked) = match parsed {
                    Parsed::Checked => (&http.checked, None),
                    Parsed::Unchecked => (&http.schema, kept.then(|| request.query.clone())),
                };
                let (response, committed) = service::kernel::store::noting_commits(schema.execute(request)).await;
                if let Some(query) = unchecked
                    && response.data != async_graphql::Value::Null
                {
                    // Run, so validated: an invalid document is answered without data.
                    http.state.documents.passed(&query);
                }
                if committed && let Some(actor) = &actor {
                    // The writer's reports stay on the primary while a replica may lag.
                    http.state.heavy.wrote(actor.id());
                }
                if committed && only_collided(&response) {
                    // Part of it was written before the collision: not run again.
                    break response;
                }
                response
            }
        };
        attempt += 1;
        if attempt > COLLISION_RETRIES || !only_collided(&response) {
            break response;
        }
        // A write that collided with another was rolled back whole, and no other field
        // wrote anything: run the request again after a short, spread-out pause.
        let pause = 10 * u64::from(attempt) + u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 20);
        tracing::debug!(attempt, pause, "request collided with another write; running it again");
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
    };
    response.errors.iter_mut().for_each(crate::schema::error::default_code);
    let mut codes: Vec<String> = Vec::new();
    for e in &response.errors {
        if let Some(async_graphql::Value::String(c)) = e.extensions.as_ref().and_then(|x| x.get("code"))
            && !codes.contains(c)
        {
            codes.push(c.clone());
        }
    }
    let note = crate::access_log::Note { operation, codes };
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
    let cap = http.state.limits.response_bytes;
    let body = if not_executed {
        crate::capped::to_json(&json!({ "errors": response.errors }), cap)
    } else {
        crate::capped::to_json(&response, cap)
    };
    let body = body.unwrap_or_else(|| {
        tracing::warn!(cap, "answer over the response cap not sent");
        crate::meters::refused("response_bytes");
        serde_json::to_vec(&json!({ "data": null, "errors": [crate::capped::too_large(cap)] })).unwrap_or_default()
    });
    Answered { status, body, retry_after, executed: !not_executed && retry_after.is_none(), note }
}

/// The answer of a request the database answers whole (`schema::compiled::direct`), held
/// to the guards and the response cap as any other; `None` runs it the ordinary way.
async fn direct(
    http: &Http,
    actor: &Actor,
    document: &ExecutableDocument,
    request: &async_graphql::Request,
    operation: &Option<String>,
) -> Option<Answered> {
    crate::schema::guards::check_document(document, &http.state.limits, true).ok()?;
    let only = crate::documents::only_operation(document, request.operation_name.as_deref())?;
    let body = crate::schema::compiled::direct(&http.state, actor, &only.node, &request.variables).await?;
    if body.len() > http.state.limits.response_bytes {
        return None;
    }
    crate::meters::direct();
    Some(Answered {
        status: StatusCode::OK,
        body: body.into_bytes(),
        retry_after: None,
        executed: true,
        note: crate::access_log::Note { operation: operation.clone(), codes: Vec::new() },
    })
}

/// How many times a request whose writes collided with others' is run again before its
/// answer (RATE_LIMITED, `collided`) goes out.
pub(super) const COLLISION_RETRIES: u32 = 3;

/// Whether every error of an answer is a collided write and no root field has a value
/// (a mutation field that committed has one). The caller also checks that no use case
/// committed during the request: then nothing was written at all and the request may run
/// again as it was sent.
pub(super) fn only_collided(response: &async_graphql::Response) -> bool {
    let collided = |e: &async_graphql::ServerError| {
        e.extensions.as_ref().and_then(|x| x.get("collided")) == Some(&async_graphql::Value::Boolean(true))
    };
    let nothing = match &response.data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields.values().all(|v| *v == async_graphql::Value::Null),
        _ => false,
    };
    !response.errors.is_empty() && nothing && response.errors.iter().all(collided)
}

/// `GET /graphql`: the explorer for people; operations over GET are refused (a GET must never mutate).
pub(super) async fn explorer(uri: axum::http::Uri) -> Response {
    // An operation in the query string (`?query=`, however it is encoded) is refused, not
    // ignored: the client meant to run it.
    let operation = uri.query().is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "query"));
    if operation {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            "send operations with POST and Content-Type: application/json",
        );
    }
    explorer_file(EXPLORER_PAGE, "text/html; charset=utf-8")
}

/// The explorer's page, script and style sheet (`api/explorer/`, docs/explorer.md), built
/// into the binary: nothing is fetched from another origin.
const EXPLORER_PAGE: &str = include_str!("../../explorer/index.html");
const EXPLORER_SCRIPT: &str = include_str!("../../explorer/explorer.js");
const EXPLORER_STYLE: &str = include_str!("../../explorer/explorer.css");

/// `GET /explorer/<file>`: the explorer's script and style sheet.
pub(super) async fn explorer_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match file.as_str() {
        "explorer.js" => explorer_file(EXPLORER_SCRIPT, "text/javascript; charset=utf-8"),
        "explorer.css" => explorer_file(EXPLORER_STYLE, "text/css; charset=utf-8"),
        _ => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such file"),
    }
}

fn explorer_file(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The page may load only its own script and style, and talk only to its own origin.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}
