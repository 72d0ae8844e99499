//! The key customer lists of seed 001, each honouring the caller's scope: gold customers,
//! drag customers, last year's top customers, big customers who complain, cross-sell
//! candidates and organizations with too few contacts.
use crate::access::Actor;
use crate::access::list::group_condition;
use crate::classification::{self, Rates};
use crate::error::{AppError, AppResult};
use crate::kernel::now;
use crate::kernel::pagination::{Cursor, page_size};
use crate::kernel::sql::{count_all, sum_when};
use chrono::{Datelike, Duration, NaiveDate};
use entity::enums::{Action, CustomerKind, DealStage, Resource, Tier};
use entity::{contact, customer, deal, deal_line_item, feedback};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection};
use std::collections::HashMap;
use uuid::Uuid;

/// One customer of a key list with the figures that put it there.
#[derive(Debug, Clone, Default)]
pub struct KeyRow {
    pub customer_id: Uuid,
    /// Position in the list, from 1.
    pub rank: i64,
    /// Revenue that ranks it (base-currency minor units), where the list is about revenue.
    pub revenue: Option<i64>,
    /// Revenue of the current year (last year's top customers).
    pub revenue_this_year: Option<i64>,
    /// Complaints, product lines or contacts, depending on the list.
    pub count: Option<i64>,
    pub last_purchase_on: Option<NaiveDate>,
}

/// One page of a key list.
pub struct KeyPage {
    pub rows: Vec<(String, KeyRow)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub total_count: u64,
}

fn offset_of(after: Option<&str>) -> AppResult<u64> {
    after.map_or(Ok(0), |c| Cursor::rank(c).map(|n| n as u64))
}

fn cursor(rank: i64) -> String {
    Cursor::Rank(rank).encode()
}

fn col(table: &str, column: &str) -> Expr {
    Expr::col((Alias::new(table), Alias::new(column)))
}

/// Live customers the caller may read, as the base of every list.
fn scoped(actor: &Actor) -> SelectStatement {
    Query::select()
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .and_where(customer::Column::DeletedAt.is_null())
        .cond_where(actor.customer_condition(Resource::Customer, Action::Read))
        .to_owned()
}

/// Live customers the caller may read and whose amounts it sees: the base of the lists
/// ranked by revenue (a rank would tell a hidden amount).
///
/// # Errors
/// FORBIDDEN when the caller sees no amounts at all.
fn scoped_with_amounts(actor: &Actor) -> AppResult<SelectStatement> {
    let amounts = group_condition::<customer::Entity>(actor, Resource::DealAmount, Resource::Customer, "revenue")?;
    Ok(Query::select()
        .column((customer::Entity, customer::Column::Id))
        .from(customer::Entity)
        .cond_where(
            Condition::all()
                .add(customer::Column::DeletedAt.is_null())
                .add(actor.customer_condition(Resource::Customer, Action::Read))
                .add(amounts),
        )
        .to_owned())
}

/// Runs a list query (selecting `id` and optionally `revenue`, `n`, `last_on`) as a page
/// ranked by `order`, then id.
async fn run(
    db: &DatabaseConnection,
    query: SelectStatement,
    order: Vec<(Expr, Order)>,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    let limit = page_size(first)?;
    let offset = offset_of(after)?;
    let backend = db.get_database_backend();
    let count_stmt =
        Query::select().expr_as(count_all(), Alias::new("n")).from_subquery(query.clone(), Alias::new("l")).to_owned();
    let total = match db.query_one_raw(backend.build(&count_stmt)).await? {
        Some(row) => row.try_get::<i64>("", "n")? as u64,
        None => 0,
    };
    let mut q = query;
    for (expr, o) in order {
        q.order_by_expr(expr, o);
    }
    q.order_by((customer::Entity, customer::Column::Id), Order::Asc).limit(limit + 1).offset(offset);
    let rows = db.query_all_raw(backend.build(&q)).await?;
    let has_next_page = rows.len() as u64 > limit;
    let mut out = Vec::new();
    for (i, row) in rows.iter().take(limit as usize).enumerate() {
        let rank = offset as i64 + i as i64 + 1;
        let r = KeyRow {
            customer_id: row.try_get("", "id")?,
            rank,
            revenue: row.try_get("", "revenue").ok(),
            revenue_this_year: None,
            count: row.try_get("", "n").ok(),
            last_purchase_on: row.try_get("", "last_on").ok().flatten(),
        };
        out.push((cursor(rank), r));
    }
    Ok(KeyPage { rows: out, has_next_page, has_previous_page: offset > 0, total_count: total })
}

