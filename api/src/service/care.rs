//! The care engine (SPEC section 5; seeds 000, 001, 003): contact standards per tier and
//! role, follow-up compliance, reminder rules, the contact-frequency cap, message
//! templates and the reminders themselves.
//!
//! The rules are evaluated once per day (`evaluate`) and write reminders with
//! `INSERT ... ON CONFLICT DO NOTHING` on the unique key (rule, target, occasion), so a
//! reminder exists once whatever the number of instances, restarts or re-runs. Delivery
//! (`deliver`) claims due reminders with one conditional UPDATE, so each `reminderDue`
//! event is raised by exactly one instance.
use super::interaction::{self, NewInteraction};
use super::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use super::sql::sum_when;
use super::store::{check_version, save, write};
use super::{audit, new_id, now};
use crate::auth::Actor;
use crate::error::{AppError, AppResult, Violations};
use crate::events::{Events, Signal};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use entity::enums::{
    Action, AssigneeRole, ContactKind, CustomerKind, FeedbackKind, InteractionKind, ReminderRule, ReminderStatus,
    Resource, Role, Tier,
};
use entity::{care_policy, care_run, customer, holiday, message_template, reminder, user};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Value,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
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
    fn counts(&self, kind: InteractionKind, role: Role, by_owner: bool) -> bool {
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
}

impl CarePolicy {
    /// Checks the policy's coherence.
    ///
    /// # Errors
    /// VALIDATION listing every bad field.
    pub fn validate(&self) -> AppResult<()> {
        let mut v = Violations::new();
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
        if self.due_hour_utc > 23 {
            v.add("dueHourUtc", "must be 0 to 23");
        }
        v.into_result()
    }

    pub fn rule(&self, kind: ReminderRule) -> Option<&Rule> {
        self.rules.iter().find(|r| r.kind == kind)
    }
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
    let saved = write(db, async |txn| {
        let old = care_policy::Entity::find_by_id(1)
            .one(txn)
            .await?
            .ok_or_else(|| AppError::Internal("care policy row is missing".into()))?;
        check_version::<care_policy::Entity>(&old, Some(version))?;
        let am = care_policy::ActiveModel {
            policy: Set(policy_json),
            updated_by: Set(Some(actor.id())),
            ..old.clone().into()
        };
        save::<care_policy::Entity>(txn, Some(actor.id()), "update", &old, am).await
    })
    .await?;
    Ok((new, saved.version))
}

// ---------------------------------------------------------------------------------------
// Holidays and templates

/// Where a holiday falls in `year` (a yearly 29 February falls only in leap years).
pub fn holiday_in(h: &holiday::Model, year: i32) -> Option<NaiveDate> {
    if h.yearly {
        NaiveDate::from_ymd_opt(year, h.date.month(), h.date.day())
    } else {
        (h.date.year() == year).then_some(h.date)
    }
}

/// The holiday on `day`, if any.
fn holiday_on(holidays: &[holiday::Model], day: NaiveDate) -> Option<&holiday::Model> {
    holidays.iter().find(|h| holiday_in(h, day.year()) == Some(day))
}

/// Whether `day` lies within `window` days of a holiday.
fn near_holiday(holidays: &[holiday::Model], day: NaiveDate, window: i32) -> bool {
    (-window..=window).any(|d| holiday_on(holidays, day + Duration::days(i64::from(d))).is_some())
}

/// The calendar, ordered by date.
pub async fn holidays(db: &impl ConnectionTrait) -> AppResult<Vec<holiday::Model>> {
    Ok(holiday::Entity::find().order_by_asc(holiday::Column::Date).order_by_asc(holiday::Column::Name).all(db).await?)
}

/// Adds a holiday (admins).
///
/// # Errors
/// FORBIDDEN, VALIDATION, DUPLICATE (same name and date).
pub async fn add_holiday(
    db: &DatabaseConnection,
    actor: &Actor,
    name: &str,
    date: NaiveDate,
    yearly: bool,
) -> AppResult<holiday::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let mut v = Violations::new();
    let name = super::required_text(&mut v, "name", name, 100);
    if yearly && date.month() == 2 && date.day() == 29 {
        v.add("date", "a yearly holiday cannot fall on 29 February");
    }
    v.into_result()?;
    write(db, async |txn| {
        let m = holiday::ActiveModel {
            id: Set(new_id()),
            name: Set(name),
            date: Set(date),
            yearly: Set(yearly),
            created_at: Set(now()),
        }
        .insert(txn)
        .await?;
        audit::record(txn, Some(actor.id()), "create", "holiday", m.id, None, Some(&m)).await?;
        Ok(m)
    })
    .await
}

/// Removes a holiday (admins).
///
/// # Errors
/// FORBIDDEN, NOT_FOUND.
pub async fn delete_holiday(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<holiday::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    write(db, async |txn| {
        let m = holiday::Entity::find_by_id(id).one(txn).await?.ok_or(AppError::NotFound("holiday"))?;
        holiday::Entity::delete_by_id(id).exec(txn).await?;
        audit::record(txn, Some(actor.id()), "delete", "holiday", id, Some(&m), None).await?;
        Ok(m)
    })
    .await
}

/// The placeholders a template may use; each rule fills those that apply to it.
pub const PLACEHOLDERS: [&str; 12] =
    ["customer", "name", "owner", "product", "holiday", "date", "expected", "last", "kind", "tier", "days", "count"];

/// The `{placeholder}`s of a template body.
fn placeholders_of(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start + 1..].find('}') else { break };
        out.push(&rest[start + 1..start + 1 + len]);
        rest = &rest[start + 1 + len + 1..];
    }
    out
}

/// Renders a template: known placeholders are replaced, a missing value becomes "".
pub fn render(body: &str, values: &HashMap<&'static str, String>) -> String {
    let mut out = body.to_string();
    for key in PLACEHOLDERS {
        let token = format!("{{{key}}}");
        if out.contains(&token) {
            out = out.replace(&token, values.get(key).map_or("", String::as_str));
        }
    }
    out
}

