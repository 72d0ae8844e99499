//! One log line per HTTP request (`crm::request`, level info): request id, method, path
//! (never the query string, which may hold a filter on personal fields), status, duration,
//! user id, GraphQL operation name and error codes, and the W3C trace id when the caller
//! sent a `traceparent`. Never a token, a password, a body or a personal field.
//!
//! `X-Request-Id` is taken from the caller when it is a sane token (1 to 128 of
//! `A-Z a-z 0-9 - _ . :`), else made here, and returned on every response.
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use uuid::Uuid;

/// What the GraphQL route knows of a request, for its log line (a response extension).
#[derive(Clone, Debug, Default)]
pub struct Note {
    /// The operation's name as sent, folded to `(unnamed)` or `(invalid)`.
    pub operation: Option<String>,
    /// The error codes of the answer, each once, in order.
    pub codes: Vec<String>,
}

/// The caller, once known (a response extension set by the edge).
#[derive(Clone, Copy, Debug)]
pub struct User(pub Uuid);

/// This request's id and trace, for whatever it starts (a request extension).
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    /// A valid W3C `traceparent` sent by the caller.
    pub traceparent: Option<String>,
}

fn sane_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?.trim();
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_string())
}

/// `version-traceid-parentid-flags` as W3C Trace Context writes it (version 00, ids not
/// all zeros), lower-case hex.
pub fn valid_traceparent(value: &str) -> Option<String> {
    let v = value.trim();
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let [version, trace, parent, flags] = parts[..] else { return None };
    let fine = version == "00"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    fine.then(|| v.to_string())
}

/// An operation name as logged: GraphQL names are `[_A-Za-z][_0-9A-Za-z]*`; anything else
/// (or a very long one) is folded, so the log cannot be stuffed through it.
pub fn operation_label(name: Option<&str>) -> String {
    match name {
        None => "(unnamed)".into(),
        Some(n)
            if !n.is_empty()
                && n.len() <= 64
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !n.as_bytes()[0].is_ascii_digit() =>
        {
            n.to_string()
        }
        Some(_) => "(invalid)".into(),
    }
}

/// The middleware: outermost, so that every answer (refusals of the edge included) gets
/// its id and its line.
pub async fn access_log(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request.headers().get("x-request-id").and_then(sane_id).unwrap_or_else(|| Uuid::new_v4().to_string());
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).and_then(valid_traceparent);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    // The route's pattern (`/exports/{file}`), a bounded label; unknown paths fold.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |m| m.as_str().to_string());
    request.extensions_mut().insert(Meta { id: id.clone(), traceparent: traceparent.clone() });
    // The trace is current for all the request does (the outbox events it writes keep it).
    let mut response = service::kernel::trace::scope(traceparent.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let note = response.extensions().get::<Note>().cloned().unwrap_or_default();
    let user = response.extensions().get::<User>().map(|u| u.0.to_string());
    let trace_id = traceparent.as_deref().and_then(|t| t.split('-').nth(1)).map(str::to_string);
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    // Only a known caller's operation names take label places (anonymous ones could fill them).
    let operation = match user {
        Some(_) => crate::meters::operation(note.operation.as_deref().unwrap_or("-")),
        None => "(anonymous)".to_string(),
    };
    let outcome = match note.codes.first() {
        Some(code) => code.clone(),
        None if status >= 400 => format!("HTTP_{status}"),
        None => "OK".into(),
    };
    if status == 413 {
        crate::meters::refused("body_bytes");
    }
    metrics::counter!("crm_http_requests_total", "route" => route.clone(), "operation" => operation.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("crm_http_request_duration_seconds", "route" => route, "operation" => operation)
        .record(elapsed);
    tracing::info!(
        target: "crm::request",
        request_id = %id,
        method = %method,
        path = %path,
        status,
        ms = elapsed * 1000.0,
        user = user.as_deref().unwrap_or("-"),
        operation = note.operation.as_deref().unwrap_or("-"),
        codes = %note.codes.join(","),
        trace_id = trace_id.as_deref().unwrap_or("-"),
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_traces_and_names_are_checked_before_they_are_logged() {
        assert_eq!(sane_id(&HeaderValue::from_static("req-42_a.b:c")).as_deref(), Some("req-42_a.b:c"));
        assert_eq!(sane_id(&HeaderValue::from_static("two words")), None);
        assert_eq!(sane_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()), None);
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(valid_traceparent(tp).as_deref(), Some(tp));
        assert_eq!(valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(valid_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), None);
        assert_eq!(valid_traceparent("garbage"), None);
        assert_eq!(operation_label(Some("CustomerPage")), "CustomerPage");
        assert_eq!(operation_label(None), "(unnamed)");
        assert_eq!(operation_label(Some("a b\nFAKE LINE")), "(invalid)");
        assert_eq!(operation_label(Some(&"A".repeat(65))), "(invalid)");
    }
}