/// Gold customers: the top `top_percent` % of buyers by revenue in the trailing window
/// (seed 001: 5%) among the customers whose amounts the caller sees: the company for an
/// admin, the subtree for a manager, a rep's own customers. (A company-wide threshold
/// would let anyone who can move one amount find other departments' revenue by trial.)
pub async fn gold(
    db: &DatabaseConnection,
    actor: &Actor,
    top_percent: i32,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    if !(1..=100).contains(&top_percent) {
        return Err(AppError::invalid("topPercent", "must be between 1 and 100"));
    }
    let backend = db.get_database_backend();
    let visible = || scoped_with_amounts(actor).map(|q| customer::Column::Id.in_subquery(q));
    let buyers = Query::select()
        .expr_as(count_all(), Alias::new("n"))
        .from(customer::Entity)
        .and_where(visible()?)
        .and_where(customer::Column::RevenueMinor.gt(0))
        .to_owned();
    let n =
        db.query_one_raw(backend.build(&buyers)).await?.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0);
    let k = (n * top_percent as i64 + 99) / 100;
    let threshold = if k == 0 {
        i64::MAX
    } else {
        let q = Query::select()
            .column(customer::Column::RevenueMinor)
            .from(customer::Entity)
            .and_where(visible()?)
            .and_where(customer::Column::RevenueMinor.gt(0))
            .order_by(customer::Column::RevenueMinor, Order::Desc)
            .limit(1)
            .offset((k - 1) as u64)
            .to_owned();
        db.query_one_raw(backend.build(&q))
            .await?
            .map(|r| r.try_get::<i64>("", "revenue_minor"))
            .transpose()?
            .unwrap_or(i64::MAX)
    };
    let q = scoped_with_amounts(actor)?
        .expr_as(Expr::col((customer::Entity, customer::Column::RevenueMinor)), Alias::new("revenue"))
        .and_where(customer::Column::RevenueMinor.gte(threshold))
        .and_where(customer::Column::RevenueMinor.gt(0))
        .to_owned();
    run(db, q, vec![(Expr::col((customer::Entity, customer::Column::RevenueMinor)), Order::Desc)], first, after).await
}

/// Drag customers: bought before, but not within the churn window (seed 001: over a
/// year without an order), longest silent first.
pub async fn drag(
    db: &DatabaseConnection,
    actor: &Actor,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    let (policy, _) = classification::policy(db).await?;
    let cutoff = now().date_naive() - Duration::days(policy.churn_days);
    let q = scoped(actor)
        .expr_as(Expr::col((customer::Entity, customer::Column::LastPurchaseOn)), Alias::new("last_on"))
        .and_where(customer::Column::LastPurchaseOn.lt(cutoff))
        .to_owned();
    run(db, q, vec![(Expr::col((customer::Entity, customer::Column::LastPurchaseOn)), Order::Asc)], first, after).await
}

