//! The file routes: reports and record exports (CSV, .xlsx), CSV imports, the personal-data export.
use super::*;

/// `GET /reports/<name>.csv` or `.xlsx` for BI tools (see `downloads.rs`).
pub(super) async fn report_file(
    State(http): State<Http>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    use crate::downloads::{self, Format};
    let Some((name, xlsx)) = Format::split(&file) else {
        return error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "reports are served as <name>.csv or <name>.xlsx");
    };
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    let format = match Format::of(xlsx, &params) {
        Ok(format) => format,
        Err(e) => return app_error_response(e),
    };
    match downloads::report(&http.state, actor, name, format, &params).await {
        Ok(resp) => resp,
        Err(AppError::NotFound(_)) => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such report"),
        Err(e @ AppError::Forbidden(_)) => error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string()),
        Err(e) => app_error_response(e),
    }
}

/// `GET /exports/<customers|contacts|deals>.csv` or `.xlsx`: the records the caller may
/// read (see `downloads.rs`).
pub(super) async fn export_file(
    State(http): State<Http>,
    axum::extract::Path(file): axum::extract::Path<String>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    use crate::downloads::{self, Format};
    let Some(axum::Extension(Caller(actor))) = caller else {
        return app_error_response(AppError::Unauthenticated("authentication required"));
    };
    let parsed =
        Format::split(&file).and_then(|(stem, xlsx)| Some((service::transfer::export::What::parse(stem)?, xlsx)));
    let Some((what, xlsx)) = parsed else {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "exports are customers, contacts and deals, each as .csv or .xlsx",
        );
    };
    let format = match Format::of(xlsx, &params) {
        Ok(format) => format,
        Err(e) => return app_error_response(e),
    };
    match downloads::export(&http.state, actor, what, format, &params).await {
        Ok(resp) => resp,
        Err(e @ AppError::Forbidden(_)) => error_response(StatusCode::FORBIDDEN, "FORBIDDEN", &e.to_string()),
        Err(e) => app_error_response(e),
    }
}

/// `POST /imports/customers`, `/imports/contacts`: records as CSV (see `import.rs`). The body is read
/// as a stream (the body limit of GraphQL requests does not apply; the import's own does).
pub(super) async fn import_records(
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
pub(super) async fn personal_data(
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
