//! Classification: the policy, exchange rates, full passes, overrides and history.
use super::common::{Money, actor, db, parse_id};
use super::customer::Customer;
use super::enums::Tier;
use super::error::ResultExt;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{classification_history, classification_run};
use service::classification as svc;
use service::classification::Policy;
use service::error::AppError;
use service::kernel::money;

/// How customers are graded. Amounts are in the base currency.
pub struct ClassificationPolicy(pub Policy, pub i32);

#[Object]
impl ClassificationPolicy {
    /// Send it back with `updateClassificationPolicy`.
    async fn version(&self) -> i32 {
        self.1
    }
    /// Currency grades are computed in; other currencies convert at `exchangeRates`.
    async fn base_currency(&self) -> &str {
        &self.0.base_currency
    }
    /// Tier A from this won revenue in the window (default 80,000.00).
    async fn tier_a_min(&self) -> Money {
        Money::new(self.0.tier_a_minor, &self.0.base_currency)
    }
    /// Tier B from this won revenue (default 50,000.00); C below, above zero; D none.
    async fn tier_b_min(&self) -> Money {
        Money::new(self.0.tier_b_minor, &self.0.base_currency)
    }
    /// Trailing window of won deals, in days (default 365).
    async fn window_days(&self) -> i64 {
        self.0.window_days
    }
    /// A buyer with no won deal for longer than this is CHURNED (default 365).
    async fn churn_days(&self) -> i64 {
        self.0.churn_days
    }
    /// VIP from this many won deals in the window (default 2)...
    async fn vip_min_won_deals(&self) -> i32 {
        self.0.vip_min_won_deals
    }
    /// ...or when the tier is A (default true).
    async fn vip_if_tier_a(&self) -> bool {
        self.0.vip_if_tier_a
    }
    /// Number of RFM buckets (5: quintiles).
    async fn rfm_buckets(&self) -> i32 {
        self.0.rfm_buckets
    }
    /// High purchase frequency from this many won deals in the window.
    async fn frequency_high_min_deals(&self) -> i32 {
        self.0.frequency_high_min_deals
    }
    /// High value from this won revenue in the window.
    async fn value_high_min(&self) -> Money {
        Money::new(self.0.value_high_minor, &self.0.base_currency)
    }
    /// Loyal (relationship matrix) needs this many won deals...
    async fn loyalty_min_won_deals(&self) -> i32 {
        self.0.loyalty_min_won_deals
    }
    /// ...this many days since the first purchase...
    async fn loyalty_min_tenure_days(&self) -> i64 {
        self.0.loyalty_min_tenure_days
    }
    /// ...and at most this many complaints in the window.
    async fn loyalty_max_complaints(&self) -> i32 {
        self.0.loyalty_max_complaints
    }
    /// High profit contribution from this margin in the window.
    async fn profit_high_min(&self) -> Money {
        Money::new(self.0.profit_high_minor, &self.0.base_currency)
    }
    /// High turnover (turnover x margin matrix) from this many won deals in the window.
    async fn turnover_high_min_deals(&self) -> i32 {
        self.0.turnover_high_min_deals
    }
    /// High margin from this margin rate, in percent of costed revenue.
    async fn margin_high_rate_pct(&self) -> i64 {
        self.0.margin_high_rate_pct
    }
    /// Moves between categories as customers rise (default: retail to vip on reaching
    /// tier A or lifecycle VIP), recorded in the history as field CATEGORY.
    async fn promotions(&self) -> Vec<CategoryPromotion> {
        self.0
            .promotions
            .iter()
            .map(|p| CategoryPromotion {
                from: p.from.clone(),
                to: p.to.clone(),
                tiers: p.tiers.iter().map(|&t| t.into()).collect(),
                stages: p.stages.iter().map(|&s| s.into()).collect(),
            })
            .collect()
    }
}

/// A customer of category `from` moves to `to` when its grades newly reach one of `tiers`
/// or of `stages` (a customer already there when the rule is added stays).
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "CategoryPromotionInput")]
pub struct CategoryPromotion {
    pub from: String,
    pub to: String,
    #[graphql(default)]
    pub tiers: Vec<Tier>,
    #[graphql(default)]
    pub stages: Vec<super::enums::LifecycleStage>,
}

