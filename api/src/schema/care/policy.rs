//! The care policy as GraphQL types, read and written whole.
use super::*;

/// How often a role contacts customers of a tier (seed 001's visit table).
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "CareStandardInput")]
pub struct CareStandard {
    pub tier: Tier,
    /// SALES (the owner's level: the owner's contacts count whatever their role), MANAGER or EXECUTIVE.
    pub role: Role,
    pub kind: ContactKind,
    /// Contacts expected per period.
    pub count: i32,
    pub period_days: i32,
}

/// A reminder rule: switch it off, retime it, point it at another template.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ReminderRuleInput")]
pub struct ReminderRuleConfig {
    pub kind: ReminderRule,
    pub enabled: bool,
    /// Days after a won deal (greeting, survey) or ahead (birthday, holiday).
    pub offset_days: i32,
    /// Only customers of these tiers; empty: every tier.
    pub tiers: Vec<Tier>,
    /// Counts against the contact-frequency cap.
    pub promotional: bool,
    /// Key of a message template.
    pub template: String,
    pub assignee: AssigneeRole,
    /// REPEATED_COMPLAINT: the window in days (default 90)...
    pub window_days: Option<i32>,
    /// ...and how many complaints in it (default 2).
    pub min_count: Option<i32>,
}

/// At most `maxTouches` promotional reminders per customer per `days`, outside
/// `holidayWindowDays` of a holiday; the rest are SUPPRESSED with the reason.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "FrequencyCapInput")]
pub struct FrequencyCap {
    pub max_touches: i32,
    pub days: i32,
    pub holiday_window_days: i32,
}

/// The care policy: contact standards, reminder rules, the frequency cap.
pub struct CarePolicy(pub(super) Policy, pub(super) i32);

#[Object]
impl CarePolicy {
    /// Send it back with `updateCarePolicy`.
    async fn version(&self) -> i32 {
        self.1
    }
    async fn standards(&self) -> Vec<CareStandard> {
        self.0.standards.iter().map(standard_out).collect()
    }
    async fn rules(&self) -> Vec<ReminderRuleConfig> {
        self.0.rules.iter().map(rule_out).collect()
    }
    async fn frequency_cap(&self) -> FrequencyCap {
        let c = &self.0.frequency_cap;
        FrequencyCap { max_touches: c.max_touches, days: c.days, holiday_window_days: c.holiday_window_days }
    }
    /// Hour of the day (UTC) reminders fall due; 1 is 09:00 in China.
    async fn due_hour_utc(&self) -> i32 {
        self.0.due_hour_utc as i32
    }
    /// How many days back staff may log a contact (`occurredAt`); admins may log any date.
    async fn max_backdate_days(&self) -> i32 {
        self.0.max_backdate_days
    }
    /// How many live customers one holder of a role may own; roles not listed are not
    /// capped. Checked when a customer is created, claimed or assigned to someone.
    async fn holding_caps(&self) -> Vec<HoldingCap> {
        self.0.holding_caps.iter().map(|c| HoldingCap { role: c.role.into(), max: c.max }).collect()
    }
    /// When untended customers return to their department's pool.
    async fn pool_return(&self) -> PoolReturn {
        let p = &self.0.pool_return;
        PoolReturn {
            enabled: p.enabled,
            days: p.days,
            warn_days: p.warn_days,
            by_tier: p.by_tier.iter().map(|t| TierDays { tier: t.tier.into(), days: t.days }).collect(),
            by_category: p
                .by_category
                .iter()
                .map(|c| CategoryDays { category: c.category.clone(), days: c.days })
                .collect(),
        }
    }
}

/// Customers with no contact logged by a person for `days` (from the last contact, or
/// from when the owner got them if later) return to their department's pool, once a day,
/// audited; the owner gets a POOL_RETURN reminder `warnDays` before (0: none). A
/// category's days, else a tier's, else `days`. Default: on, 90 days, warned 7 days before.
#[derive(SimpleObject, Clone)]
pub struct PoolReturn {
    pub enabled: bool,
    pub days: i32,
    pub warn_days: i32,
    #[graphql(default)]
    pub by_tier: Vec<TierDays>,
    #[graphql(default)]
    pub by_category: Vec<CategoryDays>,
}

