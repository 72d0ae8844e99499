//! `GET /exports/<customers|contacts|deals>.csv`: the records as CSV
//! (`service::transfer::export`), streamed a page at a time.
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use service::access::Actor;
use service::error::AppResult;
use service::transfer::export::{self, What};
use std::collections::HashMap;

/// Streams the export: the status and the first page are only sent once the first page
/// is read, so a bad filter or a missing grant is an error status, not a cut-off file.
///
/// # Errors
/// FORBIDDEN (no read grant), VALIDATION (filter), database errors.
pub async fn export(
    state: &AppState,
    actor: Actor,
    what: What,
    params: &HashMap<String, String>,
) -> AppResult<Response> {
    let format = service::transfer::csv::FileFormat::from_params(params)?;
    let filter = params.get("filter").map(String::as_str);
    // Each page is a heavy read of its own: a client reading slowly holds no share.
    let (heavy, user) = (state.heavy.clone(), actor.id());
    let turn = heavy.enter(user).await?;
    let (export, first) = export::start(turn.db(&state.db), state.privacy.keys.clone(), actor, what, filter).await?;
    drop(turn);
    let rest = futures::stream::unfold(export, move |mut export| {
        let heavy = heavy.clone();
        async move {
            let _turn = heavy.next_turn(user).await;
            match export.next_chunk().await {
                Ok(Some(text)) => Some((Ok(Bytes::from(format.encode(text, false))), export)),
                Ok(None) => None,
                Err(e) => {
                    // The status is sent: a cut-off body is all a client can be told.
                    tracing::error!(error = %e, what = ?export.what(), "export stopped");
                    export.stop();
                    Some((Err(std::io::Error::other(e.to_string())), export))
                }
            }
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(format.encode(first, true))) }),
        rest,
    ));
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.csv\"", what.subject())) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
