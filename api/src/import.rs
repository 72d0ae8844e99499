//! `POST /imports/customers` and `/imports/contacts`: a CSV upload read as it arrives
//! (`docs/import-export.md`).
//! The bytes are decoded and split into records as they arrive
//! (`service::transfer::import::decode`), and each chunk of records is imported before
//! more of the body is read, so memory stays bounded whatever the file's size. The work runs in its own task: a client that goes away mid-upload ends
//! the run as FAILED (what was committed stays, and a re-run picks up the rest).
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use encoding_rs::Encoding;
use entity::enums::{CustomerKind, ImportKind};
use futures::StreamExt;
use serde_json::json;
use service::access::Actor;
use service::category::Catalogue;
use service::error::{AppError, AppResult};
use service::transfer::import as svc;
use service::transfer::import::decode::Records;
use service::transfer::import::{CHUNK, Mapping, Options};
use std::collections::HashMap;
use std::time::Duration;

/// The options of an upload from its query string.
struct Request {
    kind: ImportKind,
    dry_run: bool,
    encoding: Option<&'static Encoding>,
    default_kind: CustomerKind,
    file_name: Option<String>,
    map: HashMap<String, String>,
}

fn request(params: &HashMap<String, String>) -> AppResult<Request> {
    let flag = |name: &str| service::transfer::flag(params, name);
    let encoding = match params.get("encoding").map(|e| e.trim().to_lowercase()) {
        None => None,
        Some(e) if e.is_empty() || e == "auto" => None,
        Some(e) if matches!(e.as_str(), "utf-8" | "utf8") => Some(encoding_rs::UTF_8),
        Some(e) if matches!(e.as_str(), "gb18030" | "gbk" | "gb2312") => Some(encoding_rs::GB18030),
        Some(_) => return Err(AppError::invalid("encoding", "must be utf-8 or gb18030 (or auto)")),
    };
    let default_kind = match params.get("kind").map(|k| k.trim().to_uppercase()) {
        None => CustomerKind::Individual,
        Some(k) => {
            CustomerKind::parse(&k).ok_or_else(|| AppError::invalid("kind", "must be INDIVIDUAL or ORGANIZATION"))?
        }
    };
    let mut map = HashMap::new();
    if let Some(spec) = params.get("map") {
        for pair in spec.split(',').filter(|p| !p.trim().is_empty()) {
            let Some((from, to)) = pair.rsplit_once(':') else {
                return Err(AppError::invalid("map", format!("\"{pair}\" is not header:field")));
            };
            map.insert(from.trim().to_string(), to.trim().to_string());
        }
    }
    let file_name = params.get("fileName").map(|f| f.trim().chars().take(200).collect::<String>());
    Ok(Request { kind: ImportKind::Customers, dry_run: flag("dryRun")?, encoding, default_kind, file_name, map })
}

/// Handles an upload: checks the caller, the size and the header before a run starts,
/// then imports in a task of its own and answers with the run and its first problems.
pub async fn upload(
    state: AppState,
    actor: Actor,
    verified: service::access::jwt::Verified,
    kind: ImportKind,
    params: HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let options = match request(&params) {
        Ok(o) => Request { kind, ..o },
        Err(e) => return failure(e),
    };
    if let Err(e) = actor.require(svc::resource_of(kind), entity::enums::Action::Create) {
        return failure(e);
    }
    let max = state.imports.max_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return too_large(max);
    }
    let trace = service::kernel::trace::current();
    match tokio::spawn(service::kernel::trace::scope(trace, run(state, actor, verified, options, body))).await {
        Ok(response) => response,
        Err(e) => failure(AppError::internal(e)),
    }
}

