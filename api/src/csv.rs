//! CSV exports of the reports for BI tools: `GET /reports/<name>.csv`, bearer auth, the
//! same parameters as the GraphQL queries, UTF-8 with a header row, streamed, and safe
//! against formula injection (cells starting with = + - @ are prefixed with ').
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use entity::customer;
use futures::stream::{self, StreamExt};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use service::access::Actor;
use service::classification;
use service::error::{AppError, AppResult};
use service::kernel::money;
use service::reports::{self, Dimension, FeedbackDimension};
use std::collections::HashMap;
use uuid::Uuid;

/// One CSV cell: quoted when needed, and never read as a formula by a spreadsheet.
pub fn cell(value: &str) -> String {
    let guarded =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    if guarded.contains([',', '"', '\n', '\r']) || guarded.starts_with(' ') || guarded.ends_with(' ') {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// One CSV line with its CRLF.
pub fn line<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let mut out = cells.into_iter().map(|c| cell(c.as_ref())).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn date(params: &HashMap<String, String>, name: &str) -> AppResult<NaiveDate> {
    let raw = param(params, name).ok_or_else(|| AppError::invalid(name, "is required (YYYY-MM-DD)"))?;
    service::kernel::parse_date(raw).map_err(|m| AppError::invalid(name, m))
}

fn list<T>(params: &HashMap<String, String>, name: &str, parse: impl Fn(&str) -> Option<T>) -> AppResult<Vec<T>> {
    param(params, name)
        .map(|v| {
            v.split(',')
                .map(|p| parse(p.trim()).ok_or_else(|| AppError::invalid(name, format!("unknown value '{p}'"))))
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn csv_response(name: &str, body: Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

fn lines_body(lines: Vec<String>) -> Body {
    Body::from_stream(stream::iter(lines.into_iter().map(|l| Ok::<_, std::io::Error>(Bytes::from(l)))))
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
    let db = &state.db;
    let (policy, _) = classification::policy(db).await?;
    let base = policy.base_currency.clone();
    let amount = |minor: i64| money::format_minor(minor, &base);
    match name {
        "classification" => {
            let dims = list(params, "groupBy", |v| match v.to_ascii_uppercase().as_str() {
                "TIER" => Some(Dimension::Tier),
                "LIFECYCLE" => Some(Dimension::Lifecycle),
                "CATEGORY" => Some(Dimension::Category),
                "DEPARTMENT" => Some(Dimension::Department),
                "REGION" => Some(Dimension::Region),
                "OWNER" => Some(Dimension::Owner),
                _ => None,
            })?;
            let as_of = param(params, "asOf").map(|_| date(params, "asOf")).transpose()?;
            // The same filter as the GraphQL `ReportFilter` input, as JSON.
            let filter: Option<serde_json::Value> = param(params, "filter")
                .map(|json| serde_json::from_str(json).map_err(|_| AppError::invalid("filter", "must be JSON")))
                .transpose()?;
            let k = state.privacy.min_group;
            let rows = reports::classification_report(db, &actor, &dims, filter.as_ref(), as_of, k).await?;
            let mut header: Vec<String> = Vec::new();
            for d in &dims {
                header.push(d.name().to_string());
                if matches!(d, Dimension::Department | Dimension::Owner) {
                    header.push(format!("{}_name", d.name()));
                }
            }
            header.extend([
                "customers".into(),
                format!("revenue_{}", base.to_lowercase()),
                "revenue_share_pct".into(),
                "suppressed".into(),
            ]);
            let mut lines = vec![line(&header)];
            for r in rows {
                let mut cells: Vec<String> = Vec::new();
                for ((d, k), l) in dims.iter().zip(&r.keys).zip(&r.labels) {
                    cells.push(k.clone().unwrap_or_default());
                    if matches!(d, Dimension::Department | Dimension::Owner) {
                        cells.push(l.clone().unwrap_or_default());
                    }
                }
                cells.extend([
                    r.customers.to_string(),
                    amount(r.revenue),
                    format!("{}.{:02}", r.share_bp / 100, r.share_bp % 100),
                    r.suppressed.to_string(),
                ]);
                lines.push(line(&cells));
            }
            Ok(csv_response(name, lines_body(lines)))
        }
        "tier-migration" => {
            let (from, to) = (date(params, "from")?, date(params, "to")?);
            let cells = reports::tier_migration(db, &actor, from, to, state.privacy.min_group).await?;
            let mut lines = vec![line(["from_tier", "to_tier", "customers"])];
            lines.extend(cells.into_iter().map(|(a, b, n)| line([a, b, n.to_string()])));
            Ok(csv_response(name, lines_body(lines)))
        }
        "staff-activity" => {
            let rows = reports::staff_activity(db, &actor, date(params, "from")?, date(params, "to")?).await?;
            let mut lines = vec![line([
                "user_id",
                "name",
                "department_id",
                "calls",
                "visits",
                "messages",
                "callbacks",
                "deals_won",
                "revenue_won",
            ])];
            lines.extend(rows.into_iter().map(|r| {
                line([
                    r.user_id.to_string(),
                    r.name,
                    r.department_id.to_string(),
                    r.calls.to_string(),
                    r.visits.to_string(),
                    r.messages.to_string(),
                    r.callbacks.to_string(),
                    r.deals_won.to_string(),
                    amount(r.revenue_won),
                ])
            }));
            Ok(csv_response(name, lines_body(lines)))
        }
        "feedback-summary" => {
            let dims = list(params, "groupBy", |v| match v.to_ascii_uppercase().as_str() {
                "KIND" => Some(FeedbackDimension::Kind),
                "CHANNEL" => Some(FeedbackDimension::Channel),
                "STATUS" => Some(FeedbackDimension::Status),
                _ => None,
            })?;
            let rows = reports::feedback_summary(db, &actor, date(params, "from")?, date(params, "to")?, &dims).await?;
            let mut header: Vec<String> = dims.iter().map(|d| d.name().to_string()).collect();
            header.extend(
                ["count", "rated", "average_rating", "nps", "nps_answers", "median_resolution_minutes"]
                    .map(String::from),
            );
            let mut lines = vec![line(&header)];
            for r in rows {
                let mut cells = r.keys.clone();
                cells.extend([
                    r.count.to_string(),
                    r.rated.to_string(),
                    r.average_rating_x100.map(|x| format!("{}.{:02}", x / 100, x % 100)).unwrap_or_default(),
                    r.nps.map(|n| n.to_string()).unwrap_or_default(),
                    r.nps_answers.to_string(),
                    r.median_resolution_minutes.map(|m| m.to_string()).unwrap_or_default(),
                ]);
                lines.push(line(&cells));
            }
            Ok(csv_response(name, lines_body(lines)))
        }
        "customer-grades" => {
            let scope = reports::report_condition(&actor)?;
            // Roles that may not read the customers get pseudonyms, not record ids.
            let ids = if reports::MinGroup::for_actor(&actor, 1).applies {
                Ids::Pseudonyms(state.privacy.keys.clone())
            } else {
                Ids::Records
            };
            Ok(csv_response(name, customer_grades(state.db.clone(), scope, ids, base)))
        }
        _ => Err(AppError::NotFound("report")),
    }
}

/// How customers are named in an export.
#[derive(Clone)]
enum Ids {
    /// Their record ids (the caller may read them).
    Records,
    /// Pseudonyms stable under the current data key (`Keyring::pseudonym`).
    Pseudonyms(std::sync::Arc<service::kernel::vault::Keyring>),
}

impl Ids {
    fn of(&self, id: Uuid) -> String {
        match self {
            Ids::Records => id.to_string(),
            Ids::Pseudonyms(keys) => keys.pseudonym("customer", id),
        }
    }

    fn header(&self) -> &'static str {
        match self {
            Ids::Records => "customer_id",
            Ids::Pseudonyms(_) => "customer_pseudonym",
        }
    }

    /// Whether the owner column is exported: not next to pseudonyms, where a staff member
    /// with few customers would point at them.
    fn with_owner(&self) -> bool {
        matches!(self, Ids::Records)
    }
}

/// Every customer in the report scope with its grades and no personal field (no name,
/// phone, e-mail or address), fetched a thousand rows at a time: memory stays flat
/// whatever the row count. Callers who may not read the customers get pseudonyms.
fn customer_grades(db: sea_orm::DatabaseConnection, scope: Condition, ids: Ids, base: String) -> Body {
    let mut header = vec![ids.header(), "kind", "category", "region", "industry", "department_id"];
    if ids.with_owner() {
        header.push("owner_id");
    }
    let (revenue, margin) = (format!("revenue_{}", base.to_lowercase()), format!("margin_{}", base.to_lowercase()));
    header.extend([
        "lifecycle_stage",
        "tier",
        "computed_tier",
        "rfm_score",
        "frequency_class",
        "value_class",
        "relationship_type",
        "turnover_margin_class",
        "won_deals",
        &revenue,
        &margin,
        "first_purchase_on",
        "last_purchase_on",
    ]);
    let header = line(header);
    let first = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(header)) });
    let rows = stream::unfold(Some(None::<Uuid>), move |after| {
        let db = db.clone();
        let scope = scope.clone();
        let base = base.clone();
        let ids = ids.clone();
        async move {
            let after = after?;
            let mut q = customer::Entity::find().filter(scope).order_by_asc(customer::Column::Id).limit(1000);
            if let Some(a) = after {
                q = q.filter(customer::Column::Id.gt(a));
            }
            match q.all(&db).await {
                Err(e) => {
                    tracing::error!(error = %e, "customer-grades export failed");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
                Ok(batch) if batch.is_empty() => None,
                Ok(batch) => {
                    let next = batch.last().map(|c| c.id);
                    let mut chunk = String::with_capacity(batch.len() * 160);
                    for c in &batch {
                        let opt = |v: Option<String>| v.unwrap_or_default();
                        let mut cells = vec![
                            ids.of(c.id),
                            c.kind.to_string(),
                            c.category.clone(),
                            opt(c.region.clone()),
                            opt(c.industry.clone()),
                            c.department_id.to_string(),
                        ];
                        if ids.with_owner() {
                            cells.push(opt(c.owner_id.map(|o| o.to_string())));
                        }
                        cells.extend([
                            c.lifecycle_stage.to_string(),
                            c.tier.to_string(),
                            opt(c.computed_tier.map(|t| t.to_string())),
                            opt(c.rfm_score.map(|s| s.to_string())),
                            opt(c.frequency_class.map(|x| x.to_string())),
                            opt(c.value_class.map(|x| x.to_string())),
                            opt(c.relationship_type.map(|x| x.to_string())),
                            opt(c.turnover_margin_class.map(|x| x.to_string())),
                            c.won_count.to_string(),
                            money::format_minor(c.revenue_minor, &base),
                            money::format_minor(c.margin_minor, &base),
                            opt(c.first_purchase_on.map(|d| d.to_string())),
                            opt(c.last_purchase_on.map(|d| d.to_string())),
                        ]);
                        chunk.push_str(&line(cells));
                    }
                    Some((Ok(Bytes::from(chunk)), Some(next)))
                }
            }
        }
    });
    Body::from_stream(first.chain(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_never_formulas() {
        assert_eq!(cell("华东"), "华东");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+86 138"), "'+86 138");
        assert_eq!(cell("-5"), "'-5");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(line(["a", "b"]), "a,b\r\n");
    }
}
