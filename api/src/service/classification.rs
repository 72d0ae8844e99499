//! Customer classification (SPEC section 4, seeds 000 and 001): tiers, lifecycle, RFM,
//! frequency and value classes, relationship type and turnover x margin, computed from
//! won deals under a policy kept as data.
//!
//! The rules are one pure function, [`grade`]; the rest gathers facts with aggregate
//! queries and writes the grades (one customer inside a deal's transaction, or all of
//! them in batches by a background pass).
use super::sql::{Binds, bigint, sum_when};
use super::store::{check_version, save, write};
use super::{new_id, now};
use crate::auth::Actor;
use crate::error::{AppError, AppResult, Violations};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{
    Action, DealStage, Level, LifecycleStage, RelationshipType, Resource, RunStatus, Tier, TurnoverMarginClass,
};
use entity::{classification_history, classification_policy, classification_run, customer, exchange_rate};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// The classification policy (defaults from SPEC section 4). Amounts are minor units of
/// the base currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub base_currency: String,
    pub tier_a_minor: i64,
    pub tier_b_minor: i64,
    pub window_days: i64,
    pub churn_days: i64,
    pub vip_min_won_deals: i32,
    pub vip_if_tier_a: bool,
    pub rfm_buckets: i32,
    pub frequency_high_min_deals: i32,
    pub value_high_minor: i64,
    pub loyalty_min_won_deals: i32,
    pub loyalty_min_tenure_days: i64,
    pub loyalty_max_complaints: i32,
    pub profit_high_minor: i64,
    pub turnover_high_min_deals: i32,
    pub margin_high_rate_pct: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base_currency: "CNY".into(),
            tier_a_minor: 8_000_000,
            tier_b_minor: 5_000_000,
            window_days: 365,
            churn_days: 365,
            vip_min_won_deals: 2,
            vip_if_tier_a: true,
            rfm_buckets: 5,
            frequency_high_min_deals: 3,
            value_high_minor: 5_000_000,
            loyalty_min_won_deals: 2,
            loyalty_min_tenure_days: 180,
            loyalty_max_complaints: 1,
            profit_high_minor: 1_000_000,
            turnover_high_min_deals: 4,
            margin_high_rate_pct: 30,
        }
    }
}

impl Policy {
    /// Checks the policy's coherence.
    ///
    /// # Errors
    /// VALIDATION listing every bad field.
    pub fn validate(&self) -> AppResult<()> {
        let mut v = Violations::new();
        v.check("baseCurrency", super::money::currency(&self.base_currency).map(|_| ()));
        if self.tier_b_minor <= 0 || self.tier_a_minor <= self.tier_b_minor {
            v.add("tierA", "tier A must start above tier B, and tier B above zero");
        }
        for (field, days) in [
            ("windowDays", self.window_days),
            ("churnDays", self.churn_days),
            ("loyaltyMinTenureDays", self.loyalty_min_tenure_days),
        ] {
            if !(1..=3660).contains(&days) {
                v.add(field, "must be between 1 and 3660 days");
            }
        }
        if !(2..=10).contains(&self.rfm_buckets) {
            v.add("rfmBuckets", "must be between 2 and 10");
        }
        if !(0..=100).contains(&self.margin_high_rate_pct) {
            v.add("marginHighRatePct", "must be a percentage");
        }
        for (field, n) in [
            ("vipMinWonDeals", self.vip_min_won_deals),
            ("frequencyHighMinDeals", self.frequency_high_min_deals),
            ("loyaltyMinWonDeals", self.loyalty_min_won_deals),
            ("turnoverHighMinDeals", self.turnover_high_min_deals),
        ] {
            if !(1..=10_000).contains(&n) {
                v.add(field, "must be between 1 and 10000");
            }
        }
        if self.loyalty_max_complaints < 0 {
            v.add("loyaltyMaxComplaints", "must not be negative");
        }
        for (field, amount) in [("valueHigh", self.value_high_minor), ("profitHigh", self.profit_high_minor)] {
            if amount < 0 {
                v.add(field, "must not be negative");
            }
        }
        v.into_result()
    }
}

/// What the rules need to know about one customer's deals, as of a date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Won deals closed within the window.
    pub won_count: i32,
    /// Their amount in base-currency minor units.
    pub revenue: i64,
    /// Margin of the lines with a known cost, and the revenue of those lines.
    pub margin: i64,
    pub costed_revenue: i64,
    pub first_purchase: Option<NaiveDate>,
    pub last_purchase: Option<NaiveDate>,
    /// Complaints received within the window.
    pub complaints: i32,
}

/// RFM cut-offs: ascending thresholds per metric, `buckets - 1` each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RfmCutoffs {
    /// Days since the last purchase.
    pub recency: Vec<i64>,
    pub frequency: Vec<i64>,
    pub monetary: Vec<i64>,
}

impl RfmCutoffs {
    /// Quantile thresholds of each metric over the customers who bought in the window.
    pub fn from_samples(mut recency: Vec<i64>, mut frequency: Vec<i64>, mut monetary: Vec<i64>, buckets: i32) -> Self {
        fn cuts(values: &mut [i64], buckets: i32) -> Vec<i64> {
            if values.is_empty() {
                return Vec::new();
            }
            values.sort_unstable();
            (1..buckets).map(|q| values[(values.len() * q as usize / buckets as usize).min(values.len() - 1)]).collect()
        }
        RfmCutoffs {
            recency: cuts(&mut recency, buckets),
            frequency: cuts(&mut frequency, buckets),
            monetary: cuts(&mut monetary, buckets),
        }
    }

    /// 1-based bucket of a value: how many thresholds it reaches, plus one.
    fn bucket(cuts: &[i64], value: i64) -> i32 {
        1 + cuts.iter().filter(|c| value >= **c).count() as i32
    }
}

/// The grades of one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Grades {
    pub computed_tier: Tier,
    pub tier: Tier,
    pub lifecycle: LifecycleStage,
    /// (recency, frequency, monetary, score), for customers who bought in the window.
    pub rfm: Option<(i32, i32, i32, i32)>,
    pub frequency_class: Option<Level>,
    pub value_class: Option<Level>,
    pub relationship: Option<RelationshipType>,
    pub turnover_margin: Option<TurnoverMarginClass>,
}

