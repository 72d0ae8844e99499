//! The reports as files for BI tools (`GET /reports/<name>.csv` or `.xlsx` in the api): the
//! same parameters as the GraphQL queries, a header row, typed cells (`table`), and the
//! customer grades read a page at a time.
use crate::access::Actor;
use crate::classification;
use crate::error::{AppError, AppResult};
use crate::kernel::money;
use crate::kernel::vault::Keyring;
use crate::reports::{self, Dimension, FeedbackDimension};
use crate::transfer::table::{Cell, Rest, Row, Table};
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

/// The file of a named report for `actor`, from the same parameters as the GraphQL
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
) -> AppResult<Table> {
    let (policy, _) = classification::policy(db).await?;
    let base = policy.base_currency.clone();
    let amount = |minor: i64| Cell::Decimal(money::format_minor(minor, &base));
    let hundredths = |x: i64| Cell::Decimal(reports::two_decimals(x));
    let table = |header: Vec<String>, rows: Vec<Row>| Table::new(name, header, rows, Rest::Done);
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
            let mut lines = Vec::with_capacity(rows.len());
            for r in rows {
                let mut cells: Row = Vec::new();
                for ((d, k), l) in dims.iter().zip(&r.keys).zip(&r.labels) {
                    cells.push(Cell::of(k.as_ref()));
                    if matches!(d, Dimension::Department | Dimension::Owner) {
                        cells.push(Cell::of(l.as_ref()));
                    }
                }
                cells.extend([
                    Cell::Int(r.customers),
                    amount(r.revenue),
                    hundredths(r.share_bp),
                    Cell::Bool(r.suppressed),
                ]);
                lines.push(cells);
            }
            Ok(table(header, lines))
        }
        "tier-migration" => {
            let (from, to) = (date(params, "from")?, date(params, "to")?);
            let cells = reports::tier_migration(db, actor, from, to, min_group).await?;
            let header = ["from_tier", "to_tier", "customers"].map(String::from).to_vec();
            Ok(table(
                header,
                cells.into_iter().map(|(a, b, n)| vec![Cell::Text(a), Cell::Text(b), Cell::Int(n)]).collect(),
            ))
        }
        "staff-activity" => {
            let rows = reports::staff_activity(db, actor, date(params, "from")?, date(params, "to")?).await?;
            let header = [
                "user_id",
                "name",
                "department_id",
                "calls",
                "visits",
                "messages",
                "callbacks",
                "deals_won",
                "revenue_won",
            ]
            .map(String::from)
            .to_vec();
            let lines = rows.into_iter().map(|r| {
                vec![
                    Cell::Text(r.user_id.to_string()),
                    Cell::Text(r.name),
                    Cell::Text(r.department_id.to_string()),
                    Cell::Int(r.calls),
                    Cell::Int(r.visits),
                    Cell::Int(r.messages),
                    Cell::Int(r.callbacks),
                    Cell::Int(r.deals_won),
                    amount(r.revenue_won),
                ]
            });
            Ok(table(header, lines.collect()))
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
            let mut lines = Vec::with_capacity(rows.len());
            for r in rows {
                let mut cells: Row = r.keys.iter().map(|k| Cell::Text(k.clone())).collect();
                cells.extend([
                    Cell::Int(r.count),
                    Cell::Int(r.rated),
                    r.average_rating_x100.map_or(Cell::Empty, hundredths),
                    r.nps.into(),
                    Cell::Int(r.nps_answers),
                    r.median_resolution_minutes.into(),
                ]);
                lines.push(cells);
            }
            Ok(table(header, lines))
        }
        "customer-grades" => {
            let scope = reports::report_condition(actor)?;
            // Roles that may not read the customers get pseudonyms, not record ids.
            let ids = if reports::MinGroup::for_actor(actor, 1).applies {
                Ids::Pseudonyms(vault.clone())
            } else {
                Ids::Records
            };
            let grades = Grades { db: db.clone(), scope, ids, base, after: None, done: false };
            Ok(Table::new(name, grades.header(), Vec::new(), Rest::Grades(grades)))
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
    /// The column names.
    fn header(&self) -> Vec<String> {
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
        header.into_iter().map(String::from).collect()
    }

    /// The rows of the next thousand customers; None when every one has been sent.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn next_chunk(&mut self) -> AppResult<Option<Vec<Row>>> {
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
        let mut chunk = Vec::with_capacity(batch.len());
        for c in &batch {
            let mut cells = vec![
                Cell::Text(ids.of(c.id)),
                Cell::Text(c.kind.to_string()),
                Cell::Text(c.category.clone()),
                Cell::of(c.region.as_ref()),
                Cell::of(c.industry.as_ref()),
                Cell::Text(c.department_id.to_string()),
            ];
            if ids.with_owner() {
                cells.push(Cell::of(c.owner_id));
            }
            cells.extend([
                Cell::Text(c.lifecycle_stage.to_string()),
                Cell::Text(c.tier.to_string()),
                Cell::of(c.computed_tier),
                c.rfm_score.map(i64::from).into(),
                Cell::of(c.frequency_class),
                Cell::of(c.value_class),
                Cell::of(c.relationship_type),
                Cell::of(c.turnover_margin_class),
                Cell::Int(c.won_count.into()),
                Cell::Decimal(money::format_minor(c.revenue_minor, base)),
                Cell::Decimal(money::format_minor(c.margin_minor, base)),
                c.first_purchase_on.into(),
                c.last_purchase_on.into(),
            ]);
            chunk.push(cells);
        }
        Ok(Some(chunk))
    }
}
