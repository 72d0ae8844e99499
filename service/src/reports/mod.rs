//! Reports for BI tools (`docs/classification.md`): aggregates only, never a personal field, within
//! the caller's report scope (a manager's department subtree, a rep's own customers).
mod feedback_summary;
mod staff;
mod tier_migration;
use crate::access::Actor;
use crate::error::{AppError, AppResult};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::sql::{bigint, count_all, sum_when};
use crate::{choice, classification};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{Action, Resource};
use entity::{classification_history, customer, deal, feedback, interaction, user};
pub use feedback_summary::*;
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
pub use staff::*;
use std::collections::{BTreeMap, HashMap};
pub use tier_migration::*;
use uuid::Uuid;

/// Dimensions of the classification report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Tier,
    Lifecycle,
    Category,
    Department,
    Region,
    Owner,
}

impl Dimension {
    fn column(self) -> customer::Column {
        match self {
            Dimension::Tier => customer::Column::Tier,
            Dimension::Lifecycle => customer::Column::LifecycleStage,
            Dimension::Category => customer::Column::Category,
            Dimension::Department => customer::Column::DepartmentId,
            Dimension::Region => customer::Column::Region,
            Dimension::Owner => customer::Column::OwnerId,
        }
    }

    /// CSV header of the dimension.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Tier => "tier",
            Dimension::Lifecycle => "lifecycle_stage",
            Dimension::Category => "category",
            Dimension::Department => "department",
            Dimension::Region => "region",
            Dimension::Owner => "owner",
        }
    }
}

/// One row of the classification report. Keys are in `groupBy` order; department and
/// owner keys are ids, with their names in `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationRow {
    pub keys: Vec<Option<String>>,
    pub labels: Vec<Option<String>>,
    pub customers: i64,
    /// Base-currency minor units.
    pub revenue: i64,
    /// Share of the report's total revenue, in basis points (1/100 of a percent).
    pub share_bp: i64,
    /// The pooled groups too small to show to the caller (all keys null).
    pub suppressed: bool,
}

/// What a report may be narrowed by: attributes shared by many customers, never an
/// identifying or free-text field (no id, name, phone, e-mail, address, amounts), and
/// labels matched whole (no `contains`), so a filter cannot spell out a value.
pub const REPORT_FILTER: &[Field<customer::Column>] = &[
    Field::new("kind", customer::Column::Kind, choice!(entity::enums::CustomerKind)),
    Field::new("category", customer::Column::Category, Kind::Label),
    Field::new("region", customer::Column::Region, Kind::Label),
    Field::new("industry", customer::Column::Industry, Kind::Label),
    Field::new("source", customer::Column::Source, choice!(entity::enums::CustomerSource)),
    Field::new("importance", customer::Column::Importance, choice!(entity::enums::Importance)),
    Field::new("lifecycleStage", customer::Column::LifecycleStage, choice!(entity::enums::LifecycleStage)),
    Field::new("tier", customer::Column::Tier, choice!(entity::enums::Tier)),
    Field::new("ownerId", customer::Column::OwnerId, Kind::Id),
    Field::new("departmentId", customer::Column::DepartmentId, Kind::Id),
    Field::new("frequencyClass", customer::Column::FrequencyClass, choice!(entity::enums::Level)),
    Field::new("valueClass", customer::Column::ValueClass, choice!(entity::enums::Level)),
    Field::new("relationshipType", customer::Column::RelationshipType, choice!(entity::enums::RelationshipType)),
    Field::new(
        "turnoverMarginClass",
        customer::Column::TurnoverMarginClass,
        choice!(entity::enums::TurnoverMarginClass),
    ),
];

/// Group sizes of a report: whether the caller must be kept from small groups, and k.
#[derive(Debug, Clone, Copy)]
pub struct MinGroup {
    /// Groups with fewer customers than this are suppressed...
    pub k: i64,
    /// ...unless the caller may read every customer in them.
    pub applies: bool,
}