/// The template library, by key.
pub async fn templates(db: &impl ConnectionTrait) -> AppResult<Vec<message_template::Model>> {
    Ok(message_template::Entity::find().order_by_asc(message_template::Column::Key).all(db).await?)
}

/// Creates or replaces a template (admins). `version` is required to replace one.
///
/// # Errors
/// FORBIDDEN, VALIDATION (key, length, unknown placeholder), CONFLICT (stale version).
pub async fn save_template(
    db: &DatabaseConnection,
    actor: &Actor,
    key: &str,
    body: &str,
    version: Option<i32>,
) -> AppResult<message_template::Model> {
    actor.require_all(Resource::Settings, Action::Update)?;
    let mut v = Violations::new();
    let key = key.trim().to_string();
    if key.is_empty()
        || key.len() > 64
        || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        v.add("key", "1 to 64 characters of a-z, 0-9 and _");
    }
    let body = super::required_text(&mut v, "body", body, 2000);
    let unknown: Vec<&str> = placeholders_of(&body).into_iter().filter(|p| !PLACEHOLDERS.contains(p)).collect();
    if !unknown.is_empty() {
        v.add("body", format!("unknown placeholder(s) {}; known: {}", unknown.join(", "), PLACEHOLDERS.join(", ")));
    }
    v.into_result()?;
    write(db, async |txn| {
        let old = message_template::Entity::find_by_id(key.clone()).one(txn).await?;
        match (old, version) {
            (Some(old), Some(_)) => {
                check_version::<message_template::Entity>(&old, version)?;
                let am = message_template::ActiveModel { body: Set(body), ..old.clone().into() };
                save::<message_template::Entity>(txn, Some(actor.id()), "update", &old, am).await
            }
            (Some(old), None) => Err(AppError::Conflict(format!(
                "template {key} exists at version {}; send that version to replace it",
                old.version
            ))),
            (None, _) => {
                let saved = message_template::ActiveModel {
                    key: Set(key.clone()),
                    body: Set(body),
                    version: Set(1),
                    updated_at: Set(now()),
                }
                .insert(txn)
                .await?;
                audit::record(txn, Some(actor.id()), "create", "message_template", Uuid::nil(), None, Some(&saved))
                    .await?;
                Ok(saved)
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Contact facts: who contacted which customer, how, when

/// Per customer: every (interaction kind, user role, by the owner) group with its last
/// contact and counts within each period the standards use.
#[derive(Debug, Default, Clone)]
pub struct ContactFacts {
    groups: Vec<ContactGroup>,
}

#[derive(Debug, Clone)]
struct ContactGroup {
    kind: InteractionKind,
    role: Role,
    by_owner: bool,
    last: DateTime<Utc>,
    /// Count within each of `periods` (same order).
    counts: Vec<i64>,
}

impl ContactFacts {
    /// Last contact counting toward `s`, and the number within its period.
    fn of(&self, s: &Standard, periods: &[i32]) -> (Option<DateTime<Utc>>, i64) {
        let slot = periods.iter().position(|p| *p == s.period_days).unwrap_or(0);
        let mut last = None;
        let mut count = 0;
        for g in self.groups.iter().filter(|g| s.counts(g.kind, g.role, g.by_owner)) {
            last = last.max(Some(g.last));
            count += g.counts.get(slot).copied().unwrap_or(0);
        }
        (last, count)
    }
}

/// Start of a UTC day.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// The contact facts of `customers` up to the end of `as_of`.
async fn contact_facts(
    db: &impl ConnectionTrait,
    customers: &[customer::Model],
    as_of: NaiveDate,
    periods: &[i32],
) -> AppResult<HashMap<Uuid, ContactFacts>> {
    let mut out: HashMap<Uuid, ContactFacts> = HashMap::new();
    if customers.is_empty() {
        return Ok(out);
    }
    let end = day_start(as_of + Duration::days(1));
    let owners: HashMap<Uuid, Option<Uuid>> = customers.iter().map(|c| (c.id, c.owner_id)).collect();
    use entity::interaction::{Column as I, Entity as Interaction};
    use sea_orm::sea_query::ExprTrait;
    let col = |c: I| Expr::col((Interaction, c));
    let mut q = Query::select();
    q.expr_as(col(I::CustomerId), Alias::new("customer_id"))
        .expr_as(col(I::Kind), Alias::new("kind"))
        .expr_as(Expr::col((user::Entity, user::Column::Role)), Alias::new("role"))
        .expr_as(col(I::UserId), Alias::new("user_id"))
        .expr_as(Func::max(col(I::OccurredAt)), Alias::new("last"));
    // Contacts within each standard's period, counted in the same pass over the rows.
    for (n, p) in periods.iter().enumerate() {
        let since = day_start(as_of + Duration::days(1) - Duration::days(i64::from(*p)));
        q.expr_as(sum_when(col(I::OccurredAt).gte(since), 1), Alias::new(format!("n{n}")));
    }
    q.from(Interaction)
        .inner_join(user::Entity, Expr::col((user::Entity, user::Column::Id)).equals((Interaction, I::UserId)))
        .and_where(col(I::DeletedAt).is_null())
        .and_where(col(I::OccurredAt).lt(end))
        .and_where(col(I::CustomerId).is_in(customers.iter().map(|c| c.id)))
        .group_by_col((Interaction, I::CustomerId))
        .group_by_col((Interaction, I::Kind))
        .group_by_col((user::Entity, user::Column::Role))
        .group_by_col((Interaction, I::UserId));
    for row in db.query_all_raw(db.get_database_backend().build(&q)).await? {
        let customer_id: Uuid = row.try_get("", "customer_id")?;
        let kind: String = row.try_get("", "kind")?;
        let role: String = row.try_get("", "role")?;
        let user_id: Uuid = row.try_get("", "user_id")?;
        let (Some(kind), Some(role)) = (InteractionKind::parse(&kind), Role::parse(&role)) else { continue };
        let last = row_time(&row, "last")?;
        let mut counts = Vec::with_capacity(periods.len());
        for n in 0..periods.len() {
            counts.push(row.try_get::<Option<i64>>("", &format!("n{n}"))?.unwrap_or(0));
        }
        let by_owner = owners.get(&customer_id).copied().flatten() == Some(user_id);
        out.entry(customer_id).or_default().groups.push(ContactGroup { kind, role, by_owner, last, counts });
    }
    Ok(out)
}

/// Reads an aggregated timestamp (SQLite returns MAX() of a text column as text).
fn row_time(row: &sea_orm::QueryResult, column: &str) -> AppResult<DateTime<Utc>> {
    if let Ok(t) = row.try_get::<DateTime<Utc>>("", column) {
        return Ok(t);
    }
    let s: String = row.try_get("", column)?;
    DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| AppError::Internal(format!("unreadable time {s:?}: {e}").into()))
}

// ---------------------------------------------------------------------------------------
// Follow-up compliance

/// What one standard expects of one customer, and what was done.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub standard: Standard,
    /// Contacts counted within the standard's period up to `as_of`.
    pub logged: i64,
    pub last_contact: Option<DateTime<Utc>>,
    /// The day by which the next contact is due (last contact, or the customer's
    /// creation, plus the standard's interval).
    pub due_by: NaiveDate,
    /// `due_by` has passed.
    pub overdue: bool,
}

impl Expectation {
    pub fn met(&self) -> bool {
        self.logged >= i64::from(self.standard.count)
    }
}

/// One customer's compliance.
#[derive(Debug, Clone)]
pub struct CustomerCompliance {
    pub customer: customer::Model,
    pub expectations: Vec<Expectation>,
}

/// One owner's summary.
#[derive(Debug, Clone, Default)]
pub struct OwnerCompliance {
    pub owner_id: Option<Uuid>,
    pub customers: i64,
    pub expected: i64,
    pub met: i64,
    pub overdue: i64,
    pub contacts_logged: i64,
}

/// The report.
pub struct Compliance {
    pub as_of: NaiveDate,
    pub owners: Vec<OwnerCompliance>,
    pub customers: Vec<CustomerCompliance>,
}

fn expectations(
    policy: &CarePolicy,
    c: &customer::Model,
    facts: Option<&ContactFacts>,
    as_of: NaiveDate,
    periods: &[i32],
) -> Vec<Expectation> {
    let empty = ContactFacts::default();
    let facts = facts.unwrap_or(&empty);
    policy
        .standards
        .iter()
        .filter(|s| s.tier == c.tier)
        .map(|s| {
            let (last, logged) = facts.of(s, periods);
            let since = last.unwrap_or(c.created_at).date_naive();
            let due_by = since + Duration::days(s.interval_days());
            Expectation { standard: s.clone(), logged, last_contact: last, due_by, overdue: due_by < as_of }
        })
        .collect()
}

fn periods_of(policy: &CarePolicy) -> Vec<i32> {
    let mut p: Vec<i32> = policy.standards.iter().map(|s| s.period_days).collect();
    p.sort_unstable();
    p.dedup();
    p
}

/// Customers per batch when the engine walks the customer base.
const BATCH: u64 = 2000;

/// For each live customer in the caller's scope (optionally one department subtree or
/// one owner) whose tier has standards: expectations, contacts logged, what is overdue;
/// summarised per owner.
///
/// A department filter narrows the caller's scope, never widens it.
///
/// # Errors
/// FORBIDDEN for roles without customer and interaction read access; NOT_FOUND for an
/// unknown department.
pub async fn compliance(
    db: &DatabaseConnection,
    actor: &Actor,
    as_of: NaiveDate,
    department: Option<Uuid>,
    owner: Option<Uuid>,
) -> AppResult<Compliance> {
    actor.require(Resource::Customer, Action::Read)?;
    actor.require(Resource::Interaction, Action::Read)?;
    let (policy, _) = policy(db).await?;
    let periods = periods_of(&policy);
    let tiers: Vec<Tier> = {
        let mut t: Vec<Tier> = policy.standards.iter().map(|s| s.tier).collect();
        t.sort_by_key(|t| t.as_str());
        t.dedup();
        t
    };
    let mut base = Condition::all()
        .add(customer::Column::DeletedAt.is_null())
        .add(customer::Column::Tier.is_in(tiers))
        .add(actor.customer_condition(Resource::Customer, Action::Read))
        .add(actor.customer_condition(Resource::Interaction, Action::Read));
    if let Some(d) = department {
        let subtree = crate::auth::scope::department_subtree(db, d).await?;
        if subtree.is_empty() {
            return Err(AppError::NotFound("department"));
        }
        base = base.add(customer::Column::DepartmentId.is_in(subtree));
    }
    if let Some(o) = owner {
        base = base.add(customer::Column::OwnerId.eq(o));
    }
    let mut owners: HashMap<Option<Uuid>, OwnerCompliance> = HashMap::new();
    let mut rows = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = customer::Entity::find().filter(base.clone()).order_by_asc(customer::Column::Id).limit(BATCH);
        if let Some(a) = after {
            q = q.filter(customer::Column::Id.gt(a));
        }
        let batch = q.all(db).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        let facts = contact_facts(db, &batch, as_of, &periods).await?;
        for c in batch {
            let ex = expectations(&policy, &c, facts.get(&c.id), as_of, &periods);
            let o = owners
                .entry(c.owner_id)
                .or_insert_with(|| OwnerCompliance { owner_id: c.owner_id, ..Default::default() });
            o.customers += 1;
            o.expected += ex.len() as i64;
            o.met += ex.iter().filter(|e| e.met()).count() as i64;
            o.overdue += ex.iter().filter(|e| e.overdue).count() as i64;
            o.contacts_logged += ex.iter().map(|e| e.logged).sum::<i64>();
            rows.push(CustomerCompliance { customer: c, expectations: ex });
        }
    }
    let mut owners: Vec<OwnerCompliance> = owners.into_values().collect();
    owners.sort_by_key(|o| o.owner_id);
    Ok(Compliance { as_of, owners, customers: rows })
}

// ---------------------------------------------------------------------------------------
// Reminder rules

/// A reminder a rule wants to exist.
struct Candidate {
    rule: ReminderRule,
    target_id: Uuid,
    occasion: String,
    customer: Uuid,
    contact_id: Option<Uuid>,
    deal_id: Option<Uuid>,
    assignee_role: AssigneeRole,
    assignee_id: Option<Uuid>,
    promotional: bool,
    reason: String,
    message: String,
    status: ReminderStatus,
    suppressed_reason: Option<String>,
}

/// Everything one evaluation needs besides the rows it walks.
struct Context {
    policy: CarePolicy,
    templates: HashMap<String, String>,
    holidays: Vec<holiday::Model>,
    /// Names of users (owners) for the templates.
    users: HashMap<Uuid, user::Model>,
    /// Department parent links and active managers per department.
    parents: HashMap<Uuid, Option<Uuid>>,
    managers: HashMap<Uuid, Uuid>,
    executive: Option<Uuid>,
    day: NaiveDate,
    due_at: DateTime<Utc>,
}

impl Context {
    async fn load(db: &impl ConnectionTrait, day: NaiveDate) -> AppResult<Context> {
        let (policy, _) = policy(db).await?;
        let templates = templates(db).await?.into_iter().map(|t| (t.key, t.body)).collect();
        let holidays = holidays(db).await?;
        let users: HashMap<Uuid, user::Model> =
            user::Entity::find().all(db).await?.into_iter().map(|u| (u.id, u)).collect();
        let parents =
            entity::department::Entity::find().all(db).await?.into_iter().map(|d| (d.id, d.parent_id)).collect();
        let mut managers = HashMap::new();
        let mut executive = None;
        let mut active: Vec<&user::Model> = users.values().filter(|u| u.active).collect();
        active.sort_by_key(|u| u.id);
        for u in active {
            match u.role {
                Role::Manager => {
                    managers.entry(u.department_id).or_insert(u.id);
                }
                Role::Executive if executive.is_none() => executive = Some(u.id),
                _ => {}
            }
        }
        let due_at = day_start(day) + Duration::hours(i64::from(policy.due_hour_utc));
        Ok(Context { policy, templates, holidays, users, parents, managers, executive, day, due_at })
    }

    /// The assignee a rule names for a customer: `None` with OWNER (resolved at read
    /// time, so the reminder follows the customer); the nearest manager up the
    /// department tree; an executive.
    fn assignee(&self, role: AssigneeRole, c: &customer::Model) -> Option<Option<Uuid>> {
        match role {
            AssigneeRole::Owner => c.owner_id.map(|_| None),
            AssigneeRole::Executive => self.executive.map(Some),
            AssigneeRole::Manager => {
                let mut dept = Some(c.department_id);
                let mut hops = 0;
                while let Some(d) = dept {
                    if let Some(m) = self.managers.get(&d) {
                        return Some(Some(*m));
                    }
                    dept = self.parents.get(&d).copied().flatten();
                    hops += 1;
                    if hops > 64 {
                        break;
                    }
                }
                None
            }
        }
    }

    fn owner_name(&self, c: &customer::Model) -> String {
        c.owner_id.and_then(|o| self.users.get(&o)).map(|u| u.name.clone()).unwrap_or_default()
    }

    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        rule: &Rule,
        c: &customer::Model,
        target: (Uuid, Option<Uuid>),
        deal_id: Option<Uuid>,
        occasion: String,
        reason: String,
        mut values: HashMap<&'static str, String>,
    ) -> Option<Candidate> {
        if !rule.tiers.is_empty() && !rule.tiers.contains(&c.tier) {
            return None;
        }
        let assignee_id = self.assignee(rule.assignee, c)?;
        values.insert("customer", c.name.clone());
        values.entry("name").or_insert_with(|| c.name.clone());
        values.insert("owner", self.owner_name(c));
        values.insert("tier", c.tier.to_string());
        let message = self.templates.get(&rule.template).map(|t| render(t, &values)).unwrap_or_default();
        Some(Candidate {
            rule: rule.kind,
            target_id: target.0,
            occasion,
            customer: c.id,
            contact_id: target.1,
            deal_id,
            assignee_role: rule.assignee,
            assignee_id,
            promotional: rule.promotional,
            reason,
            message,
            status: ReminderStatus::Pending,
            suppressed_reason: None,
        })
    }
}