/// Big customers (tier A or B) with at least `min_complaints` complaints in the window.
pub async fn complaining(
    db: &DatabaseConnection,
    actor: &Actor,
    min_complaints: i32,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    let (policy, _) = classification::policy(db).await?;
    let since = (now().date_naive() - Duration::days(policy.window_days))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(now);
    let complaints = Query::select()
        .column(feedback::Column::CustomerId)
        .expr_as(count_all(), Alias::new("n"))
        .from(feedback::Entity)
        .and_where(feedback::Column::Kind.eq(entity::enums::FeedbackKind::Complaint))
        .and_where(feedback::Column::DeletedAt.is_null())
        .and_where(feedback::Column::CreatedAt.gte(since))
        // Only complaints the caller may read count: the others do not exist for them.
        .cond_where(actor.child_condition(feedback::Column::CustomerId, Resource::Feedback, Action::Read))
        .group_by_col(feedback::Column::CustomerId)
        .to_owned();
    let q = scoped(actor)
        .expr_as(col("m", "n"), Alias::new("n"))
        .join_subquery(
            JoinType::InnerJoin,
            complaints,
            Alias::new("m"),
            col("m", "customer_id").equals((customer::Entity, customer::Column::Id)),
        )
        .and_where(customer::Column::Tier.is_in([Tier::A, Tier::B]))
        .and_where(col("m", "n").gte(std::cmp::max(min_complaints, 1)))
        .to_owned();
    run(db, q, vec![(col("m", "n"), Order::Desc)], first, after).await
}

/// Cross-sell candidates: buyers whose won deals in the window cover only 1 to
/// `max_product_lines` products (seed 001: "only one or two products").
pub async fn cross_sell(
    db: &DatabaseConnection,
    actor: &Actor,
    max_product_lines: i32,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    let (policy, _) = classification::policy(db).await?;
    let from = now().date_naive() - Duration::days(policy.window_days);
    let lines = Query::select()
        .expr_as(Expr::col((deal::Entity, deal::Column::CustomerId)), Alias::new("customer_id"))
        .expr_as(
            Func::count_distinct(Expr::col((deal_line_item::Entity, deal_line_item::Column::Product))),
            Alias::new("n"),
        )
        .from(deal_line_item::Entity)
        .inner_join(
            deal::Entity,
            Expr::col((deal::Entity, deal::Column::Id))
                .equals((deal_line_item::Entity, deal_line_item::Column::DealId)),
        )
        .and_where(deal::Column::Stage.eq(entity::enums::DealStage::Won))
        .and_where(deal::Column::DeletedAt.is_null())
        .and_where(deal::Column::ActualCloseDate.gte(from))
        .group_by_col((deal::Entity, deal::Column::CustomerId))
        .to_owned();
    let q = scoped_with_amounts(actor)?
        .expr_as(col("m", "n"), Alias::new("n"))
        .expr_as(Expr::col((customer::Entity, customer::Column::RevenueMinor)), Alias::new("revenue"))
        .join_subquery(
            JoinType::InnerJoin,
            lines,
            Alias::new("m"),
            col("m", "customer_id").equals((customer::Entity, customer::Column::Id)),
        )
        .and_where(col("m", "n").lte(std::cmp::max(max_product_lines, 1)))
        .to_owned();
    run(db, q, vec![(Expr::col((customer::Entity, customer::Column::RevenueMinor)), Order::Desc)], first, after).await
}

/// Organizations with fewer than `min_contacts` live contacts (seed 001: record at least
/// three contacts of every company you want to do business with), fewest first.
pub async fn few_contacts(
    db: &DatabaseConnection,
    actor: &Actor,
    min_contacts: i32,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    let contacts = Query::select()
        .column(contact::Column::CustomerId)
        .expr_as(count_all(), Alias::new("n"))
        .from(contact::Entity)
        .and_where(contact::Column::DeletedAt.is_null())
        // Only contacts the caller may read count: the others do not exist for them.
        .cond_where(actor.child_condition(contact::Column::CustomerId, Resource::Contact, Action::Read))
        .group_by_col(contact::Column::CustomerId)
        .to_owned();
    let n: Expr = Func::coalesce([Expr::col((Alias::new("m"), Alias::new("n"))), Expr::val(0)]).into();
    let q = scoped(actor)
        .expr_as(n.clone(), Alias::new("n"))
        .join_subquery(
            JoinType::LeftJoin,
            contacts,
            Alias::new("m"),
            col("m", "customer_id").equals((customer::Entity, customer::Column::Id)),
        )
        .and_where(customer::Column::Kind.eq(CustomerKind::Organization))
        .and_where(n.clone().lt(std::cmp::max(min_contacts, 1)))
        .to_owned();
    run(db, q, vec![(n, Order::Asc)], first, after).await
}

