//! The rules: one pure function from a customer's facts to its grades (tier, lifecycle,
//! RFM, frequency and value, relationship type, turnover x margin). See `docs/classification.md`.
use crate::classification::Policy;
use chrono::NaiveDate;
use entity::enums::{Level, LifecycleStage, RelationshipType, Tier, TurnoverMarginClass};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

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

/// RFM cut-offs over the customers who bought within the window.
pub(super) fn cutoffs_of(all: &HashMap<Uuid, Facts>, policy: &Policy, as_of: NaiveDate) -> RfmCutoffs {
    let buyers = all.values().filter(|f| f.won_count > 0);
    let (mut recency, mut frequency, mut monetary) = (Vec::new(), Vec::new(), Vec::new());
    for f in buyers {
        recency.push(f.last_purchase.map_or(0, |l| (as_of - l).num_days()));
        frequency.push(f.won_count as i64);
        monetary.push(f.revenue);
    }
    RfmCutoffs::from_samples(recency, frequency, monetary, policy.rfm_buckets)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    pub(crate) fn bought(revenue: i64, count: i32, last: &str) -> Facts {
        Facts {
            won_count: count,
            revenue,
            last_purchase: Some(day(last)),
            first_purchase: Some(day(last)),
            ..Default::default()
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
}
