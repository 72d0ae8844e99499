//! Reports for BI tools (`docs/classification.md`): aggregates only, never a personal field, within
//! the caller's report scope (a manager's department subtree, a rep's own customers).
use crate::access::Actor;
use crate::error::{AppError, AppResult};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::sql::{bigint, count_all, sum_when};
use crate::{choice, classification};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{Action, Resource};
use entity::{classification_history, customer, deal, feedback, interaction, user};
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::{BTreeMap, HashMap};
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
    let no_groups = |_: Resource, field: &str| -> AppResult<Condition> {
        Err(AppError::invalid(format!("filter.{field}"), "not available in reports"))
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

/// Tier at `from` x tier at `to`: how many customers (existing at `from`) moved where.
///
/// # Errors
/// FORBIDDEN without report access; VALIDATION when `to` is before `from`.
pub async fn tier_migration(
    db: &DatabaseConnection,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
    k: i64,
) -> AppResult<Vec<(String, String, i64)>> {
    let scope = report_condition(actor)?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    let today = crate::kernel::now().date_naive();
    let (from, to) = (from.min(today), to.min(today));
    let min = MinGroup::for_actor(actor, k);
    let ids: Vec<(Uuid, String)> = customer::Entity::find()
        .select_only()
        .column(customer::Column::Id)
        .column(customer::Column::Tier)
        .filter(scope)
        .filter(customer::Column::CreatedAt.lte(end_of(from)))
        .into_tuple()
        .all(db)
        .await?;
    let just_ids: Vec<Uuid> = ids.iter().map(|(id, _)| *id).collect();
    let at_from = values_at(db, &just_ids, "TIER", end_of(from)).await?;
    let at_to = values_at(db, &just_ids, "TIER", end_of(to)).await?;
    let mut cells: BTreeMap<(String, String), i64> = BTreeMap::new();
    // The customers created after `from` are left out: when they are a few the caller may
    // not read, two days apart would single them out (query-set-size control).
    if min.applies {
        let readable = customer::Entity::find()
            .filter(report_condition(actor)?)
            .filter(customer::Column::CreatedAt.lte(end_of(from)))
            .filter(actor.customer_condition(Resource::Customer, Action::Read))
            .count(db)
            .await? as i64;
        let kept = Tally { customers: ids.len() as i64, readable, ..Tally::default() };
        let left = left_out(db, actor, &BTreeMap::from([(Vec::new(), kept)])).await?;
        if min.small(left.customers - left.readable, 0) {
            return Ok(zero_cells());
        }
    }
    for (id, current) in ids {
        let a = at_from.get(&id).cloned().unwrap_or_else(|| current.clone());
        let b = at_to.get(&id).cloned().unwrap_or(current);
        *cells.entry((a, b)).or_default() += 1;
    }
    Ok(zero_cells()
        .into_iter()
        .map(|(a, b, _)| {
            let n = cells.get(&(a.clone(), b.clone())).copied().unwrap_or(0);
            (a, b, n)
        })
        .collect())
}

/// The sixteen (from, to) tier cells, all zero.
fn zero_cells() -> Vec<(String, String, i64)> {
    let tiers = ["A", "B", "C", "D"];
    tiers.iter().flat_map(|a| tiers.iter().map(move |b| (a.to_string(), b.to_string(), 0))).collect()
}

/// A staff member's activity in a period (seed 000 uses these in appraisals).
#[derive(Debug, Clone, PartialEq)]
pub struct StaffRow {
    pub user_id: Uuid,
    pub name: String,
    pub department_id: Uuid,
    pub calls: i64,
    pub visits: i64,
    /// SMS, WeChat and e-mail.
    pub messages: i64,
    /// Outbound calls to customers who had bought before the call.
    pub callbacks: i64,
    pub deals_won: i64,
    /// Base-currency minor units.
    pub revenue_won: i64,
}

/// A callback: an outbound call to a customer who had already bought (a won deal closed
/// on or before the call).
fn callback() -> Condition {
    use sea_orm::sea_query::ExprTrait;
    let d = Alias::new("d");
    let bought = Query::select()
        .expr(Expr::val(1))
        .from_as(deal::Entity, d.clone())
        .and_where(
            Expr::col((d.clone(), deal::Column::CustomerId))
                .equals((interaction::Entity, interaction::Column::CustomerId)),
        )
        .and_where(Expr::col((d.clone(), deal::Column::Stage)).eq(entity::enums::DealStage::Won.as_str()))
        .and_where(Expr::col((d.clone(), deal::Column::DeletedAt)).is_null())
        .and_where(Expr::col((d.clone(), deal::Column::ActualCloseDate)).is_not_null())
        .and_where(
            Expr::col((d, deal::Column::ActualCloseDate))
                .lte(Expr::col((interaction::Entity, interaction::Column::OccurredAt))),
        )
        .to_owned();
    Condition::all()
        .add(
            Expr::col((interaction::Entity, interaction::Column::Kind))
                .eq(entity::enums::InteractionKind::Call.as_str()),
        )
        .add(
            Expr::col((interaction::Entity, interaction::Column::Direction))
                .eq(entity::enums::Direction::Outbound.as_str()),
        )
        .add(Expr::exists(bought))
}

/// Calls, visits, messages, callbacks and deals won per user between two dates (inclusive).
///
/// # Errors
/// FORBIDDEN without report access; VALIDATION for a reversed period.
pub async fn staff_activity(
    db: &DatabaseConnection,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<Vec<StaffRow>> {
    let staff_scope = actor.staff_condition(Resource::Report, Action::Read)?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    let (start, end) = (from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now), end_of(to));
    let users = user::Entity::find()
        .filter(staff_scope)
        .order_by_asc(user::Column::Name)
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let mut rows: HashMap<Uuid, StaffRow> = users
        .into_iter()
        .map(|u| {
            (
                u.id,
                StaffRow {
                    user_id: u.id,
                    name: u.name,
                    department_id: u.department_id,
                    calls: 0,
                    visits: 0,
                    messages: 0,
                    callbacks: 0,
                    deals_won: 0,
                    revenue_won: 0,
                },
            )
        })
        .collect();
    let backend = db.get_database_backend();
    for chunk in ids.chunks(1000) {
        let q = Query::select()
            .column(interaction::Column::UserId)
            .column(interaction::Column::Kind)
            .expr_as(count_all(), Alias::new("n"))
            .expr_as(sum_when(callback(), 1), Alias::new("callbacks"))
            .from(interaction::Entity)
            .and_where(interaction::Column::UserId.is_in(chunk.to_vec()))
            .and_where(interaction::Column::DeletedAt.is_null())
            .and_where(interaction::Column::OccurredAt.gte(start))
            .and_where(interaction::Column::OccurredAt.lt(end))
            .group_by_col(interaction::Column::UserId)
            .group_by_col(interaction::Column::Kind)
            .to_owned();
        for row in db.query_all_raw(backend.build(&q)).await? {
            let uid: Uuid = row.try_get("", "user_id")?;
            let kind: String = row.try_get("", "kind")?;
            let n: i64 = row.try_get("", "n")?;
            let callbacks: i64 = row.try_get::<Option<i64>>("", "callbacks")?.unwrap_or(0);
            if let Some(r) = rows.get_mut(&uid) {
                match kind.as_str() {
                    "CALL" => r.calls += n,
                    "VISIT" => r.visits += n,
                    "SMS" | "WECHAT" | "EMAIL" => r.messages += n,
                    _ => {}
                }
                r.callbacks += callbacks;
            }
        }
    }
    let (policy, _) = classification::policy(db).await?;
    let rates = classification::rates(db).await?;
    for chunk in ids.chunks(1000) {
        let q: SelectStatement = Query::select()
            .column(deal::Column::OwnerId)
            .column(deal::Column::Currency)
            .expr_as(count_all(), Alias::new("n"))
            .expr_as(bigint(Func::sum(Expr::col(deal::Column::AmountMinor))), Alias::new("total"))
            .from(deal::Entity)
            .and_where(deal::Column::OwnerId.is_in(chunk.to_vec()))
            .and_where(deal::Column::Stage.eq(entity::enums::DealStage::Won))
            .and_where(deal::Column::DeletedAt.is_null())
            .and_where(deal::Column::ActualCloseDate.gte(from))
            .and_where(deal::Column::ActualCloseDate.lte(to))
            .group_by_col(deal::Column::OwnerId)
            .group_by_col(deal::Column::Currency)
            .to_owned();
        for row in db.query_all_raw(backend.build(&q)).await? {
            let uid: Uuid = row.try_get("", "owner_id")?;
            let currency: String = row.try_get("", "currency")?;
            if let Some(r) = rows.get_mut(&uid) {
                r.deals_won += row.try_get::<i64>("", "n")?;
                r.revenue_won = r.revenue_won.saturating_add(classification::Rates::to_base(
                    &rates,
                    row.try_get("", "total")?,
                    &currency,
                    &policy.base_currency,
                ));
            }
        }
    }
    let mut out: Vec<StaffRow> = rows.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.user_id.cmp(&b.user_id)));
    Ok(out)
}

