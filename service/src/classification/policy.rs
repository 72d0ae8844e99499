//! The classification policy and exchange rates: settings kept as data, admin-edited;
//! a change regrades everyone in a background pass.
use crate::access::Actor;
use crate::classification::{Reason, start_full_pass};
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{Subject, Verb};
use crate::kernel::now;
use crate::kernel::store::{replace_policy, write};
use entity::enums::{Action, Resource};
use entity::{classification_policy, exchange_rate};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// The classification policy (defaults from `docs/classification.md`). Amounts are minor units of
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
    /// Moves between categories as customers rise (seed 004: a retail customer who
    /// becomes tier A or VIP is a VIP customer). Policies saved before these existed read
    /// the default.
    #[serde(default = "default_promotions")]
    pub promotions: Vec<Promotion>,
}

/// A customer of category `from` moves to `to` when it reaches one of `tiers` or of
/// `stages` (a grading that newly qualifies it, not one it already had).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub tiers: Vec<entity::enums::Tier>,
    #[serde(default)]
    pub stages: Vec<entity::enums::LifecycleStage>,
}

impl Promotion {
    /// Whether grades qualify for the move.
    pub fn qualifies(&self, tier: entity::enums::Tier, stage: entity::enums::LifecycleStage) -> bool {
        self.tiers.contains(&tier) || self.stages.contains(&stage)
    }
}

/// Most promotion rules a policy holds.
const MAX_PROMOTIONS: usize = 20;

fn default_promotions() -> Vec<Promotion> {
    vec![Promotion {
        from: "retail".into(),
        to: "vip".into(),
        tiers: vec![entity::enums::Tier::A],
        stages: vec![entity::enums::LifecycleStage::Vip],
    }]
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
            promotions: default_promotions(),
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
        v.check("baseCurrency", crate::kernel::money::currency(&self.base_currency).map(|_| ()));
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
        if self.promotions.len() > MAX_PROMOTIONS {
            v.add("promotions", format!("at most {MAX_PROMOTIONS} rules"));
        }
        for (i, p) in self.promotions.iter().enumerate() {
            if p.from.trim().is_empty() || p.to.trim().is_empty() || p.from == p.to {
                v.add(format!("promotions.{i}"), "needs two different categories, from and to");
            }
            if p.tiers.is_empty() && p.stages.is_empty() {
                v.add(format!("promotions.{i}"), "needs a tier or a lifecycle stage to be reached");
            }
        }
        v.into_result()
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
        let from_exp = crate::kernel::money::exponent(currency).unwrap_or(2) as i32;
        let to_exp = crate::kernel::money::exponent(base).unwrap_or(2) as i32;
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

/// The policy as a caller may read it: roles that read reports or settings.
///
/// # Errors
/// FORBIDDEN.
pub async fn read_policy(db: &DatabaseConnection, actor: &Actor) -> AppResult<(Policy, i32)> {
    if !actor.grant(Resource::Report, Action::Read).allowed()
        && !actor.grant(Resource::Settings, Action::Read).allowed()
    {
        return Err(AppError::Forbidden("your role may not read the classification policy".into()));
    }
    policy(db).await
}

/// Exchange rates to the base currency, by currency (any staff member: they explain the
/// amounts they see).
pub async fn exchange_rates(db: &DatabaseConnection, _actor: &Actor) -> AppResult<Vec<exchange_rate::Model>> {
    Ok(exchange_rate::Entity::find().order_by_asc(exchange_rate::Column::Currency).all(db).await?)
}

/// The stored exchange rates.
pub async fn rates(db: &impl ConnectionTrait) -> AppResult<Rates> {
    let rows = exchange_rate::Entity::find().all(db).await?;
    Ok(Rates(rows.into_iter().map(|r| (r.currency, r.rate_ppm)).collect()))
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
    let catalogue = crate::category::Catalogue::load(db).await?;
    let mut v = Violations::new();
    for (i, p) in new.promotions.iter().enumerate() {
        for (end, key) in [("from", &p.from), ("to", &p.to)] {
            if catalogue.get(key).is_none() {
                v.add(format!("promotions.{i}.{end}"), format!("unknown category {key}"));
            }
        }
    }
    v.into_result()?;
    let policy_json = serde_json::to_value(&new).map_err(AppError::internal)?;
    let saved = replace_policy::<classification_policy::Entity>(db, actor.id(), policy_json, version).await?;
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
    let code = crate::kernel::money::currency(currency).map_err(|m| AppError::invalid("currency", m))?;
    // Parts per million: a decimal with up to six places.
    let ppm = crate::kernel::money::parse_scaled(rate, 6).map_err(|m| AppError::invalid("rate", m))?;
    if ppm <= 0 {
        return Err(AppError::invalid("rate", "must be above zero"));
    }
    let new = write(db, async |txn| {
        let old = exchange_rate::Entity::find_by_id(code.clone()).one(txn).await?;
        let model =
            exchange_rate::ActiveModel { currency: Set(code.into()), rate_ppm: Set(ppm), updated_at: Set(now()) };
        let new = if old.is_some() { model.update(txn).await? } else { model.insert(txn).await? };
        crate::kernel::change::record(
            txn,
            Some(actor.id()),
            Verb::Update,
            Subject::ExchangeRate,
            Uuid::nil(),
            old.as_ref(),
            Some(&new),
        )
        .await?;
        Ok(new)
    })
    .await?;
    if let Err(e) = start_full_pass(db, Reason::PolicyChange, Some(actor.id())).await {
        tracing::warn!(error = %e, "rate saved; reclassification not started");
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_conversion() {
        let rates = Rates([("USD".to_string(), 7_100_000), ("JPY".to_string(), 47_000)].into_iter().collect());
        assert_eq!(rates.to_base(100, "USD", "CNY"), 710);
        assert_eq!(rates.to_base(1000, "JPY", "CNY"), 4700);
        assert_eq!(rates.to_base(500, "EUR", "CNY"), 0);
    }
}