fn failure(e: AppError) -> Response {
    let status = match e {
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        AppError::RateLimited { .. } | AppError::Collided => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    };
    if let AppError::Internal(source) = &e {
        tracing::error!(error = %source, "import failed");
    }
    let mut error = json!({ "message": e.to_string(), "extensions": { "code": e.code() } });
    if let AppError::Validation(fields) = &e {
        error["extensions"]["fields"] = json!(fields);
    }
    (status, axum::Json(json!({ "errors": [error] }))).into_response()
}

fn too_large_errors(max: u64) -> serde_json::Value {
    let message = format!("the file is larger than {max} bytes (CRM_IMPORT_MAX_BYTES)");
    json!([{ "message": message, "extensions": { "code": "PAYLOAD_TOO_LARGE" } }])
}

fn too_large(max: u64) -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(json!({ "errors": too_large_errors(max) }))).into_response()
}

/// Why reading the body stopped early.
enum Stop {
    TooLarge,
    Idle,
    Broken(String),
}

/// The next bytes of the body: None at its end.
async fn next_bytes(
    stream: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    idle: Duration,
    read: &mut u64,
    max: u64,
) -> Result<Option<axum::body::Bytes>, Stop> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(Stop::Idle),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(Stop::Broken(e.to_string())),
        Ok(Some(Ok(bytes))) => {
            *read += bytes.len() as u64;
            if *read > max { Err(Stop::TooLarge) } else { Ok(Some(bytes)) }
        }
    }
}

fn stop_message(stop: &Stop, idle: Duration) -> String {
    match stop {
        Stop::TooLarge => "the file is larger than the import limit (CRM_IMPORT_MAX_BYTES)".into(),
        Stop::Idle => format!("the upload stalled: no bytes for {} s", idle.as_secs()),
        Stop::Broken(e) => format!("the upload broke off: {e}"),
    }
}