fn date_zh(d: NaiveDate) -> String {
    format!("{}月{}日", d.month(), d.day())
}

/// Live customers by id.
async fn customers_by_id(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> AppResult<HashMap<Uuid, customer::Model>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1000) {
        for c in customer::Entity::find()
            .filter(customer::Column::Id.is_in(chunk.to_vec()))
            .filter(customer::Column::DeletedAt.is_null())
            .all(db)
            .await?
        {
            out.insert(c.id, c);
        }
    }
    Ok(out)
}

/// DEAL_GREETING and SATISFACTION_SURVEY: deals won `offset` days before `day`.
async fn deal_rule(db: &impl ConnectionTrait, cx: &Context, rule: &Rule) -> AppResult<Vec<Candidate>> {
    use entity::{deal, deal_line_item};
    let closed = cx.day - Duration::days(i64::from(rule.offset_days));
    let deals = deal::Entity::find()
        .filter(deal::Column::Stage.eq(entity::enums::DealStage::Won))
        .filter(deal::Column::DeletedAt.is_null())
        .filter(deal::Column::ActualCloseDate.eq(closed))
        .all(db)
        .await?;
    let customers = customers_by_id(db, deals.iter().map(|d| d.customer_id).collect()).await?;
    let mut products: HashMap<Uuid, String> = HashMap::new();
    for chunk in deals.chunks(1000) {
        let items = deal_line_item::Entity::find()
            .filter(deal_line_item::Column::DealId.is_in(chunk.iter().map(|d| d.id).collect::<Vec<_>>()))
            .order_by_asc(deal_line_item::Column::Position)
            .all(db)
            .await?;
        for i in items {
            products.entry(i.deal_id).or_insert(i.product);
        }
    }
    let what = if rule.kind == ReminderRule::DealGreeting { "greeting" } else { "satisfaction survey" };
    Ok(deals
        .iter()
        .filter_map(|d| {
            let c = customers.get(&d.customer_id)?;
            let product = products.get(&d.id).cloned().unwrap_or_else(|| d.title.clone());
            let values = HashMap::from([
                ("product", product.clone()),
                ("date", date_zh(closed)),
                ("days", rule.offset_days.to_string()),
            ]);
            let reason = format!("{what} {} days after the deal \"{}\" was won on {closed}", rule.offset_days, d.title);
            cx.candidate(rule, c, (c.id, None), Some(d.id), d.id.to_string(), reason, values)
        })
        .collect())
}

