//! The reports as CSV files for BI tools (`GET /reports/<name>.csv` in the api): the same
//! parameters as the GraphQL queries, a header row, and the customer grades read a page
//! at a time. Cells are never read as formulas (`csv`).
use crate::access::Actor;
use crate::classification;
use crate::error::{AppError, AppResult};
use crate::kernel::money;
use crate::kernel::vault::Keyring;
use crate::reports::{self, Dimension, FeedbackDimension};
use crate::transfer::csv::line;
use chrono::NaiveDate;
use entity::customer;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

fn date(params: &HashMap<String, String>, name: &str) -> AppResult<NaiveDate> {
    let raw = param(params, name).ok_or_else(|| AppError::invalid(name, "is required (YYYY-MM-DD)"))?;
    crate::kernel::parse_date(raw).map_err(|m| AppError::invalid(name, m))
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

/// The CSV file of a named report for `actor`, from the same parameters as the GraphQL
/// queries (`params`, as a query string gives them). Groups smaller than `min_group` are
/// suppressed (`reports::MinGroup`).
///
/// # Errors
/// NOT_FOUND for an unknown report, VALIDATION for bad parameters, FORBIDDEN without report access.
pub async fn report(
    db: &DatabaseConnection,
    vault: &Arc<Keyring>,
    min_group: i64,
    actor: &Actor,
    name: &str,
    params: &HashMap<String, String>,
) -> AppResult<ReportFile> {
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
            let k = min_group;
            let rows = reports::classification_report(db, actor, &dims, filter.as_ref(), as_of, k).await?;
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
            Ok(ReportFile::Lines(lines))
        }
        "tier-migration" => {
            let (from, to) = (date(params, "from")?, date(params, "to")?);
            let cells = reports::tier_migration(db, actor, from, to, min_group).await?;
            let mut lines = vec![line(["from_tier", "to_tier", "customers"])];
            lines.extend(cells.into_iter().map(|(a, b, n)| line([a, b, n.to_string()])));
            Ok(ReportFile::Lines(lines))
        }
        "staff-activity" => {
            let rows = reports::staff_activity(db, actor, date(params, "from")?, date(params, "to")?).await?;
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
            Ok(ReportFile::Lines(lines))
        }
        "feedback-summary" => {
            let dims = list(params, "groupBy", |v| match v.to_ascii_uppercase().as_str() {
                "KIND" => Some(FeedbackDimension::Kind),
                "CHANNEL" => Some(FeedbackDimension::Channel),
                "STATUS" => Some(FeedbackDimension::Status),
                _ => None,
            })?;
            let rows = reports::feedback_summary(db, actor, date(params, "from")?, date(params, "to")?, &dims).await?;
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
            Ok(ReportFile::Lines(lines))
        }
        "customer-grades" => {
            let scope = reports::report_condition(actor)?;
            // Roles that may not read the customers get pseudonyms, not record ids.
            let ids = if reports::MinGroup::for_actor(actor, 1).applies {
                Ids::Pseudonyms(vault.clone())
            } else {
                Ids::Records
            };
            Ok(ReportFile::Grades(Grades { db: db.clone(), scope, ids, base, after: None, done: false }))
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
    Pseudonyms(Arc<Keyring>),
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

/// A report's file: its lines, or the customer grades read a page at a time.
pub enum ReportFile {
    Lines(Vec<String>),
    Grades(Grades),
}

/// Every customer in the report scope with its grades and no personal field (no name,
/// phone, e-mail or address), fetched a thousand rows at a time: memory stays flat
/// whatever the row count. Callers who may not read the customers get pseudonyms.
pub struct Grades {
    db: DatabaseConnection,
    scope: Condition,
    ids: Ids,
    base: String,
    after: Option<Uuid>,
    done: bool,
}

impl Grades {
    /// The header row.
    pub fn header(&self) -> String {
        let ids = &self.ids;
        let mut header = vec![ids.header(), "kind", "category", "region", "industry", "department_id"];
        if ids.with_owner() {
            header.push("owner_id");
        }
        let base = self.base.to_lowercase();
        let (revenue, margin) = (format!("revenue_{base}"), format!("margin_{base}"));
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
        line(header)
    }

    /// The lines of the next thousand customers; None when every one has been sent.
    ///
    /// # Errors
    /// Database errors.
    pub async fn next_chunk(&mut self) -> AppResult<Option<String>> {
        if self.done {
            return Ok(None);
        }
        let mut q = customer::Entity::find().filter(self.scope.clone()).order_by_asc(customer::Column::Id).limit(1000);
        if let Some(a) = self.after {
            q = q.filter(customer::Column::Id.gt(a));
        }
        let batch = q.all(&self.db).await?;
        if batch.is_empty() {
            self.done = true;
            return Ok(None);
        }
        self.after = batch.last().map(|c| c.id);
        let (ids, base) = (&self.ids, &self.base);
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
                money::format_minor(c.revenue_minor, base),
                money::format_minor(c.margin_minor, base),
                opt(c.first_purchase_on.map(|d| d.to_string())),
                opt(c.last_purchase_on.map(|d| d.to_string())),
            ]);
            chunk.push_str(&line(cells));
        }
        Ok(Some(chunk))
    }
}