/// Last calendar year's biggest customers (by won revenue, in the base currency) and
/// what they bought this year: the caller's `top` customers, ranked.
pub async fn last_year_top(
    db: &DatabaseConnection,
    actor: &Actor,
    top: i32,
    first: Option<i32>,
    after: Option<&str>,
) -> AppResult<KeyPage> {
    if !(1..=1000).contains(&top) {
        return Err(AppError::invalid("top", "must be between 1 and 1000"));
    }
    let limit = page_size(first)?;
    let offset = offset_of(after)?;
    let (policy, _) = classification::policy(db).await?;
    let rates: Rates = classification::rates(db).await?;
    let today = now().date_naive();
    let this_year = NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today);
    let last_year = NaiveDate::from_ymd_opt(today.year() - 1, 1, 1).unwrap_or(today);
    // Won deals of in-scope customers since last January, per customer and currency.
    let close = || Expr::col((deal::Entity, deal::Column::ActualCloseDate));
    let amount = || Expr::col((deal::Entity, deal::Column::AmountMinor));
    let mut q = Query::select();
    q.expr_as(Expr::col((deal::Entity, deal::Column::CustomerId)), Alias::new("id"))
        .expr_as(Expr::col((deal::Entity, deal::Column::Currency)), Alias::new("currency"))
        .expr_as(sum_when(close().lt(this_year), amount()), Alias::new("last_year"))
        .expr_as(sum_when(close().gte(this_year), amount()), Alias::new("this_year"))
        .from(deal::Entity)
        .and_where(Expr::col((deal::Entity, deal::Column::CustomerId)).in_subquery(scoped_with_amounts(actor)?))
        .and_where(Expr::col((deal::Entity, deal::Column::Stage)).eq(DealStage::Won.as_str()))
        .and_where(Expr::col((deal::Entity, deal::Column::DeletedAt)).is_null())
        .and_where(close().gte(last_year))
        .group_by_col((deal::Entity, deal::Column::CustomerId))
        .group_by_col((deal::Entity, deal::Column::Currency));
    let rows = db.query_all_raw(db.get_database_backend().build(&q)).await?;
    let mut per: HashMap<Uuid, (i64, i64)> = HashMap::new();
    for row in rows {
        let id: Uuid = row.try_get("", "id")?;
        let currency: String = row.try_get("", "currency")?;
        let e = per.entry(id).or_default();
        e.0 = e.0.saturating_add(rates.to_base(row.try_get("", "last_year")?, &currency, &policy.base_currency));
        e.1 = e.1.saturating_add(rates.to_base(row.try_get("", "this_year")?, &currency, &policy.base_currency));
    }
    let mut ranked: Vec<(Uuid, i64, i64)> =
        per.into_iter().filter(|(_, (last, _))| *last > 0).map(|(id, (l, t))| (id, l, t)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top as usize);
    let total = ranked.len() as u64;
    let rows: Vec<(String, KeyRow)> = ranked
        .into_iter()
        .enumerate()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|(i, (id, last, this))| {
            let rank = i as i64 + 1;
            (
                cursor(rank),
                KeyRow {
                    customer_id: id,
                    rank,
                    revenue: Some(last),
                    revenue_this_year: Some(this),
                    ..Default::default()
                },
            )
        })
        .collect();
    Ok(KeyPage {
        has_next_page: offset + (rows.len() as u64) < total,
        has_previous_page: offset > 0,
        rows,
        total_count: total,
    })
}