async fn run(
    state: AppState,
    actor: Actor,
    verified: service::access::jwt::Verified,
    request: Request,
    body: Body,
) -> Response {
    let (max, idle) = (state.imports.max_bytes, state.imports.idle_timeout);
    let mut stream = body.into_data_stream();
    let mut records = Records::new(request.encoding);
    let mut read = 0u64;
    // The header first: nothing starts before it maps.
    let header = loop {
        if let Some(line) = records.next_line() {
            break line;
        }
        match next_bytes(&mut stream, idle, &mut read, max).await {
            Ok(Some(bytes)) => records.push(&bytes),
            Ok(None) => {
                records.finish();
                match records.next_line() {
                    Some(line) => break line,
                    None => return failure(AppError::invalid("file", "the file is empty: a header line is required")),
                }
            }
            Err(Stop::TooLarge) => return too_large(max),
            Err(stop) => return failure(AppError::BadRequest(stop_message(&stop, idle))),
        }
    };
    if let Some(why) = header.unreadable {
        return failure(AppError::invalid("header", why));
    }
    let db = &state.db;
    let categories = match Catalogue::load(db).await {
        Ok(c) => service::category::visible(db, &actor, &c).await,
        Err(e) => Err(e),
    };
    let categories = match categories {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let mapping = match Mapping::new(request.kind, &categories, &header.cells, &request.map) {
        Ok(m) => m,
        Err(e) => return failure(e),
    };
    let options = Options {
        kind: request.kind,
        dry_run: request.dry_run,
        default_kind: request.default_kind,
        file_name: request.file_name,
        encoding: records.encoding(),
    };
    let importer = svc::start(db, &state.events, &state.privacy.keys, &actor, mapping, options).await;
    let mut importer = match importer {
        Ok(i) => i,
        Err(e) => return failure(e),
    };
    // The run's heartbeat moves on its own clock while the upload and the chunks go on: a
    // run reads INTERRUPTED only when this instance is gone.
    let beating = {
        let (db, run) = (db.clone(), importer.run_id());
        tokio::spawn(async move {
            // The run was just written with its heartbeat: the first beat is one period on.
            let first = tokio::time::Instant::now() + svc::BEAT_EVERY;
            let mut tick = tokio::time::interval_at(first, svc::BEAT_EVERY);
            loop {
                tick.tick().await;
                if let Err(e) = svc::heartbeat(&db, run).await {
                    tracing::warn!(error = %e, %run, "import heartbeat failed");
                }
            }
        })
    };
    let mut batch = Vec::with_capacity(CHUNK);
    let mut ended = records.done();
    let mut too_big = false;
    let mut spent: Option<u64> = None;
    let resource = svc::resource_of(request.kind);
    let outcome = loop {
        while batch.len() < CHUNK
            && let Some(line) = records.next_line()
        {
            batch.push(line);
        }
        if batch.len() >= CHUNK || (ended && !batch.is_empty()) {
            // Rights as they are now: a role changed or a session ended mid-file stops
            // the run (as it closes a WebSocket), what was imported stays.
            if verified.expires <= chrono::Utc::now() {
                break Err("your token or API key expired during the import; run the file again".to_string());
            }
            match state.sessions.actor(db, &verified).await {
                Ok(now) if now.same_rights(&actor) => {}
                Ok(_) => break Err("your permissions changed during the import; run the file again".to_string()),
                Err(AppError::Unauthenticated(_)) => break Err("your session ended during the import".to_string()),
                Err(e) => break Err(logged(e)),
            }
            // Each line is a match against the base (`service::access::budget`).
            if let Err(e) = state.matching.spend(&actor, resource, u32::try_from(batch.len()).unwrap_or(u32::MAX)) {
                if let AppError::RateLimited { retry_after, .. } = &e {
                    spent = Some(*retry_after);
                }
                break Err(format!("{e}; the lines before this point are imported, run the rest of the file later"));
            }
            let chunk = importer.chunk(std::mem::take(&mut batch)).await;
            // The importer's reads (reports, search) stay on the primary while a replica
            // may lag behind what it just wrote (`service::access::heavy`).
            state.heavy.wrote(actor.id());
            if let Err(e) = chunk {
                break Err(logged(e));
            }
            continue;
        }
        if ended {
            break Ok(());
        }
        match next_bytes(&mut stream, idle, &mut read, max).await {
            Ok(Some(bytes)) => records.push(&bytes),
            Ok(None) => {
                records.finish();
                ended = true;
            }
            Err(stop) => {
                too_big = matches!(stop, Stop::TooLarge);
                break Err(stop_message(&stop, idle));
            }
        }
    };
    beating.abort();
    let (run, problems) = match outcome {
        Ok(()) => match importer.finish().await {
            Ok(done) => done,
            Err(e) => return failure(e),
        },
        Err(why) => importer.fail(why).await,
    };
    tracing::info!(run = %run.id, status = %run.status, lines = run.lines_read, "import ended");
    let mut body = json!({ "importRun": summary(&run), "problems": problems });
    if let Some(retry_after) = spent {
        let message = run.error.clone().unwrap_or_default();
        body["errors"] =
            json!([{ "message": message, "extensions": { "code": "RATE_LIMITED", "retryAfter": retry_after } }]);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after));
        return resp;
    }
    if too_big {
        // The run stopped where the limit fell (what came before stays): the run, and the
        // error a client branches on.
        body["errors"] = too_large_errors(max);
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// An error that ends a run: the run shows its message, the log its cause.
fn logged(e: AppError) -> String {
    if let AppError::Internal(source) = &e {
        tracing::error!(error = %source, "import stopped");
    }
    e.to_string()
}

/// A run as the upload's answer shows it (the GraphQL `ImportRun` fields of the same names).
fn summary(run: &entity::import_run::Model) -> serde_json::Value {
    json!({
        "id": run.id,
        "status": run.status,
        "dryRun": run.dry_run,
        "encoding": run.encoding,
        "linesRead": run.lines_read,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "duplicate": run.duplicate,
        "skipped": run.skipped,
        "invalid": run.invalid,
        "failed": run.failed,
        "error": run.error,
    })
}
