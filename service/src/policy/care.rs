//! The care policy: contact standards per tier and role, the reminder rules and the
//! contact-frequency cap, one row of JSON an admin edits. See `docs/care.md`.
use crate::access::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::store::replace_policy;
use entity::enums::{Action, AssigneeRole, ContactKind, InteractionKind, ReminderRule, Resource, Role, Tier};
use entity::{care_policy, customer, message_template, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use uuid::Uuid;

/// How often a role contacts a tier: `count` contacts of `kind` per `period_days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Standard {
    pub tier: Tier,
    pub role: Role,
    pub kind: ContactKind,
    pub count: i32,
    pub period_days: i32,
}

impl Standard {
    /// The longest gap between two contacts that still keeps the standard.
    pub fn interval_days(&self) -> i64 {
        (i64::from(self.period_days) / i64::from(self.count.max(1))).max(1)
    }

    /// Whether an interaction of `kind`, logged by a user of `role` (the owner or not),
    /// counts toward this standard. The sales-rep level also counts the owner's contacts,
    /// whatever the owner's role.
    pub(crate) fn counts(&self, kind: InteractionKind, role: Role, by_owner: bool) -> bool {
        contact_kind(kind) == Some(self.kind) && (role == self.role || (self.role == Role::Sales && by_owner))
    }
}

/// The contact kind an interaction counts as (gifts and events count as none).
pub fn contact_kind(kind: InteractionKind) -> Option<ContactKind> {
    match kind {
        InteractionKind::Visit | InteractionKind::Meeting => Some(ContactKind::Visit),
        InteractionKind::Call => Some(ContactKind::Call),
        InteractionKind::Sms | InteractionKind::Email | InteractionKind::Wechat => Some(ContactKind::Message),
        InteractionKind::Gift | InteractionKind::Event => None,
    }
}

/// One reminder rule, switchable and retimable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub kind: ReminderRule,
    pub enabled: bool,
    /// Days after the deal (greeting, survey), days ahead (birthday, holiday); unused by
    /// the others.
    pub offset_days: i32,
    /// Only customers of these tiers; empty: all.
    pub tiers: Vec<Tier>,
    /// Counts against the contact-frequency cap.
    pub promotional: bool,
    /// Key of the message template.
    pub template: String,
    pub assignee: AssigneeRole,
    /// REPEATED_COMPLAINT: the window and the number of complaints that make it repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<i32>,
}

/// At most `max_touches` promotional reminders per customer per `days`, except within
/// `holiday_window_days` of a holiday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrequencyCap {
    pub max_touches: i32,
    pub days: i32,
    pub holiday_window_days: i32,
}

/// The care policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarePolicy {
    pub standards: Vec<Standard>,
    pub rules: Vec<Rule>,
    pub frequency_cap: FrequencyCap,
    /// Hour of the day (UTC) reminders fall due (default 1, 09:00 China time).
    pub due_hour_utc: u32,
    /// How many days back a contact may be logged (admins excepted): backdated contacts
    /// would inflate compliance and appraisal figures. Default 7.
    #[serde(default = "default_backdate_days")]
    pub max_backdate_days: i32,
    /// How many live customers a holder of a role may own at once (seed 004: a rep who
    /// hoards customers keeps them from colleagues); roles without one are not capped.
    #[serde(default)]
    pub holding_caps: Vec<HoldingCap>,
    /// When an untended customer returns to its department's pool.
    #[serde(default)]
    pub pool_return: PoolReturn,
}

/// Customers with no contact logged by a person for `days` (from the last contact, or
/// from when the owner got the customer if later) return to their department's pool,
/// once a day; the owner is warned `warn_days` before. A category's days, else a tier's,
/// else `days`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReturn {
    pub enabled: bool,
    pub days: i32,
    /// 0: no warning.
    pub warn_days: i32,
    #[serde(default)]
    pub by_tier: Vec<TierDays>,
    #[serde(default)]
    pub by_category: Vec<CategoryDays>,
}

impl Default for PoolReturn {
    fn default() -> Self {
        PoolReturn { enabled: true, days: 90, warn_days: 7, by_tier: Vec::new(), by_category: Vec::new() }
    }
}

