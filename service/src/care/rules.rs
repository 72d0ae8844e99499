//! The reminder rules, evaluated once per day: greeting and survey after a won deal,
//! birthdays, holidays, overdue contact, repeated complaints. Each candidate is keyed by
//! (rule, target, occasion) and written once ([`evaluate`]).
use crate::care::calendar::{holiday_on, holidays};
use crate::care::cap::apply_cap;
use crate::care::compliance::{BATCH, expectations, periods_of};
use crate::care::facts::{ContactFacts, contact_facts, day_start};
use crate::care::policy::{CarePolicy, Rule, policy};
use crate::care::templates::{render, templates};
use crate::error::AppResult;
use crate::kernel::store::write;
use crate::kernel::{new_id, now};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use entity::enums::{AssigneeRole, CustomerKind, FeedbackKind, ReminderRule, ReminderStatus, Role, Tier};
use entity::{customer, holiday, reminder, user};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use std::collections::HashMap;
use uuid::Uuid;

/// A reminder a rule wants to exist.
pub(super) struct Candidate {
    pub(super) rule: ReminderRule,
    pub(super) target_id: Uuid,
    pub(super) occasion: String,
    pub(super) customer: Uuid,
    pub(super) contact_id: Option<Uuid>,
    pub(super) deal_id: Option<Uuid>,
    pub(super) assignee_role: AssigneeRole,
    pub(super) assignee_id: Option<Uuid>,
    pub(super) promotional: bool,
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) status: ReminderStatus,
    pub(super) suppressed_reason: Option<String>,
}

/// Everything one evaluation needs besides the rows it walks.
pub(super) struct Context {
    pub(super) policy: CarePolicy,
    pub(super) templates: HashMap<String, String>,
    pub(super) holidays: Vec<holiday::Model>,
    /// Names of users (owners) for the templates.
    pub(super) users: HashMap<Uuid, user::Model>,
    /// Department parent links and active managers per department.
    pub(super) parents: HashMap<Uuid, Option<Uuid>>,
    pub(super) managers: HashMap<Uuid, Uuid>,
    pub(super) executive: Option<Uuid>,
    pub(super) day: NaiveDate,
    pub(super) due_at: DateTime<Utc>,
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
        // People only: an API key made with a manager's or executive's role is no one's
        // manager.
        let mut active: Vec<&user::Model> = users.values().filter(|u| u.active && !u.service_account).collect();
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

/// `MM-DD` of a date column, in the backend's date function.
fn month_day(backend: sea_orm::DatabaseBackend, column: &str) -> Expr {
    let column = Expr::col(Alias::new(column));
    match backend {
        sea_orm::DatabaseBackend::Postgres => Func::cust(Alias::new("to_char")).arg(column).arg("MM-DD").into(),
        _ => Func::cust(Alias::new("strftime")).arg("%m-%d").arg(column).into(),
    }
}

/// BIRTHDAY: customers (individuals) and contacts whose birthday is `offset` days ahead.
async fn birthday_rule(db: &impl ConnectionTrait, cx: &Context, rule: &Rule) -> AppResult<Vec<Candidate>> {
    let on = cx.day + Duration::days(i64::from(rule.offset_days));
    let keys = birthday_keys(on);
    let backend = db.get_database_backend();
    let on_day = || sea_orm::sea_query::ExprTrait::is_in(month_day(backend, "birthday"), keys.clone());
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
            // Planned by people (`follow_ups.rs`), or by the pool sweep (`pool.rs`).
            ReminderRule::FollowUp | ReminderRule::PoolReturn => continue,
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
    created += crate::care::pool::sweep(db, &cx, day).await?;
    Ok(created)
}

pub(super) async fn write_candidates(
    db: &DatabaseConnection,
    cx: &Context,
    mut candidates: Vec<Candidate>,
) -> AppResult<u64> {
    // Promotional reminders only for customers who consented to marketing (any channel).
    let promotional: Vec<Uuid> = candidates.iter().filter(|c| c.promotional).map(|c| c.customer).collect();
    if !promotional.is_empty() {
        let consenting = crate::personal::consenting(db, &promotional).await?;
        candidates.retain(|c| !c.promotional || consenting.contains(&c.customer));
    }
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
}