/// The rules. `stage` is the current lifecycle stage (TARGET/PROSPECT are set by people
/// and kept while nothing was bought); `tier_override` wins over the computed tier.
pub fn grade(
    policy: &Policy,
    facts: &Facts,
    stage: LifecycleStage,
    tier_override: Option<Tier>,
    cutoffs: &RfmCutoffs,
    as_of: NaiveDate,
) -> Grades {
    let computed_tier = if facts.revenue >= policy.tier_a_minor {
        Tier::A
    } else if facts.revenue >= policy.tier_b_minor {
        Tier::B
    } else if facts.revenue > 0 {
        Tier::C
    } else {
        Tier::D
    };
    let tier = tier_override.unwrap_or(computed_tier);
    let lifecycle = match facts.last_purchase {
        None => match stage {
            LifecycleStage::Target | LifecycleStage::Prospect => stage,
            // Its deals were deleted or reopened: back to an interested party.
            _ => LifecycleStage::Prospect,
        },
        Some(last) if (as_of - last).num_days() > policy.churn_days => LifecycleStage::Churned,
        Some(_) => {
            if facts.won_count >= policy.vip_min_won_deals || (policy.vip_if_tier_a && tier == Tier::A) {
                LifecycleStage::Vip
            } else {
                LifecycleStage::Customer
            }
        }
    };
    let bought = facts.won_count > 0;
    let level = |high: bool| if high { Level::High } else { Level::Low };
    let rfm = match (bought, facts.last_purchase) {
        (true, Some(last)) if !cutoffs.recency.is_empty() => {
            let days = (as_of - last).num_days();
            // Fewer days since the last purchase is better: invert the bucket.
            let r = policy.rfm_buckets + 1 - RfmCutoffs::bucket(&cutoffs.recency, days);
            let f = RfmCutoffs::bucket(&cutoffs.frequency, facts.won_count as i64);
            let m = RfmCutoffs::bucket(&cutoffs.monetary, facts.revenue);
            Some((r, f, m, r * 100 + f * 10 + m))
        }
        _ => None,
    };
    let tenure_days = facts.first_purchase.map_or(0, |f| (as_of - f).num_days());
    let loyal = facts.won_count >= policy.loyalty_min_won_deals
        && tenure_days >= policy.loyalty_min_tenure_days
        && facts.complaints <= policy.loyalty_max_complaints;
    let profitable = facts.margin >= policy.profit_high_minor;
    let relationship = bought.then_some(match (loyal, profitable) {
        (true, true) => RelationshipType::Partnership,
        (false, true) => RelationshipType::Functional,
        (true, false) => RelationshipType::Emotional,
        (false, false) => RelationshipType::Drifting,
    });
    let high_turnover = facts.won_count >= policy.turnover_high_min_deals;
    let high_margin =
        facts.costed_revenue > 0 && facts.margin * 100 >= policy.margin_high_rate_pct * facts.costed_revenue;
    let turnover_margin = bought.then_some(match (high_turnover, high_margin) {
        (true, true) => TurnoverMarginClass::A,
        (true, false) => TurnoverMarginClass::B,
        (false, false) => TurnoverMarginClass::C,
        (false, true) => TurnoverMarginClass::D,
    });
    Grades {
        computed_tier,
        tier,
        lifecycle,
        rfm,
        frequency_class: bought.then(|| level(facts.won_count >= policy.frequency_high_min_deals)),
        value_class: bought.then(|| level(facts.revenue >= policy.value_high_minor)),
        relationship,
        turnover_margin,
    }
}

/// Exchange rates to the base currency.
#[derive(Debug, Clone, Default)]
pub struct Rates(HashMap<String, i64>);