impl MinGroup {
    /// k for `actor`: it applies unless the caller's customer READ reach covers the report
    /// scope (an admin, a manager over their subtree, a rep over their own).
    pub fn for_actor(actor: &Actor, k: i64) -> MinGroup {
        let reads = actor.reach(Resource::Customer, Action::Read);
        MinGroup { k, applies: !reads.covers(&actor.reach(Resource::Report, Action::Read)) }
    }
}

/// Hundredths as a decimal with two places (`1250` is `"12.50"`, `-5` is `"-0.05"`): a
/// share, an average rating, in GraphQL and in the report files alike.
pub fn two_decimals(x100: i64) -> String {
    format!("{}{}.{:02}", if x100 < 0 { "-" } else { "" }, x100.abs() / 100, x100.abs() % 100)
}

/// The customers a report may cover: the report scope, live rows.
pub fn report_condition(actor: &Actor) -> AppResult<Condition> {
    actor.require(Resource::Report, Action::Read)?;
    Ok(Condition::all()
        .add(customer::Column::DeletedAt.is_null())
        .add(actor.customer_condition(Resource::Report, Action::Read)))
}

/// Counts and revenue by the given dimensions. With `as_of`, tiers and lifecycle stages
/// are those the customers had at the end of that day (from the classification history).
///
/// # Errors
/// FORBIDDEN without report access; VALIDATION for an empty or repeated `group_by`.
pub async fn classification_report(
    db: &DatabaseConnection,
    actor: &Actor,
    group_by: &[Dimension],
    filter: Option<&serde_json::Value>,
    as_of: Option<NaiveDate>,
    k: i64,
) -> AppResult<Vec<ClassificationRow>> {
    let scope = report_condition(actor)?;
    let min = MinGroup::for_actor(actor, k);
    // Reports count and sum; they never filter by a field of a group (the customer's
    // catalogue says which).
    let no_groups = |field: &str| -> AppResult<Option<Condition>> {
        match crate::catalogue::CUSTOMER.group(field) {
            Some(_) => Err(AppError::invalid(format!("filter.{field}"), "not available in reports")),
            None => Ok(None),
        }
    };
    let filtered = filter.is_some_and(|f| !f.is_null());
    let filter = crate::kernel::filter::condition(&no_groups, REPORT_FILTER, filter, None)?;
    if group_by.is_empty() || group_by.len() > 6 {
        return Err(AppError::invalid("groupBy", "give one to six dimensions"));
    }
    let mut seen = group_by.to_vec();
    seen.sort();
    seen.dedup();
    if seen.len() != group_by.len() {
        return Err(AppError::invalid("groupBy", "a dimension appears twice"));
    }
    let mut groups: BTreeMap<Vec<Option<String>>, Tally> = BTreeMap::new();
    // A future day is today (and keeps dates within what both stores compare alike).
    let as_of = as_of.map(|d| d.min(crate::kernel::now().date_naive()));
    let historic = as_of.filter(|_| group_by.iter().any(|d| matches!(d, Dimension::Tier | Dimension::Lifecycle)));
    if let Some(day) = historic {
        // Row by row: each customer's tier and stage at the end of `day`.
        let end = end_of(day);
        let customers = customer::Entity::find()
            .filter(scope)
            .filter(filter)
            .filter(customer::Column::CreatedAt.lte(end))
            .all(db)
            .await?;
        let ids: Vec<Uuid> = customers.iter().map(|c| c.id).collect();
        let tiers = values_at(db, &ids, "TIER", end).await?;
        let stages = values_at(db, &ids, "LIFECYCLE", end).await?;
        for c in customers {
            let keys = group_by
                .iter()
                .map(|d| match d {
                    Dimension::Tier => Some(tiers.get(&c.id).cloned().unwrap_or_else(|| c.tier.to_string())),
                    Dimension::Lifecycle => {
                        Some(stages.get(&c.id).cloned().unwrap_or_else(|| c.lifecycle_stage.to_string()))
                    }
                    Dimension::Category => Some(c.category.clone()),
                    Dimension::Department => Some(c.department_id.to_string()),
                    Dimension::Region => c.region.clone(),
                    Dimension::Owner => c.owner_id.map(|o| o.to_string()),
                })
                .collect();
            let g = groups.entry(keys).or_default();
            g.customers += 1;
            g.revenue = g.revenue.saturating_add(c.revenue_minor);
            g.buyers += i64::from(c.revenue_minor > 0);
            if min.applies && actor.may(Resource::Customer, Action::Read, &c) {
                g.readable += 1;
                g.readable_buyers += i64::from(c.revenue_minor > 0);
            }
        }
    } else {
        let mut q = customer::Entity::find().select_only().filter(scope).filter(filter);
        for (i, d) in group_by.iter().enumerate() {
            q = q.column_as(d.column(), format!("k{i}")).group_by(d.column());
        }
        q = q.column_as(count_all(), "n").column_as(
            bigint(Func::coalesce([Func::sum(Expr::col(customer::Column::RevenueMinor)).into(), Expr::val(0)])),
            "revenue",
        );
        q = q.column_as(sum_when(customer::Column::RevenueMinor.gt(0), 1), "buyers");
        if min.applies {
            let reads = actor.customer_condition(Resource::Customer, Action::Read);
            q = q.column_as(sum_when(reads.clone(), 1), "readable").column_as(
                sum_when(Condition::all().add(reads).add(customer::Column::RevenueMinor.gt(0)), 1),
                "readable_buyers",
            );
        }
        let stmt = sea_orm::QueryTrait::build(&q, db.get_database_backend());
        for row in db.query_all_raw(stmt).await? {
            let mut keys = Vec::with_capacity(group_by.len());
            for (i, d) in group_by.iter().enumerate() {
                let col = format!("k{i}");
                // Ids come back as UUIDs (blobs in SQLite), the rest as text.
                keys.push(match d {
                    Dimension::Department | Dimension::Owner => {
                        row.try_get::<Option<Uuid>>("", &col)?.map(|u| u.to_string())
                    }
                    _ => row.try_get::<Option<String>>("", &col)?,
                });
            }
            let count = |name: &str| -> AppResult<i64> {
                Ok(if min.applies { row.try_get::<Option<i64>>("", name)?.unwrap_or(0) } else { 0 })
            };
            let (readable, readable_buyers) = (count("readable")?, count("readable_buyers")?);
            let tally = Tally {
                customers: row.try_get::<i64>("", "n")?,
                revenue: row.try_get::<i64>("", "revenue")?,
                buyers: row.try_get::<Option<i64>>("", "buyers")?.unwrap_or(0),
                readable,
                readable_buyers,
            };
            groups.insert(keys, tally);
        }
    }
    // A filter (or a day in the past, which leaves out the customers created since)
    // leaving out only a few customers of the scope would single them out by difference
    // with the whole (query-set-size control).
    if min.applies && (filtered || historic.is_some()) {
        let left_out = left_out(db, actor, &groups).await?;
        if min.small(left_out.customers - left_out.readable, left_out.buyers - left_out.readable_buyers) {
            return Ok(Vec::new());
        }
    }
    let (shown, hidden) = suppress(groups, min);
    let total: i64 = shown.iter().chain(&hidden).fold(0i64, |t, g| t.saturating_add(g.1.1));
    let names = labels(db, group_by, shown.iter().map(|g| &g.0)).await?;
    let share = |revenue: i64| {
        if total > 0 { ((revenue as i128 * 10_000 + total as i128 / 2) / total as i128) as i64 } else { 0 }
    };
    let mut rows: Vec<ClassificationRow> = shown
        .into_iter()
        .map(|(keys, (customers, revenue))| ClassificationRow {
            labels: keys
                .iter()
                .zip(group_by)
                .map(|(k, d)| k.as_ref().and_then(|k| names.get(&(*d, k.clone())).cloned()))
                .collect(),
            keys,
            customers,
            revenue,
            share_bp: share(revenue),
            suppressed: false,
        })
        .collect();
    if let Some((_, (customers, revenue))) = hidden {
        rows.push(ClassificationRow {
            keys: vec![None; group_by.len()],
            labels: vec![None; group_by.len()],
            customers,
            revenue,
            share_bp: share(revenue),
            suppressed: true,
        });
    }
    Ok(rows)
}