/// The month-days whose birthdays fall on `day`: its own, and 29 February on 28 February
/// of a common year.
pub fn birthday_keys(day: NaiveDate) -> Vec<String> {
    let mut keys = vec![format!("{:02}-{:02}", day.month(), day.day())];
    if day.month() == 2 && day.day() == 28 && NaiveDate::from_ymd_opt(day.year(), 2, 29).is_none() {
        keys.push("02-29".into());
    }
    keys
}

fn month_day_sql(backend: sea_orm::DatabaseBackend, column: &str) -> String {
    match backend {
        sea_orm::DatabaseBackend::Postgres => format!("to_char({column}, 'MM-DD')"),
        _ => format!("strftime('%m-%d', {column})"),
    }
}

/// BIRTHDAY: customers (individuals) and contacts whose birthday is `offset` days ahead.
async fn birthday_rule(db: &impl ConnectionTrait, cx: &Context, rule: &Rule) -> AppResult<Vec<Candidate>> {
    let on = cx.day + Duration::days(i64::from(rule.offset_days));
    let keys = birthday_keys(on);
    let backend = db.get_database_backend();
    let on_day = || sea_orm::sea_query::ExprTrait::is_in(Expr::cust(month_day_sql(backend, "birthday")), keys.clone());
    let mut out = Vec::new();
    let people = customer::Entity::find()
        .filter(customer::Column::DeletedAt.is_null())
        .filter(customer::Column::Kind.eq(CustomerKind::Individual))
        .filter(customer::Column::Birthday.is_not_null())
        .filter(on_day())
        .all(db)
        .await?;
    let occasion = on.to_string();
    for c in &people {
        let values = HashMap::from([("date", date_zh(on)), ("days", rule.offset_days.to_string())]);
        let reason = format!("birthday on {on}");
        out.extend(cx.candidate(rule, c, (c.id, None), None, occasion.clone(), reason, values));
    }
    let contacts = entity::contact::Entity::find()
        .filter(entity::contact::Column::DeletedAt.is_null())
        .filter(entity::contact::Column::Birthday.is_not_null())
        .filter(on_day())
        .all(db)
        .await?;
    let owners = customers_by_id(db, contacts.iter().map(|k| k.customer_id).collect()).await?;
    for k in &contacts {
        let Some(c) = owners.get(&k.customer_id) else { continue };
        let values =
            HashMap::from([("name", k.name.clone()), ("date", date_zh(on)), ("days", rule.offset_days.to_string())]);
        let reason = format!("birthday of {} ({}) on {on}", k.name, c.name);
        out.extend(cx.candidate(rule, c, (k.id, Some(k.id)), None, occasion.clone(), reason, values));
    }
    Ok(out)
}