impl PoolReturn {
    /// The days a customer of `category` and `tier` may go without contact.
    pub fn days_for(&self, category: &str, tier: Tier) -> i32 {
        self.by_category
            .iter()
            .find(|c| c.category == category)
            .map(|c| c.days)
            .or_else(|| self.by_tier.iter().find(|t| t.tier == tier).map(|t| t.days))
            .unwrap_or(self.days)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierDays {
    pub tier: Tier,
    pub days: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryDays {
    pub category: String,
    pub days: i32,
}

/// At most `max` live customers owned by one user of `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldingCap {
    pub role: Role,
    pub max: i32,
}

/// The parts of a care policy to change (`updateCarePolicy`); `None` keeps the current part.
#[derive(Debug, Default)]
pub struct CarePolicyPatch {
    /// Replaces the standards table.
    pub standards: Option<Vec<Standard>>,
    /// Each rule replaces the rule of its kind; kinds not named stay as they are.
    pub rules: Option<Vec<Rule>>,
    pub frequency_cap: Option<FrequencyCap>,
    pub due_hour_utc: Option<u32>,
    pub max_backdate_days: Option<i32>,
    /// Replaces the list of capped roles (`[]`: no caps).
    pub holding_caps: Option<Vec<HoldingCap>>,
    pub pool_return: Option<PoolReturnPatch>,
}

/// The parts of the pool-return rule to change; `None` keeps the current part.
#[derive(Debug, Default)]
pub struct PoolReturnPatch {
    pub enabled: Option<bool>,
    pub days: Option<i32>,
    pub warn_days: Option<i32>,
    /// Replaces the per-tier days.
    pub by_tier: Option<Vec<TierDays>>,
    /// Replaces the per-category days.
    pub by_category: Option<Vec<CategoryDays>>,
}

impl CarePolicyPatch {
    /// The policy with this patch's parts in place of `current`'s.
    pub fn apply(self, mut current: CarePolicy) -> CarePolicy {
        if let Some(standards) = self.standards {
            current.standards = standards;
        }
        if let Some(given) = self.rules {
            // In the current order; a kind not there yet goes last, and a kind given twice
            // stays twice so validation names it.
            let mut used = vec![false; given.len()];
            for rule in &mut current.rules {
                if let Some(i) = given.iter().position(|g| g.kind == rule.kind) {
                    *rule = given[i].clone();
                    used[i] = true;
                }
            }
            current.rules.extend(given.into_iter().zip(used).filter(|(_, u)| !u).map(|(g, _)| g));
        }
        if let Some(cap) = self.frequency_cap {
            current.frequency_cap = cap;
        }
        if let Some(hour) = self.due_hour_utc {
            current.due_hour_utc = hour;
        }
        if let Some(days) = self.max_backdate_days {
            current.max_backdate_days = days;
        }
        if let Some(caps) = self.holding_caps {
            current.holding_caps = caps;
        }
        if let Some(p) = self.pool_return {
            let r = &mut current.pool_return;
            r.enabled = p.enabled.unwrap_or(r.enabled);
            r.days = p.days.unwrap_or(r.days);
            r.warn_days = p.warn_days.unwrap_or(r.warn_days);
            if let Some(by_tier) = p.by_tier {
                r.by_tier = by_tier;
            }
            if let Some(by_category) = p.by_category {
                r.by_category = by_category
                    .into_iter()
                    .map(|c| CategoryDays { category: c.category.trim().to_lowercase(), ..c })
                    .collect();
            }
        }
        current
    }
}

fn default_backdate_days() -> i32 {
    7
}

impl CarePolicy {
    /// Checks the policy's coherence.
    ///
    /// # Errors
    /// VALIDATION listing every bad field.
    pub fn validate(&self) -> AppResult<()> {
        let mut v = Violations::new();
        if !(0..=3650).contains(&self.max_backdate_days) {
            v.add("maxBackdateDays", "must be 0 to 3650");
        }
        let mut seen = HashSet::new();
        for (i, s) in self.standards.iter().enumerate() {
            if !(1..=100).contains(&s.count) {
                v.add(format!("standards[{i}].count"), "must be 1 to 100");
            }
            if !(1..=730).contains(&s.period_days) {
                v.add(format!("standards[{i}].periodDays"), "must be 1 to 730");
            }
            if !matches!(s.role, Role::Sales | Role::Manager | Role::Executive) {
                v.add(format!("standards[{i}].role"), "must be SALES, MANAGER or EXECUTIVE");
            }
            if !seen.insert((s.tier, s.role, s.kind)) {
                v.add(format!("standards[{i}]"), "tier, role and kind repeat an earlier standard");
            }
        }
        let mut kinds = HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            if !kinds.insert(r.kind) {
                v.add(format!("rules[{i}].kind"), "each rule appears once");
            }
            if matches!(r.kind, ReminderRule::FollowUp | ReminderRule::PoolReturn) {
                v.add(format!("rules[{i}].kind"), "follow-ups and pool warnings are not rules of the policy");
            }
            if !(0..=365).contains(&r.offset_days) {
                v.add(format!("rules[{i}].offsetDays"), "must be 0 to 365");
            }
            if r.template.trim().is_empty() {
                v.add(format!("rules[{i}].template"), "names a message template");
            }
            if r.kind == ReminderRule::RepeatedComplaint {
                if !(1..=3650).contains(&r.window_days.unwrap_or(90)) {
                    v.add(format!("rules[{i}].windowDays"), "must be 1 to 3650");
                }
                if !(2..=100).contains(&r.min_count.unwrap_or(2)) {
                    v.add(format!("rules[{i}].minCount"), "must be 2 to 100");
                }
            }
        }
        if !(1..=100).contains(&self.frequency_cap.max_touches) {
            v.add("frequencyCap.maxTouches", "must be 1 to 100");
        }
        if !(1..=365).contains(&self.frequency_cap.days) {
            v.add("frequencyCap.days", "must be 1 to 365");
        }
        if !(0..=30).contains(&self.frequency_cap.holiday_window_days) {
            v.add("frequencyCap.holidayWindowDays", "must be 0 to 30");
        }
        let pool = &self.pool_return;
        if !(1..=3650).contains(&pool.days) {
            v.add("poolReturn.days", "must be 1 to 3650");
        }
        if !(0..=90).contains(&pool.warn_days) {
            v.add("poolReturn.warnDays", "must be 0 to 90");
        }
        let mut tiers = HashSet::new();
        for (i, t) in pool.by_tier.iter().enumerate() {
            if !(1..=3650).contains(&t.days) {
                v.add(format!("poolReturn.byTier[{i}].days"), "must be 1 to 3650");
            }
            if !tiers.insert(t.tier) {
                v.add(format!("poolReturn.byTier[{i}].tier"), "each tier appears once");
            }
        }
        let shortest = pool
            .by_tier
            .iter()
            .map(|t| t.days)
            .chain(pool.by_category.iter().map(|c| c.days))
            .fold(pool.days, i32::min);
        if pool.warn_days >= shortest {
            v.add("poolReturn.warnDays", "must be shorter than every return period");
        }
        let mut categories = HashSet::new();
        for (i, c) in pool.by_category.iter().enumerate() {
            if c.category.trim().is_empty() {
                v.add(format!("poolReturn.byCategory[{i}].category"), "names a category");
            }
            if !(1..=3650).contains(&c.days) {
                v.add(format!("poolReturn.byCategory[{i}].days"), "must be 1 to 3650");
            }
            if !categories.insert(c.category.clone()) {
                v.add(format!("poolReturn.byCategory[{i}].category"), "each category appears once");
            }
        }
        let mut roles = HashSet::new();
        for (i, c) in self.holding_caps.iter().enumerate() {
            if !(1..=1_000_000).contains(&c.max) {
                v.add(format!("holdingCaps[{i}].max"), "must be 1 to 1,000,000");
            }
            if !roles.insert(c.role) {
                v.add(format!("holdingCaps[{i}].role"), "each role appears once");
            }
        }
        if self.due_hour_utc > 23 {
            v.add("dueHourUtc", "must be 0 to 23");
        }
        v.into_result()
    }

    pub fn rule(&self, kind: ReminderRule) -> Option<&Rule> {
        self.rules.iter().find(|r| r.kind == kind)
    }

    /// The holding cap of `role`, if it has one.
    pub fn holding_cap(&self, role: Role) -> Option<i32> {
        self.holding_caps.iter().find(|c| c.role == role).map(|c| c.max)
    }
}

/// Refuses to give `owner` (of `role`) one more customer when it holds its role's cap.
/// Called inside the write's transaction; on PostgreSQL the owner's row is locked first,
/// so two writes racing for the last place cannot both take it.
///
/// # Errors
/// CONFLICT at the cap; database errors.
pub async fn check_holding_cap(db: &impl ConnectionTrait, owner: Uuid, role: Role) -> AppResult<()> {
    let (policy, _) = policy(db).await?;
    let Some(max) = policy.holding_cap(role) else { return Ok(()) };
    // FOR NO KEY UPDATE: serialises the cap checks of one owner without blocking rows
    // that merely reference the user.
    user::Entity::find_by_id(owner).lock(sea_orm::sea_query::LockType::NoKeyUpdate).one(db).await?;
    let held = customer::Entity::find()
        .filter(customer::Column::OwnerId.eq(owner))
        .filter(customer::Column::DeletedAt.is_null())
        .count(db)
        .await?;
    if held >= max as u64 {
        return Err(AppError::Conflict(format!(
            "already holds {held} customers; a {role} may hold {max} (care policy holdingCaps): return some to the \
             pool first"
        )));
    }
    Ok(())
}

/// The stored care policy and its version.
pub async fn policy(db: &impl ConnectionTrait) -> AppResult<(CarePolicy, i32)> {
    let row = care_policy::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| AppError::Internal("care policy row is missing".into()))?;
    let policy = serde_json::from_value(row.policy).map_err(AppError::internal)?;
    Ok((policy, row.version))
}