/// What a report group adds up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    customers: i64,
    revenue: i64,
    /// Customers with revenue in the window: a revenue figure is a sum over them.
    buyers: i64,
    /// Customers the caller may read, and buyers among them (counted only when
    /// suppression applies): what the caller may know anyway does not protect others.
    readable: i64,
    readable_buyers: i64,
}

impl Tally {
    fn add(self, o: Tally) -> Tally {
        Tally {
            customers: self.customers + o.customers,
            revenue: self.revenue.saturating_add(o.revenue),
            buyers: self.buyers + o.buyers,
            readable: self.readable + o.readable,
            readable_buyers: self.readable_buyers + o.readable_buyers,
        }
    }

    fn minus(self, o: Tally) -> Tally {
        Tally {
            customers: self.customers - o.customers,
            revenue: self.revenue.saturating_sub(o.revenue),
            buyers: self.buyers - o.buyers,
            readable: self.readable - o.readable,
            readable_buyers: self.readable_buyers - o.readable_buyers,
        }
    }

    /// Customers and buyers in it that the caller may not read.
    fn hidden(self) -> (i64, i64) {
        (self.customers - self.readable, self.buyers - self.readable_buyers)
    }
}

impl MinGroup {
    /// A set too small to show: fewer than k customers, or a revenue that sums fewer
    /// than k buyers (but some).
    fn small(self, customers: i64, buyers: i64) -> bool {
        customers > 0 && (customers < self.k || (1..self.k).contains(&buyers))
    }
}