/// The next batch of live customers of the given tiers (all when empty) in id order.
async fn next_batch(db: &impl ConnectionTrait, tiers: &[Tier], after: Option<Uuid>) -> AppResult<Vec<customer::Model>> {
    let mut q = customer::Entity::find()
        .filter(customer::Column::DeletedAt.is_null())
        .order_by_asc(customer::Column::Id)
        .limit(BATCH);
    if !tiers.is_empty() {
        q = q.filter(customer::Column::Tier.is_in(tiers.to_vec()));
    }
    if let Some(a) = after {
        q = q.filter(customer::Column::Id.gt(a));
    }
    Ok(q.all(db).await?)
}

/// OVERDUE_CONTACT for a batch: one reminder per (customer, standard, last contact).
fn overdue_candidates(
    cx: &Context,
    rule: &Rule,
    batch: &[customer::Model],
    facts: &HashMap<Uuid, ContactFacts>,
    periods: &[i32],
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in batch {
        for e in expectations(&cx.policy, c, facts.get(&c.id), cx.day, periods) {
            if !e.overdue {
                continue;
            }
            let s = &e.standard;
            let role = match s.role {
                Role::Manager => AssigneeRole::Manager,
                Role::Executive => AssigneeRole::Executive,
                _ => rule.assignee,
            };
            let last = e.last_contact.map_or_else(|| "never".to_string(), |t| t.date_naive().to_string());
            let occasion = format!("{}:{}:{}:{last}", s.tier, s.role, s.kind);
            let kind = s.kind.to_string().to_lowercase();
            let expected =
                format!("{} {kind}(s) every {} days by {}", s.count, s.period_days, s.role.to_string().to_lowercase());
            let values = HashMap::from([
                ("expected", expected.clone()),
                ("last", if e.last_contact.is_some() { last.clone() } else { "从未 never".into() }),
                ("kind", kind),
                ("days", s.interval_days().to_string()),
            ]);
            let reason = format!("tier {} expects {expected}; last contact {last}, due by {}", c.tier, e.due_by);
            let rule = Rule { assignee: role, ..rule.clone() };
            out.extend(cx.candidate(&rule, c, (c.id, None), None, occasion, reason, values));
        }
    }
    out
}