/// Changes to the policy; omitted fields stay. Amounts are decimal strings in the base currency.
#[derive(InputObject, Default)]
pub struct ClassificationPolicyInput {
    pub version: i32,
    pub base_currency: Option<String>,
    pub tier_a_min: Option<String>,
    pub tier_b_min: Option<String>,
    pub window_days: Option<i64>,
    pub churn_days: Option<i64>,
    pub vip_min_won_deals: Option<i32>,
    pub vip_if_tier_a: Option<bool>,
    pub rfm_buckets: Option<i32>,
    pub frequency_high_min_deals: Option<i32>,
    pub value_high_min: Option<String>,
    pub loyalty_min_won_deals: Option<i32>,
    pub loyalty_min_tenure_days: Option<i64>,
    pub loyalty_max_complaints: Option<i32>,
    pub profit_high_min: Option<String>,
    pub turnover_high_min_deals: Option<i32>,
    pub margin_high_rate_pct: Option<i64>,
    /// Replaces the promotion rules ([] switches promotions off).
    pub promotions: Option<Vec<CategoryPromotion>>,
}

impl ClassificationPolicyInput {
    fn apply(self, mut p: Policy) -> Result<Policy, AppError> {
        let mut v = service::error::Violations::new();
        if let Some(c) = self.base_currency {
            p.base_currency = v.check("baseCurrency", money::currency(&c)).map_or(p.base_currency, String::from);
        }
        let base = p.base_currency.clone();
        let mut amount = |field: &str, value: Option<String>, target: &mut i64| {
            if let Some(s) = value
                && let Some(m) = v.check(field, money::parse_minor(&s, &base))
            {
                *target = m;
            }
        };
        amount("tierAMin", self.tier_a_min, &mut p.tier_a_minor);
        amount("tierBMin", self.tier_b_min, &mut p.tier_b_minor);
        amount("valueHighMin", self.value_high_min, &mut p.value_high_minor);
        amount("profitHighMin", self.profit_high_min, &mut p.profit_high_minor);
        v.into_result()?;
        p.window_days = self.window_days.unwrap_or(p.window_days);
        p.churn_days = self.churn_days.unwrap_or(p.churn_days);
        p.vip_min_won_deals = self.vip_min_won_deals.unwrap_or(p.vip_min_won_deals);
        p.vip_if_tier_a = self.vip_if_tier_a.unwrap_or(p.vip_if_tier_a);
        p.rfm_buckets = self.rfm_buckets.unwrap_or(p.rfm_buckets);
        p.frequency_high_min_deals = self.frequency_high_min_deals.unwrap_or(p.frequency_high_min_deals);
        p.loyalty_min_won_deals = self.loyalty_min_won_deals.unwrap_or(p.loyalty_min_won_deals);
        p.loyalty_min_tenure_days = self.loyalty_min_tenure_days.unwrap_or(p.loyalty_min_tenure_days);
        p.loyalty_max_complaints = self.loyalty_max_complaints.unwrap_or(p.loyalty_max_complaints);
        p.turnover_high_min_deals = self.turnover_high_min_deals.unwrap_or(p.turnover_high_min_deals);
        p.margin_high_rate_pct = self.margin_high_rate_pct.unwrap_or(p.margin_high_rate_pct);
        if let Some(rules) = self.promotions {
            p.promotions = rules
                .into_iter()
                .map(|r| svc::Promotion {
                    from: r.from.trim().to_lowercase(),
                    to: r.to.trim().to_lowercase(),
                    tiers: r.tiers.into_iter().map(Into::into).collect(),
                    stages: r.stages.into_iter().map(Into::into).collect(),
                })
                .collect();
        }
        Ok(p)
    }
}

/// An exchange rate to the base currency.
#[derive(SimpleObject)]
pub struct ExchangeRate {
    pub currency: String,
    /// Base-currency units per unit, decimal string with six places.
    pub rate: String,
    pub updated_at: DateTime<Utc>,
}

impl From<entity::exchange_rate::Model> for ExchangeRate {
    fn from(m: entity::exchange_rate::Model) -> Self {
        ExchangeRate {
            currency: m.currency,
            rate: format!("{}.{:06}", m.rate_ppm / 1_000_000, m.rate_ppm % 1_000_000),
            updated_at: m.updated_at,
        }
    }
}