/// Replaces the care policy (admins), refusing a stale version.
///
/// # Errors
/// FORBIDDEN, VALIDATION, CONFLICT.
pub async fn update_policy(
    db: &DatabaseConnection,
    actor: &Actor,
    new: CarePolicy,
    version: i32,
) -> AppResult<(CarePolicy, i32)> {
    actor.require_all(Resource::Settings, Action::Update)?;
    new.validate()?;
    let templates: HashSet<String> =
        message_template::Entity::find().all(db).await?.into_iter().map(|t| t.key).collect();
    let mut v = Violations::new();
    for (i, r) in new.rules.iter().enumerate() {
        if !templates.contains(&r.template) {
            v.add(format!("rules[{i}].template"), format!("no message template named {:?}", r.template));
        }
    }
    v.into_result()?;
    let policy_json = serde_json::to_value(&new).map_err(AppError::internal)?;
    let saved = replace_policy::<care_policy::Entity>(db, actor.id(), policy_json, version).await?;
    Ok((new, saved.version))
}

/// Changes the parts of the care policy a patch names (admins), as `update_policy` does
/// with the whole. CONFLICT when `version` is not the stored one (also when another change
/// lands between the read and the write).
///
/// # Errors
/// FORBIDDEN, VALIDATION, CONFLICT.
pub async fn change_policy(
    db: &DatabaseConnection,
    actor: &Actor,
    patch: CarePolicyPatch,
    version: i32,
) -> AppResult<(CarePolicy, i32)> {
    actor.require_all(Resource::Settings, Action::Update)?;
    // A stale `version`, or a change between this read and the write, fails the version
    // check of the write.
    let (current, _) = policy(db).await?;
    update_policy(db, actor, patch.apply(current), version).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let current = CarePolicy {
            standards: vec![Standard {
                tier: Tier::A,
                role: Role::Sales,
                kind: ContactKind::Visit,
                count: 3,
                period_days: 30,
            }],
            rules: Vec::new(),
            frequency_cap: FrequencyCap { max_touches: 2, days: 7, holiday_window_days: 3 },
            due_hour_utc: 1,
            max_backdate_days: 7,
            holding_caps: vec![HoldingCap { role: Role::Sales, max: 300 }],
            pool_return: PoolReturn::default(),
        };
        let patched = CarePolicyPatch {
            pool_return: Some(PoolReturnPatch { days: Some(60), ..Default::default() }),
            ..Default::default()
        }
        .apply(current.clone());
        assert_eq!(patched.pool_return.days, 60);
        assert_eq!(patched.pool_return.warn_days, current.pool_return.warn_days);
        assert_eq!(patched.standards, current.standards);
        assert_eq!(patched.holding_caps, current.holding_caps);
        let capped = CarePolicyPatch {
            holding_caps: Some(vec![HoldingCap { role: Role::Sales, max: 50 }]),
            ..Default::default()
        }
        .apply(current.clone());
        assert_eq!(capped.holding_caps[0].max, 50);
        assert_eq!(capped.pool_return, current.pool_return);
        assert_eq!(capped.frequency_cap, current.frequency_cap);
    }

    #[test]
    fn intervals_follow_the_visit_table() {
        let s = Standard { tier: Tier::A, role: Role::Sales, kind: ContactKind::Visit, count: 3, period_days: 30 };
        assert_eq!(s.interval_days(), 10);
        assert!(s.counts(InteractionKind::Meeting, Role::Manager, true));
        assert!(!s.counts(InteractionKind::Call, Role::Sales, true));
        assert!(!s.counts(InteractionKind::Visit, Role::Service, false));
    }
}