/// REPEATED_COMPLAINT: customers with `min_count` complaints within `window_days`; the
/// latest complaint is the occasion (a further complaint raises a new reminder).
async fn complaint_rule(db: &impl ConnectionTrait, cx: &Context, rule: &Rule) -> AppResult<Vec<Candidate>> {
    use entity::feedback;
    let window = rule.window_days.unwrap_or(90);
    let min = rule.min_count.unwrap_or(2);
    let from = day_start(cx.day + Duration::days(1) - Duration::days(i64::from(window)));
    let to = day_start(cx.day + Duration::days(1));
    let complaints = feedback::Entity::find()
        .filter(feedback::Column::Kind.eq(FeedbackKind::Complaint))
        .filter(feedback::Column::DeletedAt.is_null())
        .filter(feedback::Column::CreatedAt.gte(from))
        .filter(feedback::Column::CreatedAt.lt(to))
        .order_by_asc(feedback::Column::CreatedAt)
        .order_by_asc(feedback::Column::Id)
        .all(db)
        .await?;
    let mut per: HashMap<Uuid, Vec<&feedback::Model>> = HashMap::new();
    for f in &complaints {
        per.entry(f.customer_id).or_default().push(f);
    }
    per.retain(|_, v| v.len() >= min as usize);
    let customers = customers_by_id(db, per.keys().copied().collect()).await?;
    let mut out = Vec::new();
    for (id, list) in per {
        let (Some(c), Some(latest)) = (customers.get(&id), list.last()) else { continue };
        let values = HashMap::from([("count", list.len().to_string()), ("days", window.to_string())]);
        let reason =
            format!("{} complaints within {window} days (latest on {})", list.len(), latest.created_at.date_naive());
        out.extend(cx.candidate(rule, c, (c.id, None), None, latest.id.to_string(), reason, values));
    }
    Ok(out)
}

/// Applies the frequency cap to promotional candidates: a customer with `max_touches`
/// promotional reminders (neither suppressed nor dismissed) due within the last `days`
/// days, outside holiday windows, gets the new one SUPPRESSED with the reason.
async fn apply_cap(db: &impl ConnectionTrait, cx: &Context, candidates: &mut [Candidate]) -> AppResult<()> {
    let cap = &cx.policy.frequency_cap;
    if near_holiday(&cx.holidays, cx.day, cap.holiday_window_days) {
        return Ok(());
    }
    let promotional: Vec<ReminderRule> = cx.policy.rules.iter().filter(|r| r.promotional).map(|r| r.kind).collect();
    let ids: Vec<Uuid> =
        candidates.iter().filter(|c| c.promotional).map(|c| c.customer).collect::<HashSet<_>>().into_iter().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let since = cx.due_at - Duration::days(i64::from(cap.days));
    let mut touches: HashMap<Uuid, Vec<(DateTime<Utc>, ReminderRule, String)>> = HashMap::new();
    for chunk in ids.chunks(1000) {
        let rows = reminder::Entity::find()
            .filter(reminder::Column::CustomerId.is_in(chunk.to_vec()))
            .filter(reminder::Column::Rule.is_in(promotional.clone()))
            .filter(reminder::Column::Status.is_not_in([ReminderStatus::Suppressed, ReminderStatus::Dismissed]))
            .filter(reminder::Column::DueAt.gt(since))
            .filter(reminder::Column::DueAt.lte(cx.due_at))
            .all(db)
            .await?;
        for r in rows {
            if near_holiday(&cx.holidays, r.due_at.date_naive(), cap.holiday_window_days) {
                continue;
            }
            touches.entry(r.customer_id).or_default().push((r.due_at, r.rule, r.occasion));
        }
    }
    for c in candidates.iter_mut().filter(|c| c.promotional) {
        let list = touches.entry(c.customer).or_default();
        // The reminder itself, from an earlier run of the same day, is not a touch against it.
        let others: Vec<_> =
            list.iter().filter(|(_, rule, occasion)| !(*rule == c.rule && *occasion == c.occasion)).collect();
        if others.len() >= cap.max_touches as usize {
            let latest = others.iter().map(|t| t.0).max().unwrap_or(cx.due_at);
            c.status = ReminderStatus::Suppressed;
            c.suppressed_reason = Some(format!(
                "frequency cap: {} promotional touch(es) already within {} days (latest due {}); at most {} per {} days outside holidays",
                others.len(),
                cap.days,
                latest.date_naive(),
                cap.max_touches,
                cap.days
            ));
        } else {
            list.push((cx.due_at, c.rule, c.occasion.clone()));
        }
    }
    Ok(())
}

/// Inserts candidates; an existing (rule, target, occasion) is left as it is.
async fn insert(db: &impl ConnectionTrait, cx: &Context, candidates: Vec<Candidate>) -> AppResult<u64> {
    let mut created = 0;
    let at = now();
    use reminder::Column as R;
    for chunk in candidates.chunks(500) {
        let mut q = Query::insert();
        q.into_table(reminder::Entity)
            .columns([
                R::Id,
                R::Rule,
                R::TargetId,
                R::Occasion,
                R::CustomerId,
                R::ContactId,
                R::DealId,
                R::AssigneeId,
                R::AssigneeRole,
                R::DueAt,
                R::Status,
                R::Reason,
                R::Message,
                R::SuppressedReason,
                R::Version,
                R::CreatedAt,
                R::UpdatedAt,
            ])
            // The unique key makes a second evaluation (or another instance) a no-op.
            .on_conflict(OnConflict::columns([R::Rule, R::TargetId, R::Occasion]).do_nothing().to_owned());
        for c in chunk {
            let values: [Value; 17] = [
                Value::from(new_id()),
                c.rule.as_str().into(),
                c.target_id.into(),
                c.occasion.clone().into(),
                c.customer.into(),
                c.contact_id.into(),
                c.deal_id.into(),
                c.assignee_id.into(),
                c.assignee_role.as_str().into(),
                cx.due_at.into(),
                c.status.as_str().into(),
                c.reason.clone().into(),
                c.message.clone().into(),
                c.suppressed_reason.clone().into(),
                1i32.into(),
                at.into(),
                at.into(),
            ];
            q.values_panic(values.map(Expr::val));
        }
        created += db.execute(&q).await?.rows_affected();
    }
    Ok(created)
}

