//! Reports and record exports as downloads: `GET /reports/<name>.csv|.xlsx` and
//! `GET /exports/<customers|contacts|deals>.csv|.xlsx`. The service checks the grant and
//! the parameters and reads the first rows (`service::transfer::{report, export}`) before
//! any byte is sent, so those failures are an error status; the rest is read a page at a
//! time, each page a heavy read of its own (a client reading slowly holds no share).
//! CSV is sent as each page is read; a workbook is built whole in a temporary file
//! (`service::transfer::xlsx`) before the status, and then sent; memory flat either way.
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use service::access::Actor;
use service::access::heavy::HeavyReads;
use service::error::{AppError, AppResult};
use service::transfer::csv::{self, FileFormat};
use service::transfer::export::{self, What};
use service::transfer::table::{Row, Table};
use service::transfer::{report, xlsx};
use std::collections::HashMap;
use uuid::Uuid;

/// The file formats served.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Csv(FileFormat),
    Xlsx,
}

impl Format {
    /// A file name's stem and format (`customers.xlsx`); None for another extension.
    pub fn split(file: &str) -> Option<(&str, bool)> {
        if let Some(stem) = file.strip_suffix(".csv") {
            Some((stem, false))
        } else {
            file.strip_suffix(".xlsx").map(|stem| (stem, true))
        }
    }

    /// The format of a file asked for with these parameters (`bom`, `encoding`: CSV only).
    ///
    /// # Errors
    /// VALIDATION naming the parameter.
    pub fn of(xlsx: bool, params: &HashMap<String, String>) -> AppResult<Format> {
        if !xlsx {
            return FileFormat::from_params(params).map(Format::Csv);
        }
        for name in ["bom", "encoding"] {
            if params.contains_key(name) {
                return Err(AppError::invalid(name, "is for .csv files; a workbook has no byte encoding to choose"));
            }
        }
        Ok(Format::Xlsx)
    }
}

/// A named report (`service::transfer::report`) as a file.
///
/// # Errors
/// NOT_FOUND for an unknown report, VALIDATION for bad parameters, FORBIDDEN without report access.
pub async fn report(
    state: &AppState,
    actor: Actor,
    name: &str,
    format: Format,
    params: &HashMap<String, String>,
) -> AppResult<Response> {
    let (heavy, user) = (state.heavy.clone(), actor.id());
    let turn = heavy.enter(user).await?;
    let table =
        report::report(turn.db(&state.db), &state.privacy.keys, state.privacy.min_group, &actor, name, params).await?;
    drop(turn);
    send(heavy, user, table, format).await
}

/// The records as a file (`service::transfer::export`).
///
/// # Errors
/// FORBIDDEN (no read grant), VALIDATION (filter), database errors.
pub async fn export(
    state: &AppState,
    actor: Actor,
    what: What,
    format: Format,
    params: &HashMap<String, String>,
) -> AppResult<Response> {
    let filter = params.get("filter").map(String::as_str);
    let (heavy, user) = (state.heavy.clone(), actor.id());
    let turn = heavy.enter(user).await?;
    let table = export::start(turn.db(&state.db), state.privacy.keys.clone(), actor, what, filter).await?;
    drop(turn);
    send(heavy, user, table, format).await
}

/// The rows after those read: those waiting, then a page per heavy turn.
async fn next_rows(table: &mut Table, heavy: &HeavyReads, user: Uuid) -> AppResult<Option<Vec<Row>>> {
    if let Some(rows) = table.take_ready() {
        return Ok(Some(rows));
    }
    let _turn = heavy.next_turn(user).await;
    table.read_more().await
}

async fn send(heavy: HeavyReads, user: Uuid, table: Table, format: Format) -> AppResult<Response> {
    let name = table.name().to_string();
    let (body, length, content_type, extension) = match format {
        Format::Csv(file) => (csv_body(heavy, user, table, file), None, file.content_type(), "csv"),
        Format::Xlsx => {
            let (body, length) = xlsx_body(heavy, user, table).await?;
            (body, Some(length), xlsx::CONTENT_TYPE, "xlsx")
        }
    };
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{extension}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The status is sent before the rest is read: a cut-off body is all a client can be told.
fn cut_off(name: &str, e: &AppError) -> std::io::Error {
    tracing::error!(error = %e, file = name, "download stopped");
    std::io::Error::other("the file could not be finished")
}

fn csv_body(heavy: HeavyReads, user: Uuid, mut table: Table, file: FileFormat) -> Body {
    let mut first = csv::line(table.header());
    if let Some(rows) = table.take_ready() {
        first.push_str(&csv::rows(&rows));
    }
    let head = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(file.encode(first, true))) });
    let rest = stream::unfold(Some(table), move |table| {
        let heavy = heavy.clone();
        async move {
            let mut table = table?;
            match next_rows(&mut table, &heavy, user).await {
                Ok(Some(rows)) => Some((Ok(Bytes::from(file.encode(csv::rows(&rows), false))), Some(table))),
                Ok(None) => None,
                Err(e) => Some((Err(cut_off(table.name(), &e)), None)),
            }
        }
    });
    Body::from_stream(head.chain(rest))
}

/// Writes rows into the sheet on a blocking thread (the sheet's file is written there).
async fn push(mut sheet: xlsx::Sheet, rows: Vec<Row>) -> AppResult<xlsx::Sheet> {
    tokio::task::spawn_blocking(move || sheet.push(&rows).map(|()| sheet)).await.map_err(AppError::internal)?
}

/// Reads every row into the workbook and hands back the finished file.
async fn build(mut sheet: xlsx::Sheet, mut table: Table, heavy: HeavyReads, user: Uuid) -> AppResult<std::fs::File> {
    while let Some(rows) = next_rows(&mut table, &heavy, user).await? {
        sheet = push(sheet, rows).await?;
    }
    tokio::task::spawn_blocking(move || sheet.finish()).await.map_err(AppError::internal)?
}

/// The whole workbook is built before the status is sent: a file too large for a sheet or a
/// database failure is an error status, not a cut-off body, and the build counts against
/// the caller's requests in flight and the request timeout (a workbook that takes longer is
/// stopped with TIMEOUT; CSV, sent as it is read, has no such bound). Then the finished
/// file is sent with its length.
async fn xlsx_body(heavy: HeavyReads, user: Uuid, table: Table) -> AppResult<(Body, u64)> {
    let sheet = xlsx::Sheet::new(table.name(), table.header())?;
    let file = build(sheet, table, heavy, user).await?;
    let length = file.metadata().map_err(AppError::internal)?.len();
    let chunks = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 64 * 1024);
    Ok((Body::from_stream(chunks), length))
}
