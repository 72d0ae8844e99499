//! Follow-up compliance: what each standard expects of a customer, what was logged, what
//! is overdue; per customer and per owner (seed 000's appraisal numbers).
use crate::access::Actor;
use crate::care::facts::{ContactFacts, contact_facts};
use crate::care::policy::{CarePolicy, Standard, policy};
use crate::error::{AppError, AppResult};
use crate::kernel::pagination::{Cursor, Page, PageArgs, TotalCount, page_size};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::customer;
use entity::enums::{Action, Resource, Tier};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

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

pub(super) fn expectations(
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

pub(super) fn periods_of(policy: &CarePolicy) -> Vec<i32> {
    let mut p: Vec<i32> = policy.standards.iter().map(|s| s.period_days).collect();
    p.sort_unstable();
    p.dedup();
    p
}

/// Customers per batch when the engine walks the customer base.
pub(super) const BATCH: u64 = 2000;

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
        let subtree = crate::access::scope::department_subtree(db, d).await?;
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

/// The order of the report's customer rows (by customer id), for their cursors.
const CUSTOMER_ORDER: &str = "compliance:id+";

impl Compliance {
    /// A page of the report's customers, by id; `overdue_only` keeps those with an overdue
    /// expectation.
    ///
    /// # Errors
    /// VALIDATION (`first`, `after`).
    pub fn customer_page(&self, overdue_only: bool, args: &PageArgs) -> AppResult<Page<CustomerCompliance>> {
        let first = page_size(args.first)? as usize;
        let after =
            args.after.as_deref().map(|c| Cursor::keyset(c, CUSTOMER_ORDER, 0).map(|(_, id)| id)).transpose()?;
        let matching: Vec<&CustomerCompliance> =
            self.customers.iter().filter(|c| !overdue_only || c.expectations.iter().any(|e| e.overdue)).collect();
        let total = matching.len() as u64;
        let mut rows: Vec<&CustomerCompliance> =
            matching.into_iter().filter(|c| after.is_none_or(|a| c.customer.id > a)).take(first + 1).collect();
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        let edges = rows
            .into_iter()
            .map(|c| {
                let cursor = Cursor::After { v: Vec::new(), i: c.customer.id, o: CUSTOMER_ORDER.into() };
                (cursor, c.clone())
            })
            .collect();
        let total_count: TotalCount = Arc::new(move || Box::pin(async move { Ok(total) }));
        Ok(Page { edges, has_next_page, has_previous_page: after.is_some(), total_count })
    }
}