/// Evaluates every enabled rule for `day` and creates the reminders due that day.
/// Running it again for the same day creates nothing new.
///
/// # Errors
/// Database errors.
pub async fn evaluate(db: &DatabaseConnection, day: NaiveDate) -> AppResult<u64> {
    let cx = Context::load(db, day).await?;
    let mut created = 0;
    for rule in cx.policy.rules.iter().filter(|r| r.enabled) {
        let candidates = match rule.kind {
            ReminderRule::DealGreeting | ReminderRule::SatisfactionSurvey => deal_rule(db, &cx, rule).await?,
            ReminderRule::Birthday => birthday_rule(db, &cx, rule).await?,
            ReminderRule::RepeatedComplaint => complaint_rule(db, &cx, rule).await?,
            ReminderRule::Holiday => {
                let on = day + Duration::days(i64::from(rule.offset_days));
                let Some(h) = holiday_on(&cx.holidays, on) else { continue };
                let occasion = format!("{}:{on}", h.name);
                let reason = format!("{} on {on}", h.name);
                let values = HashMap::from([("holiday", h.name.clone()), ("date", date_zh(on))]);
                let mut after = None;
                loop {
                    let batch = next_batch(db, &rule.tiers, after).await?;
                    let Some(last) = batch.last() else { break };
                    after = Some(last.id);
                    let c: Vec<Candidate> = batch
                        .iter()
                        .filter_map(|c| {
                            cx.candidate(rule, c, (c.id, None), None, occasion.clone(), reason.clone(), values.clone())
                        })
                        .collect();
                    created += write_candidates(db, &cx, c).await?;
                }
                continue;
            }
            ReminderRule::OverdueContact => {
                let periods = periods_of(&cx.policy);
                let tiers: Vec<Tier> = if rule.tiers.is_empty() {
                    cx.policy.standards.iter().map(|s| s.tier).collect()
                } else {
                    rule.tiers.clone()
                };
                let mut after = None;
                loop {
                    let batch = next_batch(db, &tiers, after).await?;
                    let Some(last) = batch.last() else { break };
                    after = Some(last.id);
                    let facts = contact_facts(db, &batch, day, &periods).await?;
                    let c = overdue_candidates(&cx, rule, &batch, &facts, &periods);
                    created += write_candidates(db, &cx, c).await?;
                }
                continue;
            }
        };
        created += write_candidates(db, &cx, candidates).await?;
    }
    Ok(created)
}

async fn write_candidates(db: &DatabaseConnection, cx: &Context, mut candidates: Vec<Candidate>) -> AppResult<u64> {
    if candidates.is_empty() {
        return Ok(0);
    }
    // The cap reads and the insert writes in one write transaction, so two instances
    // cannot both see "no touch yet" for one customer.
    write(db, async |txn| {
        apply_cap(txn, cx, &mut candidates).await?;
        insert(txn, cx, candidates).await
    })
    .await
}

// ---------------------------------------------------------------------------------------
// The scheduler's tick

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Days whose rules this instance evaluated.
    pub evaluated: Vec<NaiveDate>,
    pub created: u64,
    /// Reminders that fell due and were announced by this instance.
    pub delivered: Vec<Uuid>,
}

/// Days evaluated in arrears after a pause (the scheduler was down).
const CATCH_UP_DAYS: i64 = 3;

/// One tick at `at`: evaluates the rules of each day up to `at` not yet evaluated (once
/// per day across instances: the day's `care_run` row), then claims and returns the
/// reminders due by `at`. The caller raises `reminderDue` for them.
///
/// # Errors
/// Database errors.
pub async fn tick(db: &DatabaseConnection, events: &Events, at: DateTime<Utc>) -> AppResult<Tick> {
    let mut out = Tick::default();
    let today = at.date_naive();
    for back in (0..CATCH_UP_DAYS).rev() {
        let day = today - Duration::days(back);
        if claim_day(db, day, at).await? {
            let created = evaluate(db, day).await?;
            care_run::Entity::update_many()
                .col_expr(care_run::Column::FinishedAt, Expr::value(now()))
                .col_expr(care_run::Column::Created, Expr::value(i32::try_from(created).unwrap_or(i32::MAX)))
                .filter(care_run::Column::Day.eq(day))
                .exec(db)
                .await?;
            out.evaluated.push(day);
            out.created += created;
        }
    }
    out.delivered = deliver(db, at).await?;
    for id in &out.delivered {
        events.publish(Signal::ReminderDue(*id)).await;
    }
    Ok(out)
}

/// Takes the evaluation of `day`: the first instance to insert its row; a run that has
/// not finished within 30 minutes is taken over (its instance stopped).
async fn claim_day(db: &DatabaseConnection, day: NaiveDate, at: DateTime<Utc>) -> AppResult<bool> {
    let mut q = Query::insert();
    q.into_table(care_run::Entity)
        .columns([care_run::Column::Day, care_run::Column::StartedAt, care_run::Column::Created])
        .values_panic([Expr::val(day), Expr::val(at), Expr::val(0)])
        .on_conflict(OnConflict::column(care_run::Column::Day).do_nothing().to_owned());
    let inserted = db.execute(&q).await?.rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let stale = at - Duration::minutes(30);
    let taken = care_run::Entity::update_many()
        .col_expr(care_run::Column::StartedAt, Expr::value(at))
        .filter(care_run::Column::Day.eq(day))
        .filter(care_run::Column::FinishedAt.is_null())
        .filter(care_run::Column::StartedAt.lt(stale))
        .exec(db)
        .await?
        .rows_affected;
    Ok(taken == 1)
}