/// A report group: its keys, and (customers, revenue).
type Group = (Vec<Option<String>>, (i64, i64));

/// Splits groups into those shown and the pooled rest (`docs/privacy.md`). Only what the
/// caller may not read counts (its own customers do not protect anyone else's figures):
/// a group is small when it holds fewer than k such customers, or sums the revenue of
/// fewer than k such buyers (but some).
///
/// 1. A small group is pooled; so is a group of a multi-dimension report whose
///    difference with a coarser report (the same keys but one dimension dropped) would be
///    small: `[REGION, OWNER]` must not show (North, Li) when North alone minus it is one
///    customer.
/// 2. While the pool itself is small, the shown group with the fewest hidden buyers joins
///    it (complementary suppression: the pool can be worked out from the total, so it
///    must itself be safe to show). When even everything together is small, nothing is
///    shown.
fn suppress(groups: BTreeMap<Vec<Option<String>>, Tally>, min: MinGroup) -> (Vec<Group>, Option<Group>) {
    let small = |t: Tally| {
        let (c, b) = t.hidden();
        min.small(c, b)
    };
    let width = groups.keys().next().map_or(0, Vec::len);
    // The coarser reports: per dimension dropped, the total of each remaining key.
    let mut margins: Vec<HashMap<Vec<Option<String>>, Tally>> = vec![HashMap::new(); if width > 1 { width } else { 0 }];
    for (keys, t) in &groups {
        for (d, margin) in margins.iter_mut().enumerate() {
            let mut coarse = keys.clone();
            coarse.remove(d);
            let m = margin.entry(coarse).or_default();
            *m = m.add(*t);
        }
    }
    let exposes = |keys: &Vec<Option<String>>, t: Tally| {
        margins.iter().enumerate().any(|(d, margin)| {
            let mut coarse = keys.clone();
            coarse.remove(d);
            margin.get(&coarse).is_some_and(|m| small(m.minus(t)))
        })
    };
    let mut shown: Vec<(Vec<Option<String>>, Tally)> = Vec::with_capacity(groups.len());
    let mut pool = Tally::default();
    for (keys, t) in groups {
        if min.applies && (small(t) || exposes(&keys, t)) {
            pool = pool.add(t);
        } else {
            shown.push((keys, t));
        }
    }
    if min.applies && pool.customers > 0 {
        // Fewest hidden buyers first, then fewest customers: the cheapest complement.
        shown.sort_by_key(|(keys, t)| (std::cmp::Reverse(t.hidden().1), std::cmp::Reverse(t.hidden().0), keys.clone()));
        while small(pool) {
            match shown.pop() {
                Some((_, t)) => pool = pool.add(t),
                None => return (Vec::new(), None),
            }
        }
        shown.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let out = shown.into_iter().map(|(k, t)| (k, (t.customers, t.revenue))).collect();
    (out, (pool.customers > 0).then(|| (Vec::new(), (pool.customers, pool.revenue))))
}

/// What of the whole report scope (every live customer, whenever created) is not in
/// `groups`: what a filter or a past day left out.
async fn left_out(
    db: &DatabaseConnection,
    actor: &Actor,
    groups: &BTreeMap<Vec<Option<String>>, Tally>,
) -> AppResult<Tally> {
    let reads = actor.customer_condition(Resource::Customer, Action::Read);
    let q = customer::Entity::find()
        .select_only()
        .column_as(count_all(), "n")
        .column_as(sum_when(customer::Column::RevenueMinor.gt(0), 1), "buyers")
        .column_as(sum_when(reads.clone(), 1), "readable")
        .column_as(
            sum_when(Condition::all().add(reads).add(customer::Column::RevenueMinor.gt(0)), 1),
            "readable_buyers",
        )
        .filter(report_condition(actor)?);
    let stmt = sea_orm::QueryTrait::build(&q, db.get_database_backend());
    let all = match db.query_one_raw(stmt).await? {
        Some(row) => {
            let n = |c: &str| -> AppResult<i64> { Ok(row.try_get::<Option<i64>>("", c)?.unwrap_or(0)) };
            Tally {
                customers: n("n")?,
                revenue: 0,
                buyers: n("buyers")?,
                readable: n("readable")?,
                readable_buyers: n("readable_buyers")?,
            }
        }
        None => Tally::default(),
    };
    let kept = groups.values().fold(Tally::default(), |a, t| a.add(*t));
    Ok(all.minus(kept))
}

fn end_of(day: NaiveDate) -> DateTime<Utc> {
    (day + Duration::days(1)).and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now)
}

