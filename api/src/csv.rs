//! CSV exports of the reports for BI tools: `GET /reports/<name>.csv`, bearer auth, the
//! same parameters as the GraphQL queries (`service::transfer::report`), UTF-8 with a
//! header row, streamed.
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use service::access::Actor;
use service::error::AppResult;
use service::transfer::csv::FileFormat;
use service::transfer::report::{self, ReportFile};
use std::collections::HashMap;

fn csv_response(name: &str, format: FileFormat, body: Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Builds the CSV response of a named report.
///
/// # Errors
/// NOT_FOUND for an unknown report, VALIDATION for bad parameters, FORBIDDEN without report access.
pub async fn report(
    state: &AppState,
    actor: Actor,
    name: &str,
    params: &HashMap<String, String>,
) -> AppResult<Response> {
    let format = FileFormat::from_params(params)?;
    // A heavy read (`service::access::heavy`): the report, then each page of the grades file.
    let (heavy, user) = (state.heavy.clone(), actor.id());
    let turn = heavy.enter(user).await?;
    let file =
        report::report(turn.db(&state.db), &state.privacy.keys, state.privacy.min_group, &actor, name, params).await?;
    drop(turn);
    let body = match file {
        ReportFile::Lines(lines) => Body::from_stream(stream::iter(
            lines
                .into_iter()
                .enumerate()
                .map(move |(i, l)| Ok::<_, std::io::Error>(Bytes::from(format.encode(l, i == 0)))),
        )),
        ReportFile::Grades(grades) => {
            let header = grades.header();
            let first = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(format.encode(header, true))) });
            let rows = stream::unfold(Some(grades), move |grades| {
                let heavy = heavy.clone();
                async move {
                    let mut grades = grades?;
                    let _turn = heavy.next_turn(user).await;
                    match grades.next_chunk().await {
                        Ok(Some(chunk)) => Some((Ok(Bytes::from(format.encode(chunk, false))), Some(grades))),
                        Ok(None) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "customer-grades export failed");
                            Some((Err(std::io::Error::other("export failed")), None))
                        }
                    }
                }
            });
            Body::from_stream(first.chain(rows))
        }
    };
    Ok(csv_response(name, format, body))
}