/// Dimensions of the feedback summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackDimension {
    Kind,
    Channel,
    Status,
}

impl FeedbackDimension {
    pub fn name(self) -> &'static str {
        match self {
            FeedbackDimension::Kind => "kind",
            FeedbackDimension::Channel => "channel",
            FeedbackDimension::Status => "status",
        }
    }
}

/// One row of the feedback summary.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    pub keys: Vec<String>,
    pub count: i64,
    pub rated: i64,
    /// Average rating x 100 (1-5 scale), when any feedback is rated.
    pub average_rating_x100: Option<i64>,
    /// Net promoter score (-100..100) over the answers with an NPS score.
    pub nps: Option<i64>,
    pub nps_answers: i64,
    /// Median time from creation to resolution, in minutes.
    pub median_resolution_minutes: Option<i64>,
}

/// Feedback received between two dates: counts by the dimensions, average rating, NPS
/// (promoters 9-10 minus detractors 0-6) and median resolution time.
///
/// # Errors
/// FORBIDDEN without report access; VALIDATION for a reversed period.
pub async fn feedback_summary(
    db: &DatabaseConnection,
    actor: &Actor,
    from: NaiveDate,
    to: NaiveDate,
    group_by: &[FeedbackDimension],
) -> AppResult<Vec<FeedbackRow>> {
    actor.require(Resource::Report, Action::Read)?;
    if to < from {
        return Err(AppError::invalid("to", "must not be before from"));
    }
    if group_by.iter().enumerate().any(|(i, d)| group_by[..i].contains(d)) {
        return Err(AppError::invalid("groupBy", "a dimension appears twice"));
    }
    let (start, end) = (from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now), end_of(to));
    let customers = Query::select()
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .cond_where(report_condition(actor)?)
        .to_owned();
    // Rows are aggregated here, one feedback row at a time: the median needs them.
    #[derive(sea_orm::FromQueryResult)]
    struct Item {
        kind: String,
        channel: String,
        status: String,
        rating: Option<i32>,
        nps: Option<i32>,
        created_at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
    }
    let items = feedback::Entity::find()
        .select_only()
        .columns([
            feedback::Column::Kind,
            feedback::Column::Channel,
            feedback::Column::Status,
            feedback::Column::Rating,
            feedback::Column::Nps,
        ])
        .columns([feedback::Column::CreatedAt, feedback::Column::ResolvedAt])
        .filter(feedback::Column::DeletedAt.is_null())
        .filter(feedback::Column::CreatedAt.gte(start))
        .filter(feedback::Column::CreatedAt.lt(end))
        .filter(feedback::Column::CustomerId.in_subquery(customers))
        .into_model::<Item>()
        .all(db)
        .await?;
    struct Acc {
        count: i64,
        ratings: Vec<i64>,
        promoters: i64,
        detractors: i64,
        nps_answers: i64,
        resolution: Vec<i64>,
    }
    let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
    for item in items {
        let keys: Vec<String> = group_by
            .iter()
            .map(|d| match d {
                FeedbackDimension::Kind => item.kind.clone(),
                FeedbackDimension::Channel => item.channel.clone(),
                FeedbackDimension::Status => item.status.clone(),
            })
            .collect();
        let acc = groups.entry(keys).or_insert(Acc {
            count: 0,
            ratings: vec![],
            promoters: 0,
            detractors: 0,
            nps_answers: 0,
            resolution: vec![],
        });
        acc.count += 1;
        if let Some(r) = item.rating {
            acc.ratings.push(r as i64);
        }
        if let Some(n) = item.nps {
            acc.nps_answers += 1;
            if n >= 9 {
                acc.promoters += 1;
            } else if n <= 6 {
                acc.detractors += 1;
            }
        }
        if let Some(r) = item.resolved_at {
            acc.resolution.push((r - item.created_at).num_minutes().max(0));
        }
    }
    Ok(groups
        .into_iter()
        .map(|(keys, mut a)| {
            a.resolution.sort_unstable();
            let median = match a.resolution.len() {
                0 => None,
                n if n % 2 == 1 => Some(a.resolution[n / 2]),
                n => Some((a.resolution[n / 2 - 1] + a.resolution[n / 2]) / 2),
            };
            FeedbackRow {
                keys,
                count: a.count,
                rated: a.ratings.len() as i64,
                average_rating_x100: (!a.ratings.is_empty()).then(|| {
                    (a.ratings.iter().sum::<i64>() * 100 + a.ratings.len() as i64 / 2) / a.ratings.len() as i64
                }),
                nps: (a.nps_answers > 0).then(|| ((a.promoters - a.detractors) * 100) / a.nps_answers),
                nps_answers: a.nps_answers,
                median_resolution_minutes: median,
            }
        })
        .collect())
}