/// Names of the department and owner keys.
async fn labels<'a>(
    db: &DatabaseConnection,
    group_by: &[Dimension],
    keys: impl Iterator<Item = &'a Vec<Option<String>>>,
) -> AppResult<HashMap<(Dimension, String), String>> {
    let mut departments = Vec::new();
    let mut owners = Vec::new();
    for k in keys {
        for (value, d) in k.iter().zip(group_by) {
            if let Some(id) = value.as_deref().and_then(|v| Uuid::parse_str(v).ok()) {
                match d {
                    Dimension::Department => departments.push(id),
                    Dimension::Owner => owners.push(id),
                    _ => {}
                }
            }
        }
    }
    let mut out = HashMap::new();
    for d in
        entity::department::Entity::find().filter(entity::department::Column::Id.is_in(departments)).all(db).await?
    {
        out.insert((Dimension::Department, d.id.to_string()), d.name);
    }
    for u in user::Entity::find().filter(user::Column::Id.is_in(owners)).all(db).await? {
        out.insert((Dimension::Owner, u.id.to_string()), u.name);
    }
    Ok(out)
}

/// The value a field had at `at` for customers whose value changed after it: the
/// `from` of their first change after `at`. Customers not in the map still have their
/// current value.
async fn values_at(
    db: &DatabaseConnection,
    ids: &[Uuid],
    field: &str,
    at: DateTime<Utc>,
) -> AppResult<HashMap<Uuid, String>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(5000) {
        let rows = classification_history::Entity::find()
            .filter(classification_history::Column::CustomerId.is_in(chunk.to_vec()))
            .filter(classification_history::Column::Field.eq(field))
            .filter(classification_history::Column::At.gt(at))
            .order_by_asc(classification_history::Column::At)
            .order_by_asc(classification_history::Column::Id)
            .all(db)
            .await?;
        for r in rows {
            if let Some(from) = r.from_value {
                out.entry(r.customer_id).or_insert(from);
            }
        }
    }
    Ok(out)
}