impl Rates {
    /// Converts minor units of `currency` into minor units of `base`. Unknown rates count as
    /// zero (and are logged), so a missing rate never inflates a grade.
    pub fn to_base(&self, minor: i64, currency: &str, base: &str) -> i64 {
        if currency == base {
            return minor;
        }
        let Some(ppm) = self.0.get(currency) else {
            tracing::warn!(currency, "no exchange rate; amount left out of classification");
            return 0;
        };
        let from_exp = super::money::exponent(currency).unwrap_or(2) as i32;
        let to_exp = super::money::exponent(base).unwrap_or(2) as i32;
        let scaled = minor as i128 * *ppm as i128 * 10i128.pow((to_exp - from_exp).max(0) as u32)
            / 10i128.pow((from_exp - to_exp).max(0) as u32);
        (scaled / 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// The stored policy.
pub async fn policy(db: &impl ConnectionTrait) -> AppResult<(Policy, i32)> {
    match classification_policy::Entity::find_by_id(1).one(db).await? {
        Some(row) => {
            let policy = serde_json::from_value(row.policy).map_err(AppError::internal)?;
            Ok((policy, row.version))
        }
        None => Ok((Policy::default(), 0)),
    }
}

/// The stored exchange rates.
pub async fn rates(db: &impl ConnectionTrait) -> AppResult<Rates> {
    let rows = exchange_rate::Entity::find().all(db).await?;
    Ok(Rates(rows.into_iter().map(|r| (r.currency, r.rate_ppm)).collect()))
}

/// The RFM cut-offs of the last finished full pass.
pub async fn cutoffs(db: &impl ConnectionTrait) -> AppResult<RfmCutoffs> {
    let run = classification_run::Entity::find()
        .filter(classification_run::Column::Status.eq(RunStatus::Done))
        .order_by_desc(classification_run::Column::FinishedAt)
        .one(db)
        .await?;
    Ok(run.and_then(|r| r.state).and_then(|s| serde_json::from_value(s.get("rfm")?.clone()).ok()).unwrap_or_default())
}

/// The three aggregate statements behind [`facts`]: won deals per customer and currency
/// (in-window count and amount, all-time first and last purchase), the margin of
/// in-window lines with a known cost, and complaints in the window. `ids` narrows them to
/// a batch of customers; `None` is every customer (a full pass, and its benchmark floor).
pub fn fact_statements(
    db: &impl ConnectionTrait,
    policy: &Policy,
    ids: Option<&[Uuid]>,
    as_of: NaiveDate,
) -> [Statement; 3] {
    use entity::{deal, deal_line_item as line, feedback};
    use sea_orm::sea_query::{Alias, Asterisk, ExprTrait, Func, Query};
    let backend = db.get_database_backend();
    let from = as_of - Duration::days(policy.window_days);
    let won = || {
        Condition::all()
            .add(Expr::col((deal::Entity, deal::Column::Stage)).eq(DealStage::Won.as_str()))
            .add(Expr::col((deal::Entity, deal::Column::DeletedAt)).is_null())
    };
    let close = || Expr::col((deal::Entity, deal::Column::ActualCloseDate));
    let of_batch = |column: Expr| ids.map(|ids| column.is_in(ids.iter().copied()));

    let mut deals = Query::select();
    deals
        .column(deal::Column::CustomerId)
        .column(deal::Column::Currency)
        .expr_as(sum_when(close().gte(from), 1), Alias::new("n"))
        .expr_as(sum_when(close().gte(from), Expr::col(deal::Column::AmountMinor)), Alias::new("total"))
        .expr_as(Func::min(close()), Alias::new("first_on"))
        .expr_as(Func::max(close()), Alias::new("last_on"))
        .from(deal::Entity)
        .cond_where(won())
        .and_where(close().is_not_null())
        .and_where(close().lte(as_of))
        .and_where_option(of_batch(Expr::col(deal::Column::CustomerId)))
        .group_by_col(deal::Column::CustomerId)
        .group_by_col(deal::Column::Currency);

    let price = Expr::col((line::Entity, line::Column::UnitPriceMinor));
    let quantity = || Expr::col((line::Entity, line::Column::Quantity));
    let mut margins = Query::select();
    margins
        .column((deal::Entity, deal::Column::CustomerId))
        .column((deal::Entity, deal::Column::Currency))
        .expr_as(
            bigint(Func::sum(
                quantity().mul(price.clone().sub(Expr::col((line::Entity, line::Column::UnitCostMinor)))),
            )),
            Alias::new("margin"),
        )
        .expr_as(bigint(Func::sum(quantity().mul(price))), Alias::new("costed"))
        .from(line::Entity)
        .inner_join(
            deal::Entity,
            Expr::col((deal::Entity, deal::Column::Id)).equals((line::Entity, line::Column::DealId)),
        )
        .cond_where(won())
        .and_where(close().gte(from))
        .and_where(close().lte(as_of))
        .and_where(Expr::col((line::Entity, line::Column::UnitCostMinor)).is_not_null())
        .and_where_option(of_batch(Expr::col((deal::Entity, deal::Column::CustomerId))))
        .group_by_col((deal::Entity, deal::Column::CustomerId))
        .group_by_col((deal::Entity, deal::Column::Currency));

    let from_ts: DateTime<Utc> = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(now);
    let mut complaints = Query::select();
    complaints
        .column(feedback::Column::CustomerId)
        .expr_as(Func::count(Expr::col(Asterisk)), Alias::new("n"))
        .from(feedback::Entity)
        .and_where(Expr::col(feedback::Column::Kind).eq(entity::enums::FeedbackKind::Complaint.as_str()))
        .and_where(Expr::col(feedback::Column::DeletedAt).is_null())
        .and_where(Expr::col(feedback::Column::CreatedAt).gte(from_ts))
        .and_where_option(of_batch(Expr::col(feedback::Column::CustomerId)))
        .group_by_col(feedback::Column::CustomerId);
    [backend.build(&deals), backend.build(&margins), backend.build(&complaints)]
}

/// Gathers the facts of the given customers (all customers with `None`) as of a date.
pub async fn facts(
    db: &impl ConnectionTrait,
    policy: &Policy,
    rates: &Rates,
    ids: Option<&[Uuid]>,
    as_of: NaiveDate,
) -> AppResult<HashMap<Uuid, Facts>> {
    let [deals, margins, complaints] = fact_statements(db, policy, ids, as_of);
    let mut out: HashMap<Uuid, Facts> = HashMap::new();
    let base = policy.base_currency.as_str();
    for row in db.query_all_raw(deals).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let currency: String = row.try_get("", "currency")?;
        let f = out.entry(id).or_default();
        f.won_count += row.try_get::<i64>("", "n")? as i32;
        f.revenue += rates.to_base(row.try_get::<i64>("", "total")?, &currency, base);
        let first: Option<NaiveDate> = row.try_get("", "first_on")?;
        let last: Option<NaiveDate> = row.try_get("", "last_on")?;
        f.first_purchase = match (f.first_purchase, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        f.last_purchase = match (f.last_purchase, last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    for row in db.query_all_raw(margins).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let currency: String = row.try_get("", "currency")?;
        let f = out.entry(id).or_default();
        f.margin += rates.to_base(row.try_get::<i64>("", "margin")?, &currency, base);
        f.costed_revenue += rates.to_base(row.try_get::<i64>("", "costed")?, &currency, base);
    }
    for row in db.query_all_raw(complaints).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        out.entry(id).or_default().complaints = row.try_get::<i64>("", "n")? as i32;
    }
    Ok(out)
}

/// Why a classification changed (stored with history rows and runs).
pub use entity::enums::ClassificationReason as Reason;

/// The columns of a customer that grading reads: no need to fetch whole rows. SQLite
/// reads them as JSON objects keyed by column ([`read_batch_sqlite`]).
#[derive(Debug, Clone, sea_orm::DerivePartialModel, Deserialize)]
#[sea_orm(entity = "customer::Entity")]
struct Graded {
    id: Uuid,
    tier_override: Option<Tier>,
    #[sea_orm(nested)]
    #[serde(flatten)]
    stored: Stored,
}

/// The computed columns of a customer row, as stored; the fields are named after the
/// columns (SQLite reads and writes them as JSON objects, see [`write_grades_sqlite`]).
#[derive(Debug, Clone, PartialEq, sea_orm::DerivePartialModel, Serialize, Deserialize)]
#[sea_orm(entity = "customer::Entity")]
struct Stored {
    computed_tier: Option<Tier>,
    tier: Tier,
    lifecycle_stage: LifecycleStage,
    rfm_recency: Option<i32>,
    rfm_frequency: Option<i32>,
    rfm_monetary: Option<i32>,
    rfm_score: Option<i32>,
    frequency_class: Option<Level>,
    value_class: Option<Level>,
    relationship_type: Option<RelationshipType>,
    turnover_margin_class: Option<TurnoverMarginClass>,
    first_purchase_on: Option<NaiveDate>,
    last_purchase_on: Option<NaiveDate>,
    won_count: i32,
    revenue_minor: i64,
    margin_minor: i64,
}

/// The columns of [`Stored`]: its field names (the keys of SQLite's JSON rows), in the
/// order of [`Stored::values`] (PostgreSQL's VALUES rows).
pub const STORED_COLUMNS: [&str; 16] = [
    "computed_tier",
    "tier",
    "lifecycle_stage",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_score",
    "frequency_class",
    "value_class",
    "relationship_type",
    "turnover_margin_class",
    "first_purchase_on",
    "last_purchase_on",
    "won_count",
    "revenue_minor",
    "margin_minor",
];

impl Stored {
    fn new(g: &Grades, f: &Facts) -> Self {
        let (r, fr, m, s) = match g.rfm {
            Some((r, fr, m, s)) => (Some(r), Some(fr), Some(m), Some(s)),
            None => (None, None, None, None),
        };
        Stored {
            computed_tier: Some(g.computed_tier),
            tier: g.tier,
            lifecycle_stage: g.lifecycle,
            rfm_recency: r,
            rfm_frequency: fr,
            rfm_monetary: m,
            rfm_score: s,
            frequency_class: g.frequency_class,
            value_class: g.value_class,
            relationship_type: g.relationship,
            turnover_margin_class: g.turnover_margin,
            first_purchase_on: f.first_purchase,
            last_purchase_on: f.last_purchase,
            won_count: f.won_count,
            revenue_minor: f.revenue,
            margin_minor: f.margin,
        }
    }

    /// The values in [`STORED_COLUMNS`] order.
    fn values(&self) -> [Value; 16] {
        [
            self.computed_tier.map(Tier::as_str).into(),
            self.tier.as_str().into(),
            self.lifecycle_stage.as_str().into(),
            self.rfm_recency.into(),
            self.rfm_frequency.into(),
            self.rfm_monetary.into(),
            self.rfm_score.into(),
            self.frequency_class.map(Level::as_str).into(),
            self.value_class.map(Level::as_str).into(),
            self.relationship_type.map(RelationshipType::as_str).into(),
            self.turnover_margin_class.map(TurnoverMarginClass::as_str).into(),
            self.first_purchase_on.into(),
            self.last_purchase_on.into(),
            self.won_count.into(),
            self.revenue_minor.into(),
            self.margin_minor.into(),
        ]
    }
}

/// A customer whose grades change, with its history rows.
struct Change {
    id: Uuid,
    new: Stored,
    history: Vec<HistoryRow>,
}

/// One changed field of a customer; reason, actor and time are the write's.
struct HistoryRow {
    customer: Uuid,
    field: &'static str,
    from: &'static str,
    to: &'static str,
}

/// Compares a customer's stored grades with fresh ones.
fn diff(c: &Graded, facts: &Facts, policy: &Policy, cutoffs: &RfmCutoffs, as_of: NaiveDate) -> Option<Change> {
    let grades = grade(policy, facts, c.stored.lifecycle_stage, c.tier_override, cutoffs, as_of);
    let new = Stored::new(&grades, facts);
    let old = &c.stored;
    if new == *old {
        return None;
    }
    let mut history = Vec::new();
    if new.tier != old.tier {
        history.push(HistoryRow { customer: c.id, field: "TIER", from: old.tier.as_str(), to: new.tier.as_str() });
    }
    if new.lifecycle_stage != old.lifecycle_stage {
        history.push(HistoryRow {
            customer: c.id,
            field: "LIFECYCLE",
            from: old.lifecycle_stage.as_str(),
            to: new.lifecycle_stage.as_str(),
        });
    }
    Some(Change { id: c.id, new, history })
}

/// Writes changed grades and their history rows. Grades are derived data: `version` is
/// left alone, so a user's edit in flight never conflicts with a reclassification.
/// Returns the time the history took, for the pass's timing log.
async fn write_changes(
    db: &impl ConnectionTrait,
    changes: Vec<Change>,
    reason: Reason,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> AppResult<std::time::Duration> {
    if changes.is_empty() {
        return Ok(std::time::Duration::ZERO);
    }
    let sqlite = db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite;
    if sqlite {
        write_grades_sqlite(db, &changes, at).await?;
    } else {
        write_grades_postgres(db, &changes, at).await?;
    }
    let clock = std::time::Instant::now();
    let history: Vec<&HistoryRow> = changes.iter().flat_map(|c| &c.history).collect();
    if sqlite {
        write_history_sqlite(db, &history, reason, actor, at).await?;
    } else {
        write_history_postgres(db, &history, reason, actor, at).await?;
    }
    Ok(clock.elapsed())
}

/// Rows per statement of the SQLite bulk writes (each statement carries one JSON document).
const SQLITE_CHUNK: usize = 10_000;

/// SQLite: one UPDATE per 10,000 customers whose new grades arrive as one JSON document,
/// unpacked by `jsonb_each`. Binding 17 values a customer cost more than the update itself:
/// the driver copies each value, so two bound values a statement are much cheaper.
/// (`jsonb_each` and `unhex` need SQLite 3.45; the bundled library is 3.51.)
async fn write_grades_sqlite(db: &impl ConnectionTrait, changes: &[Change], at: DateTime<Utc>) -> AppResult<()> {
    #[derive(Serialize)]
    struct Row<'a> {
        id: String,
        #[serde(flatten)]
        new: &'a Stored,
    }
    let sets: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("{c} = v.{c}")).collect();
    let fields: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("value ->> '{c}' AS {c}")).collect();
    for chunk in changes.chunks(SQLITE_CHUNK) {
        let rows: Vec<Row> = chunk.iter().map(|c| Row { id: c.id.simple().to_string(), new: &c.new }).collect();
        let doc = serde_json::to_string(&rows).map_err(AppError::internal)?;
        let mut b = Binds::new(db);
        let sql = format!(
            "UPDATE customer SET {}, classified_at = {} FROM (SELECT unhex(value ->> 'id') AS id, {} FROM jsonb_each({})) AS v WHERE customer.id = v.id",
            sets.join(", "),
            b.bind(at),
            fields.join(", "),
            b.bind(doc),
        );
        db.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// PostgreSQL: one UPDATE ... FROM (VALUES ...) per 1,000 customers (17 parameters each).
async fn write_grades_postgres(db: &impl ConnectionTrait, changes: &[Change], at: DateTime<Utc>) -> AppResult<()> {
    let sets: Vec<String> =
        STORED_COLUMNS.iter().chain(["classified_at"].iter()).map(|c| format!("{c} = v.{c}")).collect();
    let columns = format!("id, {}, classified_at", STORED_COLUMNS.join(", "));
    for chunk in changes.chunks(1000) {
        let mut b = Binds::new(db);
        let rows: Vec<String> = chunk
            .iter()
            .map(|c| {
                let values = std::iter::once(Value::from(c.id)).chain(c.new.values()).chain([Value::from(at)]);
                format!("({})", b.bind_all(values))
            })
            .collect();
        let sql = format!(
            "UPDATE customer SET {} FROM (VALUES {}) AS v({columns}) WHERE customer.id = v.id",
            sets.join(", "),
            rows.join(", ")
        );
        db.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// SQLite: the history rows as one JSON document per statement, like the grades.
async fn write_history_sqlite(
    db: &impl ConnectionTrait,
    history: &[&HistoryRow],
    reason: Reason,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    for chunk in history.chunks(SQLITE_CHUNK) {
        let rows: Vec<(String, String, &str, &str, &str)> = chunk
            .iter()
            .map(|h| (new_id().simple().to_string(), h.customer.simple().to_string(), h.field, h.from, h.to))
            .collect();
        let doc = serde_json::to_string(&rows).map_err(AppError::internal)?;
        let mut b = Binds::new(db);
        let sql = format!(
            "INSERT INTO classification_history (id, customer_id, field, from_value, to_value, reason, actor_id, at) \
             SELECT unhex(value ->> 0), unhex(value ->> 1), value ->> 2, value ->> 3, value ->> 4, {}, {}, {} FROM jsonb_each({})",
            b.bind(reason.as_str()),
            b.bind(actor),
            b.bind(at),
            b.bind(doc)
        );
        db.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// PostgreSQL: one multi-row INSERT per 2,000 history rows (8 parameters a row).
async fn write_history_postgres(
    db: &impl ConnectionTrait,
    history: &[&HistoryRow],
    reason: Reason,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    for chunk in history.chunks(2000) {
        let mut b = Binds::new(db);
        let rows: Vec<String> = chunk
            .iter()
            .map(|h| {
                let values: [Value; 8] = [
                    new_id().into(),
                    h.customer.into(),
                    h.field.into(),
                    h.from.into(),
                    h.to.into(),
                    reason.as_str().into(),
                    actor.into(),
                    at.into(),
                ];
                format!("({})", b.bind_all(values))
            })
            .collect();
        let sql = format!(
            "INSERT INTO classification_history (id, customer_id, field, from_value, to_value, reason, actor_id, at) VALUES {}",
            rows.join(", ")
        );
        db.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// Recomputes one customer inside the caller's transaction (a deal was won, lost,
/// changed or deleted; an override was set).
pub async fn recompute(
    txn: &DatabaseTransaction,
    customer_id: Uuid,
    reason: Reason,
    actor: Option<Uuid>,
) -> AppResult<()> {
    let (policy, _) = policy(txn).await?;
    let rates = rates(txn).await?;
    let cutoffs = cutoffs(txn).await?;
    let Some(c) = customer::Entity::find_by_id(customer_id).into_partial_model::<Graded>().one(txn).await? else {
        return Ok(());
    };
    let as_of = now().date_naive();
    let facts =
        facts(txn, &policy, &rates, Some(&[customer_id]), as_of).await?.remove(&customer_id).unwrap_or_default();
    let at = now();
    if let Some(change) = diff(&c, &facts, &policy, &cutoffs, as_of) {
        write_changes(txn, vec![change], reason, actor, at).await?;
    }
    Ok(())
}

/// Customers per transaction in a full pass: short write transactions keep the API
/// answering while a pass runs. SQLite readers never wait for a writer (WAL), so its
/// batches are larger: each commit rewrites the pages of the grade indexes it touched,
/// and 50,000 customers (about 1.5 s on 1M, what an API writer may wait) share them.
pub const BATCH: u64 = 5000;
const BATCH_SQLITE: u64 = 50_000;

/// Starts a full pass in the background and returns its run (progress is on the row).
///
/// # Errors
/// CONFLICT when a pass is already running.
pub async fn start_full_pass(
    db: &DatabaseConnection,
    reason: Reason,
    actor: Option<Uuid>,
) -> AppResult<classification_run::Model> {
    let run = create_run(db, new_id(), reason).await?;
    let db = db.clone();
    let run_id = run.id;
    tokio::spawn(async move {
        if let Err(e) = run_full_pass(&db, run_id, reason, actor, now().date_naive()).await {
            tracing::error!(error = %e, run = %run_id, "reclassification failed");
            let _ = classification_run::Entity::update_many()
                .col_expr(classification_run::Column::Status, Expr::value(RunStatus::Failed.as_str()))
                .col_expr(classification_run::Column::Error, Expr::value(e.to_string()))
                .col_expr(classification_run::Column::FinishedAt, Expr::value(now()))
                .filter(classification_run::Column::Id.eq(run_id))
                .exec(&db)
                .await;
        }
    });
    Ok(run)
}

/// Registers a run; refuses while another is RUNNING (a run older than six hours is
/// taken for dead: its instance stopped).
pub async fn create_run(db: &DatabaseConnection, id: Uuid, reason: Reason) -> AppResult<classification_run::Model> {
    write(db, async |txn| {
        let busy = classification_run::Entity::find()
            .filter(classification_run::Column::Status.eq(RunStatus::Running))
            .filter(classification_run::Column::StartedAt.gt(now() - Duration::hours(6)))
            .one(txn)
            .await?;
        if let Some(busy) = busy {
            return Err(AppError::Conflict(format!("a reclassification is already running ({})", busy.id)));
        }
        let run = classification_run::ActiveModel {
            id: Set(id),
            reason: Set(reason),
            status: Set(RunStatus::Running),
            total: Set(0),
            processed: Set(0),
            changed: Set(0),
            started_at: Set(now()),
            finished_at: Set(None),
            error: Set(None),
            state: Set(None),
        }
        .insert(txn)
        .await?;
        Ok(run)
    })
    .await
}

/// The full pass. One aggregate over all deals, line items and complaints gives every
/// customer's facts and the RFM cut-offs; then every live customer is graded in batches,
/// each in its own short write transaction that locks its customers first. A customer
/// whose deals or feedback changed after the pass began is re-aggregated inside that
/// transaction, so a concurrent deal write is never overwritten with older numbers.
pub async fn run_full_pass(
    db: &DatabaseConnection,
    run_id: Uuid,
    reason: Reason,
    actor: Option<Uuid>,
    as_of: NaiveDate,
) -> AppResult<()> {
    let (policy, _) = policy(db).await?;
    let rates = rates(db).await?;
    let pass_start = now();
    // Where the time goes, logged at the end: aggregate, read, dirty check, grade, write, commit.
    let mut spent = [std::time::Duration::ZERO; 7];
    let clock = std::time::Instant::now();
    let mut all = facts(db, &policy, &rates, None, as_of).await?;
    spent[0] = clock.elapsed();
    let cutoffs = cutoffs_of(&all, &policy, as_of);
    let total = customer::Entity::find().filter(customer::Column::DeletedAt.is_null()).count(db).await? as i64;
    set_progress(db, run_id, Some(total), 0, 0).await?;
    let (mut processed, mut changed) = (0i64, 0i64);
    let mut after: Option<Uuid> = None;
    let postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let batch_size = if postgres { BATCH } else { BATCH_SQLITE };
    loop {
        let started = std::time::Instant::now();
        let mut before_commit = std::time::Duration::ZERO;
        let step = write(db, async |txn| {
            let clock = std::time::Instant::now();
            let batch = if postgres {
                let mut q = customer::Entity::find()
                    .filter(customer::Column::DeletedAt.is_null())
                    .order_by_asc(customer::Column::Id)
                    .limit(batch_size);
                if let Some(a) = after {
                    q = q.filter(customer::Column::Id.gt(a));
                }
                q.lock_exclusive().into_partial_model::<Graded>().all(txn).await?
            } else {
                read_batch_sqlite(txn, after, batch_size).await?
            };
            spent[1] += clock.elapsed();
            let Some(last) = batch.last() else { return Ok(None) };
            let ids: Vec<Uuid> = batch.iter().map(|c| c.id).collect();
            let clock = std::time::Instant::now();
            let dirty = changed_since(txn, &ids, pass_start).await?;
            let mut fresh = if dirty.is_empty() {
                HashMap::new()
            } else {
                let dirty: Vec<Uuid> = dirty.iter().copied().collect();
                facts(txn, &policy, &rates, Some(&dirty), as_of).await?
            };
            spent[2] += clock.elapsed();
            let clock = std::time::Instant::now();
            let at = now();
            let changes: Vec<Change> = batch
                .iter()
                .filter_map(|c| {
                    let f =
                        if dirty.contains(&c.id) { fresh.remove(&c.id) } else { all.remove(&c.id) }.unwrap_or_default();
                    diff(c, &f, &policy, &cutoffs, as_of)
                })
                .collect();
            let counts = (last.id, batch.len() as i64, changes.len() as i64);
            spent[3] += clock.elapsed();
            let clock = std::time::Instant::now();
            let history = write_changes(txn, changes, reason, actor, at).await?;
            spent[4] += clock.elapsed() - history;
            spent[6] += history;
            before_commit = started.elapsed();
            Ok(Some(counts))
        })
        .await?;
        spent[5] += started.elapsed().saturating_sub(before_commit);
        let Some((last, batch_len, batch_changed)) = step else { break };
        after = Some(last);
        processed += batch_len;
        changed += batch_changed;
        if processed % (batch_size as i64 * 10) == 0 {
            set_progress(db, run_id, None, processed, changed).await?;
        }
    }
    set_progress(db, run_id, None, processed, changed).await?;
    classification_run::Entity::update_many()
        .col_expr(classification_run::Column::Status, Expr::value(RunStatus::Done.as_str()))
        .col_expr(classification_run::Column::FinishedAt, Expr::value(now()))
        .col_expr(classification_run::Column::State, Expr::value(serde_json::json!({ "rfm": cutoffs, "asOf": as_of })))
        .filter(classification_run::Column::Id.eq(run_id))
        .exec(db)
        .await?;
    let [aggregate, read, dirty, grading, update, commit, history] = spent.map(|d| d.as_secs_f64());
    tracing::info!(run = %run_id, processed, changed, aggregate, read, dirty, grading, update, history, commit, "reclassification done (seconds per phase)");
    Ok(())
}

/// SQLite: the next `limit` live customers after `after`, read as one JSON document. The
/// driver copies every value of every row between threads: reading a million customers a
/// row at a time took 9 s, most of it there.
async fn read_batch_sqlite(txn: &impl ConnectionTrait, after: Option<Uuid>, limit: u64) -> AppResult<Vec<Graded>> {
    let fields: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("'{c}', {c}")).collect();
    let mut b = Binds::new(txn);
    let after = match after {
        Some(id) => format!(" AND id > {}", b.bind(id)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT json_group_array(json_object('id', hex(id), 'tier_override', tier_override, {})) AS batch \
         FROM (SELECT id, tier_override, {} FROM customer WHERE deleted_at IS NULL{after} ORDER BY id LIMIT {})",
        fields.join(", "),
        STORED_COLUMNS.join(", "),
        b.bind(limit as i64)
    );
    let row = txn
        .query_one_raw(b.statement(sql))
        .await?
        .ok_or_else(|| AppError::Internal("an aggregate returned no row".into()))?;
    let doc: String = row.try_get("", "batch")?;
    let mut batch: Vec<Graded> = serde_json::from_str(&doc).map_err(AppError::internal)?;
    // The aggregate keeps the subquery's order in practice; the keyset needs it for certain.
    batch.sort_unstable_by_key(|c| c.id);
    Ok(batch)
}

/// Customers of the batch whose deals or feedback were written since `since`. The
/// `updated_at` indexes make this cost what was written meanwhile (usually nothing).
async fn changed_since(
    txn: &impl ConnectionTrait,
    ids: &[Uuid],
    since: DateTime<Utc>,
) -> AppResult<std::collections::HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // Only the time condition, so both databases walk the `updated_at` index; the batch's
    // customers are picked out here.
    use entity::{deal, feedback};
    use sea_orm::sea_query::{Query, UnionType};
    let mut q = Query::select();
    q.column(deal::Column::CustomerId).from(deal::Entity).and_where(deal::Column::UpdatedAt.gte(since)).union(
        UnionType::Distinct,
        Query::select()
            .column(feedback::Column::CustomerId)
            .from(feedback::Entity)
            .and_where(feedback::Column::UpdatedAt.gte(since))
            .to_owned(),
    );
    let rows = txn.query_all_raw(txn.get_database_backend().build(&q)).await?;
    let batch: std::collections::HashSet<&Uuid> = ids.iter().collect();
    let mut dirty = std::collections::HashSet::new();
    for row in rows {
        let id: Uuid = row.try_get("", "customer_id")?;
        if batch.contains(&id) {
            dirty.insert(id);
        }
    }
    Ok(dirty)
}

/// RFM cut-offs over the customers who bought within the window.
fn cutoffs_of(all: &HashMap<Uuid, Facts>, policy: &Policy, as_of: NaiveDate) -> RfmCutoffs {
    let buyers = all.values().filter(|f| f.won_count > 0);
    let (mut recency, mut frequency, mut monetary) = (Vec::new(), Vec::new(), Vec::new());
    for f in buyers {
        recency.push(f.last_purchase.map_or(0, |l| (as_of - l).num_days()));
        frequency.push(f.won_count as i64);
        monetary.push(f.revenue);
    }
    RfmCutoffs::from_samples(recency, frequency, monetary, policy.rfm_buckets)
}

async fn set_progress(
    db: &DatabaseConnection,
    run_id: Uuid,
    total: Option<i64>,
    processed: i64,
    changed: i64,
) -> AppResult<()> {
    let mut update = classification_run::Entity::update_many()
        .col_expr(classification_run::Column::Processed, Expr::value(processed))
        .col_expr(classification_run::Column::Changed, Expr::value(changed));
    if let Some(t) = total {
        update = update.col_expr(classification_run::Column::Total, Expr::value(t));
    }
    update.filter(classification_run::Column::Id.eq(run_id)).exec(db).await?;
    Ok(())
}

/// Replaces the policy (admins) and starts a full pass with reason POLICY_CHANGE.
///
/// # Errors
/// FORBIDDEN, VALIDATION, CONFLICT (stale version).
pub async fn update_policy(
    db: &DatabaseConnection,
    actor: &Actor,
    new: Policy,
    version: i32,
) -> AppResult<(Policy, i32)> {
    actor.require_all(Resource::Settings, Action::Update)?;
    new.validate()?;
    let policy_json = serde_json::to_value(&new).map_err(AppError::internal)?;
    let saved = write(db, async |txn| {
        let old = classification_policy::Entity::find_by_id(1)
            .one(txn)
            .await?
            .ok_or_else(|| AppError::Internal("classification policy row is missing".into()))?;
        check_version::<classification_policy::Entity>(&old, Some(version))?;
        let am = classification_policy::ActiveModel {
            policy: Set(policy_json),
            updated_by: Set(Some(actor.id())),
            ..old.clone().into()
        };
        save::<classification_policy::Entity>(txn, Some(actor.id()), "update", &old, am).await
    })
    .await?;
    if let Err(e) = start_full_pass(db, Reason::PolicyChange, Some(actor.id())).await {
        tracing::warn!(error = %e, "policy saved; reclassification not started");
    }
    Ok((new, saved.version))
}

/// Sets an exchange rate (base-currency units per unit, as a decimal string) and starts
/// a full pass with reason POLICY_CHANGE.
///
/// # Errors
/// FORBIDDEN, VALIDATION.
pub async fn set_rate(
    db: &DatabaseConnection,
    actor: &Actor,
    currency: &str,
    rate: &str,
) -> AppResult<exchange_rate::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let code = super::money::currency(currency).map_err(|m| AppError::invalid("currency", m))?;
    // Parts per million: a decimal with up to six places.
    let ppm = super::money::parse_scaled(rate, 6).map_err(|m| AppError::invalid("rate", m))?;
    if ppm <= 0 {
        return Err(AppError::invalid("rate", "must be above zero"));
    }
    let new = write(db, async |txn| {
        let old = exchange_rate::Entity::find_by_id(code.clone()).one(txn).await?;
        let model = exchange_rate::ActiveModel { currency: Set(code), rate_ppm: Set(ppm), updated_at: Set(now()) };
        let new = if old.is_some() { model.update(txn).await? } else { model.insert(txn).await? };
        super::audit::record(txn, Some(actor.id()), "update", "exchange_rate", Uuid::nil(), old.as_ref(), Some(&new))
            .await?;
        Ok(new)
    })
    .await?;
    if let Err(e) = start_full_pass(db, Reason::PolicyChange, Some(actor.id())).await {
        tracing::warn!(error = %e, "rate saved; reclassification not started");
    }
    Ok(new)
}

/// Sets (or with `None` removes) a manual tier that wins over the computed one.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN (needs the assign permission over the customer), VALIDATION
/// (a reason is required).
pub async fn set_override(
    db: &DatabaseConnection,
    actor: &Actor,
    customer_id: Uuid,
    tier: Option<Tier>,
    reason: Option<String>,
) -> AppResult<customer::Model> {
    let reason = super::clean(reason);
    if tier.is_some() && reason.is_none() {
        return Err(AppError::invalid("reason", "an override needs a reason"));
    }
    write(db, async |txn| {
        let old = super::customer::load_for_action(txn, actor, customer_id, Action::Assign).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::TierOverride, Expr::value(tier.map(|t| t.to_string())))
            .col_expr(customer::Column::TierOverrideReason, Expr::value(reason.clone()))
            .filter(customer::Column::Id.eq(customer_id))
            .exec(txn)
            .await?;
        recompute(txn, customer_id, Reason::Override, Some(actor.id())).await?;
        let new = customer::Entity::find_by_id(customer_id).one(txn).await?.ok_or(AppError::NotFound("customer"))?;
        super::audit::record(txn, Some(actor.id()), "override_tier", "customer", customer_id, Some(&old), Some(&new))
            .await?;
        Ok(new)
    })
    .await
}

/// A customer's classification history, newest first.
pub async fn history(
    db: &impl ConnectionTrait,
    customer_id: Uuid,
    limit: u64,
) -> AppResult<Vec<classification_history::Model>> {
    Ok(classification_history::Entity::find()
        .filter(classification_history::Column::CustomerId.eq(customer_id))
        .order_by_desc(classification_history::Column::At)
        // Rows of one change share `at`; keep the order they were written in (tier first).
        .order_by_asc(classification_history::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Recent runs, newest first.
pub async fn runs(db: &DatabaseConnection, limit: u64) -> AppResult<Vec<classification_run::Model>> {
    Ok(classification_run::Entity::find()
        .order_by_desc(classification_run::Column::StartedAt)
        .limit(limit)
        .all(db)
        .await?)
}

/// Starts the daily pass once per day across all instances: the run id is derived from
/// the date, so a second instance's insert collides on the primary key.
pub async fn daily_pass(db: &DatabaseConnection, today: NaiveDate) -> AppResult<bool> {
    let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("crm-daily-reclassification-{today}").as_bytes());
    if classification_run::Entity::find_by_id(id).one(db).await?.is_some() {
        return Ok(false);
    }
    match create_run(db, id, Reason::TimePassed).await {
        Ok(_) => {}
        // Another pass is running, or another instance registered today's run first
        // (its id is derived from the date: the primary key decides).
        Err(AppError::Conflict(_) | AppError::Duplicate { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    run_full_pass(db, id, Reason::TimePassed, None, today).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn bought(revenue: i64, count: i32, last: &str) -> Facts {
        Facts {
            won_count: count,
            revenue,
            last_purchase: Some(day(last)),
            first_purchase: Some(day(last)),
            ..Default::default()
        }
    }

    /// SQLite's bulk UPDATE reads each column from the JSON key of the same name, and a
    /// missing key reads as NULL: the field names, the column list and the values must agree.
    #[test]
    fn stored_fields_match_the_column_list() {
        let policy = Policy::default();
        let facts = bought(9_000_000, 3, "2026-10-01");
        let cutoffs = RfmCutoffs::from_samples(vec![10, 50, 100, 200], vec![1, 2, 3, 4], vec![1, 2, 3, 4], 5);
        let grades = grade(&policy, &facts, LifecycleStage::Prospect, None, &cutoffs, day("2026-11-01"));
        let stored = Stored::new(&grades, &facts);
        let json = serde_json::to_value(&stored).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut columns = STORED_COLUMNS.to_vec();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        columns.sort_unstable();
        assert_eq!(sorted, columns);
        // Every value is written as the same SQL value both ways.
        for (column, value) in STORED_COLUMNS.iter().zip(stored.values()) {
            let written = &json[*column];
            let expected = match value {
                Value::String(Some(s)) => serde_json::Value::from(s.as_str()),
                Value::Int(Some(n)) => serde_json::Value::from(n),
                Value::BigInt(Some(n)) => serde_json::Value::from(n),
                Value::ChronoDate(Some(d)) => serde_json::Value::from(d.format("%Y-%m-%d").to_string()),
                _ => serde_json::Value::Null,
            };
            assert_eq!(written, &expected, "{column}");
        }
    }

    #[test]
    fn tier_thresholds_are_inclusive() {
        let p = Policy::default();
        let c = RfmCutoffs::default();
        let today = day("2026-11-23");
        let g = |rev| grade(&p, &bought(rev, 1, "2026-11-01"), LifecycleStage::Prospect, None, &c, today).computed_tier;
        assert_eq!(g(8_000_000), Tier::A);
        assert_eq!(g(7_999_999), Tier::B);
        assert_eq!(g(5_000_000), Tier::B);
        assert_eq!(g(4_999_999), Tier::C);
        assert_eq!(g(1), Tier::C);
        assert_eq!(grade(&p, &Facts::default(), LifecycleStage::Prospect, None, &c, today).computed_tier, Tier::D);
    }

    #[test]
    fn lifecycle_flows_with_purchases() {
        let p = Policy::default();
        let c = RfmCutoffs::default();
        let today = day("2026-11-23");
        assert_eq!(
            grade(&p, &Facts::default(), LifecycleStage::Target, None, &c, today).lifecycle,
            LifecycleStage::Target
        );
        assert_eq!(
            grade(&p, &bought(100, 1, "2026-11-01"), LifecycleStage::Target, None, &c, today).lifecycle,
            LifecycleStage::Customer
        );
        assert_eq!(
            grade(&p, &bought(100, 2, "2026-11-01"), LifecycleStage::Customer, None, &c, today).lifecycle,
            LifecycleStage::Vip
        );
        assert_eq!(
            grade(&p, &bought(9_000_000, 1, "2026-11-01"), LifecycleStage::Customer, None, &c, today).lifecycle,
            LifecycleStage::Vip
        );
        // churn: the last purchase more than 365 days ago
        let old = Facts {
            last_purchase: Some(day("2025-11-22")),
            first_purchase: Some(day("2025-11-22")),
            ..Default::default()
        };
        assert_eq!(grade(&p, &old, LifecycleStage::Vip, None, &c, today).lifecycle, LifecycleStage::Churned);
        let edge = Facts { last_purchase: Some(day("2025-11-23")), ..Default::default() };
        assert_eq!(grade(&p, &edge, LifecycleStage::Vip, None, &c, today).lifecycle, LifecycleStage::Customer);
        // an override to A makes a recent buyer VIP
        assert_eq!(
            grade(&p, &bought(100, 1, "2026-11-01"), LifecycleStage::Customer, Some(Tier::A), &c, today).lifecycle,
            LifecycleStage::Vip
        );
    }

    #[test]
    fn matrices_and_rfm() {
        let p = Policy::default();
        let today = day("2026-11-23");
        let cut = RfmCutoffs::from_samples(
            vec![1, 10, 30, 90, 200],
            vec![1, 1, 2, 3, 8],
            vec![10_000, 100_000, 500_000, 1_000_000, 9_000_000],
            5,
        );
        let facts = Facts {
            won_count: 8,
            revenue: 9_000_000,
            margin: 4_000_000,
            costed_revenue: 9_000_000,
            first_purchase: Some(day("2025-01-01")),
            last_purchase: Some(day("2026-11-22")),
            complaints: 0,
        };
        let g = grade(&p, &facts, LifecycleStage::Customer, None, &cut, today);
        assert_eq!(g.rfm, Some((5, 5, 5, 555)));
        assert_eq!(g.turnover_margin, Some(TurnoverMarginClass::A));
        assert_eq!(g.relationship, Some(RelationshipType::Partnership));
        let thin = Facts { margin: 100_000, ..facts.clone() };
        assert_eq!(
            grade(&p, &thin, LifecycleStage::Customer, None, &cut, today).turnover_margin,
            Some(TurnoverMarginClass::B)
        );
        let complaining = Facts { complaints: 2, margin: 2_000_000, ..facts };
        assert_eq!(
            grade(&p, &complaining, LifecycleStage::Customer, None, &cut, today).relationship,
            Some(RelationshipType::Functional)
        );
    }

    #[test]
    fn currency_conversion() {
        let rates = Rates([("USD".to_string(), 7_100_000), ("JPY".to_string(), 47_000)].into_iter().collect());
        assert_eq!(rates.to_base(100, "USD", "CNY"), 710);
        assert_eq!(rates.to_base(1000, "JPY", "CNY"), 4700);
        assert_eq!(rates.to_base(500, "EUR", "CNY"), 0);
    }
}