/// Changes to the pool-return rule; omitted fields stay.
#[derive(InputObject)]
pub struct PoolReturnInput {
    pub enabled: Option<bool>,
    pub days: Option<i32>,
    pub warn_days: Option<i32>,
    /// Replaces the days per tier.
    pub by_tier: Option<Vec<TierDays>>,
    /// Replaces the days per category.
    pub by_category: Option<Vec<CategoryDays>>,
}

#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "TierDaysInput")]
pub struct TierDays {
    pub tier: Tier,
    pub days: i32,
}

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "CategoryDaysInput")]
pub struct CategoryDays {
    /// A category key.
    pub category: String,
    pub days: i32,
}

/// At most `max` live customers owned by one user of `role`.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "HoldingCapInput")]
pub struct HoldingCap {
    pub role: crate::schema::enums::Role,
    pub max: i32,
}

pub(super) fn standard_out(s: &svc::Standard) -> CareStandard {
    CareStandard {
        tier: s.tier.into(),
        role: s.role.into(),
        kind: s.kind.into(),
        count: s.count,
        period_days: s.period_days,
    }
}

pub(super) fn rule_out(r: &svc::Rule) -> ReminderRuleConfig {
    ReminderRuleConfig {
        kind: r.kind.into(),
        enabled: r.enabled,
        offset_days: r.offset_days,
        tiers: r.tiers.iter().map(|t| (*t).into()).collect(),
        promotional: r.promotional,
        template: r.template.clone(),
        assignee: r.assignee.into(),
        window_days: r.window_days,
        min_count: r.min_count,
    }
}

/// Changes to the care policy: every part is optional and an omitted part stays as it is
/// (send `holdingCaps` alone, or `poolReturn: {days: 60}` alone).
#[derive(InputObject)]
pub struct CarePolicyInput {
    /// Replaces the standards table.
    pub standards: Option<Vec<CareStandard>>,
    /// Each rule replaces the rule of its kind; kinds not named stay as they are.
    pub rules: Option<Vec<ReminderRuleConfig>>,
    pub frequency_cap: Option<FrequencyCap>,
    pub due_hour_utc: Option<i32>,
    /// How many days back staff may log a contact.
    pub max_backdate_days: Option<i32>,
    /// Replaces the holding caps per role (`[]`: no caps).
    pub holding_caps: Option<Vec<HoldingCap>>,
    /// The pool's return rule; omitted fields stay.
    pub pool_return: Option<PoolReturnInput>,
}

impl CarePolicyInput {
    pub(super) fn into_patch(self) -> svc::CarePolicyPatch {
        svc::CarePolicyPatch {
            standards: self.standards.map(|l| {
                l.into_iter()
                    .map(|s| svc::Standard {
                        tier: s.tier.into(),
                        role: s.role.into(),
                        kind: s.kind.into(),
                        count: s.count,
                        period_days: s.period_days,
                    })
                    .collect()
            }),
            rules: self.rules.map(|l| {
                l.into_iter()
                    .map(|r| svc::Rule {
                        kind: r.kind.into(),
                        enabled: r.enabled,
                        offset_days: r.offset_days,
                        tiers: r.tiers.into_iter().map(Into::into).collect(),
                        promotional: r.promotional,
                        template: r.template,
                        assignee: r.assignee.into(),
                        window_days: r.window_days,
                        min_count: r.min_count,
                    })
                    .collect()
            }),
            frequency_cap: self.frequency_cap.map(|c| svc::FrequencyCap {
                max_touches: c.max_touches,
                days: c.days,
                holiday_window_days: c.holiday_window_days,
            }),
            // Out of range is reported by validation, not wrapped.
            due_hour_utc: self.due_hour_utc.map(|h| u32::try_from(h).unwrap_or(u32::MAX)),
            max_backdate_days: self.max_backdate_days,
            holding_caps: self
                .holding_caps
                .map(|caps| caps.into_iter().map(|c| svc::HoldingCap { role: c.role.into(), max: c.max }).collect()),
            pool_return: self.pool_return.map(|p| svc::PoolReturnPatch {
                enabled: p.enabled,
                days: p.days,
                warn_days: p.warn_days,
                by_tier: p
                    .by_tier
                    .map(|l| l.into_iter().map(|t| svc::TierDays { tier: t.tier.into(), days: t.days }).collect()),
                by_category: p
                    .by_category
                    .map(|l| l.into_iter().map(|c| svc::CategoryDays { category: c.category, days: c.days }).collect()),
            }),
        }
    }
}