/// A full reclassification pass and its progress.
#[derive(SimpleObject)]
pub struct ClassificationRun {
    pub id: ID,
    /// RECLASSIFY, POLICY_CHANGE or TIME_PASSED.
    pub reason: String,
    /// RUNNING, DONE or FAILED.
    pub status: String,
    pub total: i64,
    pub processed: i64,
    /// Customers whose grades changed.
    pub changed: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Who asked for it; null for the scheduler and policy changes made before this was kept.
    pub started_by_id: Option<ID>,
}

impl From<classification_run::Model> for ClassificationRun {
    fn from(m: classification_run::Model) -> Self {
        ClassificationRun {
            id: ID(m.id.to_string()),
            reason: m.reason.to_string(),
            status: m.status.to_string(),
            total: m.total,
            processed: m.processed,
            changed: m.changed,
            started_at: m.started_at,
            finished_at: m.finished_at,
            started_by_id: m.started_by.map(|u| ID(u.to_string())),
            error: m.error,
        }
    }
}

/// One change of a customer's tier or lifecycle stage.
#[derive(SimpleObject, Clone)]
pub struct ClassificationChange {
    /// TIER, LIFECYCLE or CATEGORY (a promotion of the policy).
    pub field: String,
    pub from: Option<String>,
    pub to: String,
    /// DEAL_WON, DEAL_LOST, DEAL_CHANGED, OVERRIDE, POLICY_CHANGE, TIME_PASSED, RECLASSIFY
    /// or MERGE.
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl From<classification_history::Model> for ClassificationChange {
    fn from(m: classification_history::Model) -> Self {
        ClassificationChange {
            field: m.field,
            from: m.from_value,
            to: m.to_value,
            reason: m.reason.to_string(),
            at: m.at,
        }
    }
}

#[derive(Default)]
pub struct ClassificationQuery;

#[Object]
impl ClassificationQuery {
    /// The classification policy (anyone who reads reports or settings).
    async fn classification_policy(&self, ctx: &Context<'_>) -> Result<ClassificationPolicy> {
        let (p, v) = svc::read_policy(db(ctx), actor(ctx)?).await.gql()?;
        Ok(ClassificationPolicy(p, v))
    }

    /// Exchange rates to the base currency.
    async fn exchange_rates(&self, ctx: &Context<'_>) -> Result<Vec<ExchangeRate>> {
        let rows = svc::exchange_rates(db(ctx), actor(ctx)?).await.gql()?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Recent full passes, newest first (admins).
    async fn classification_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: i32,
    ) -> Result<Vec<ClassificationRun>> {
        let rows = svc::runs(db(ctx), actor(ctx)?, first.clamp(1, 100)).await.gql()?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct ClassificationMutation;

#[Object]
impl ClassificationMutation {
    /// Changes the policy (admins) and reclassifies every customer in the background.
    /// CONFLICT when `version` is stale.
    async fn update_classification_policy(
        &self,
        ctx: &Context<'_>,
        input: ClassificationPolicyInput,
    ) -> Result<ClassificationPolicy> {
        let actor = actor(ctx)?;
        let version = input.version;
        let (current, _) = svc::policy(db(ctx)).await.gql()?;
        let new = input.apply(current).gql()?;
        let (p, v) = svc::update_policy(db(ctx), actor, new, version).await.gql()?;
        Ok(ClassificationPolicy(p, v))
    }

    /// Sets an exchange rate (admins), e.g. currency "USD", rate "7.10", and reclassifies.
    async fn set_exchange_rate(&self, ctx: &Context<'_>, currency: String, rate: String) -> Result<ExchangeRate> {
        let actor = actor(ctx)?;
        svc::set_rate(db(ctx), actor, &currency, &rate).await.map(Into::into).gql()
    }

    /// Reclassifies every customer in the background (admins); poll `classificationRuns`.
    /// CONFLICT while a pass runs.
    async fn reclassify_all(&self, ctx: &Context<'_>) -> Result<ClassificationRun> {
        svc::reclassify_all(db(ctx), actor(ctx)?).await.map(Into::into).gql()
    }

    /// Sets a manual tier that wins over the computed one until removed with `tier: null`
    /// (needs the assign permission over the customer; a reason is required).
    async fn set_tier_override(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        tier: Option<Tier>,
        reason: Option<String>,
    ) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("customerId", &customer_id).gql()?;
        svc::set_override(db(ctx), actor, id, tier.map(Into::into), reason).await.map(Customer).gql()
    }
}