/// Claims the reminders due by `at` that were not announced yet (a snoozed one comes
/// back as PENDING), a bounded batch at a time; each is claimed by one instance only.
pub async fn deliver(db: &DatabaseConnection, at: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
    let mut out = Vec::new();
    loop {
        use reminder::Column as R;
        let due = || {
            Condition::all()
                .add(R::NotifiedAt.is_null())
                .add(R::DueAt.lte(at))
                .add(R::Status.is_in([ReminderStatus::Pending, ReminderStatus::Snoozed]))
        };
        let mut batch = Query::select();
        batch.column(R::Id).from(reminder::Entity).cond_where(due()).order_by(R::DueAt, Order::Asc).limit(1000);
        let stamp = now();
        // The condition is repeated on the UPDATE itself: a row another instance claimed
        // between the subquery and the update no longer matches, so each is claimed once.
        let mut q = Query::update();
        q.table(reminder::Entity)
            .value(R::NotifiedAt, stamp)
            .value(R::Status, ReminderStatus::Pending.as_str())
            .value(R::UpdatedAt, stamp)
            .cond_where(due())
            .and_where(R::Id.in_subquery(batch))
            .returning_col(R::Id);
        let rows = db.query_all_raw(db.get_database_backend().build(&q)).await?;
        let n = rows.len();
        for r in rows {
            out.push(r.try_get::<Uuid>("", "id")?);
        }
        if n < 1000 {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reminders of a user

/// The caller's reminders, soonest due first.
///
/// # Errors
/// VALIDATION (paging).
pub async fn my_reminders(
    db: &DatabaseConnection,
    actor: &Actor,
    status: Option<Vec<ReminderStatus>>,
    due_before: Option<DateTime<Utc>>,
    args: &PageArgs,
) -> AppResult<Page<reminder::Model>> {
    let status = status.unwrap_or_else(|| vec![ReminderStatus::Pending, ReminderStatus::Snoozed]);
    let mut q =
        reminder::Entity::find().filter(actor.reminder_condition()).filter(reminder::Column::Status.is_in(status));
    if let Some(b) = due_before {
        q = q.filter(reminder::Column::DueAt.lt(b));
    }
    let keys =
        [SortKey::<reminder::Entity>::new("dueAt", reminder::Column::DueAt, false, |m| SortValue::Time(m.due_at))];
    paginate(db, q, &keys, reminder::Column::Id, |m| m.id, args).await
}

/// One of the caller's reminders inside a write transaction.
async fn load_mine(txn: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<reminder::Model> {
    reminder::Entity::find_by_id(id)
        .filter(actor.reminder_condition())
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("reminder"))
}

fn open(r: &reminder::Model) -> AppResult<()> {
    match r.status {
        ReminderStatus::Pending | ReminderStatus::Snoozed => Ok(()),
        s => Err(AppError::Conflict(format!(
            "the reminder is {}; only pending or snoozed reminders change",
            s.as_str().to_lowercase()
        ))),
    }
}

/// Completes a reminder by logging the contact made (its customer, and its contact
/// unless another is named), in one transaction.
///
/// # Errors
/// NOT_FOUND, CONFLICT (not open), and the interaction's own errors.
pub async fn complete(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    mut input: NewInteraction,
) -> AppResult<(reminder::Model, entity::interaction::Model)> {
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        input.customer_id = r.customer_id;
        if input.contact_id.is_none() {
            input.contact_id = r.contact_id;
        }
        let logged = interaction::create_in(txn, actor, input).await?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Done),
            interaction_id: Set(Some(logged.id)),
            ..Default::default()
        };
        Ok((save::<reminder::Entity>(txn, Some(actor.id()), "update", &r, am).await?, logged))
    })
    .await
}

/// Puts a reminder off until `until` (in the future, within a year); it is announced
/// again then.
///
/// # Errors
/// NOT_FOUND, VALIDATION, CONFLICT.
pub async fn snooze(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    until: DateTime<Utc>,
) -> AppResult<reminder::Model> {
    let t = now();
    if until <= t || until > t + Duration::days(366) {
        return Err(AppError::invalid("until", "must be in the future and within a year"));
    }
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Snoozed),
            due_at: Set(until),
            notified_at: Set(None),
            ..Default::default()
        };
        save::<reminder::Entity>(txn, Some(actor.id()), "update", &r, am).await
    })
    .await
}

/// Dismisses a reminder with a reason.
///
/// # Errors
/// NOT_FOUND, VALIDATION (reason), CONFLICT.
pub async fn dismiss(db: &DatabaseConnection, actor: &Actor, id: Uuid, reason: &str) -> AppResult<reminder::Model> {
    let mut v = Violations::new();
    let reason = super::required_text(&mut v, "reason", reason, 500);
    v.into_result()?;
    write(db, async |txn| {
        let r = load_mine(txn, actor, id).await?;
        open(&r)?;
        let am = reminder::ActiveModel {
            status: Set(ReminderStatus::Dismissed),
            dismissed_reason: Set(Some(reason)),
            ..Default::default()
        };
        save::<reminder::Entity>(txn, Some(actor.id()), "update", &r, am).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn leap_day_birthdays_fall_on_28_february_in_common_years() {
        assert_eq!(birthday_keys(d("2027-02-28")), vec!["02-28", "02-29"]);
        assert_eq!(birthday_keys(d("2028-02-28")), vec!["02-28"]);
        assert_eq!(birthday_keys(d("2028-02-29")), vec!["02-29"]);
        assert_eq!(birthday_keys(d("2027-01-01")), vec!["01-01"]);
    }

    #[test]
    fn templates_render_known_placeholders() {
        let values = HashMap::from([("customer", "王女士".to_string()), ("product", "面霜".to_string())]);
        assert_eq!(render("{customer}，感谢选购{product}{holiday}", &values), "王女士，感谢选购面霜");
        assert_eq!(placeholders_of("{a} and {b}{c"), vec!["a", "b"]);
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
