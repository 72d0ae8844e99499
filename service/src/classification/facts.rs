//! The facts grading reads, gathered by three aggregate queries over won deals, their
//! line items and complaints; and the RFM cut-offs of the last full pass.
use crate::classification::{Facts, Policy, Rates, RfmCutoffs};
use crate::error::AppResult;
use crate::kernel::now;
use crate::kernel::sql::{bigint, count_all, sum_when};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::classification_run;
use entity::enums::{DealStage, RunStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement};
use std::collections::HashMap;
use uuid::Uuid;

/// The RFM cut-offs of the last finished full pass.
pub async fn cutoffs(db: &impl ConnectionTrait) -> AppResult<RfmCutoffs> {
    let run = classification_run::Entity::find()
        .filter(classification_run::Column::Status.eq(RunStatus::Done))
        .order_by_desc(classification_run::Column::FinishedAt)
        .one(db)
        .await?;
    Ok(run.and_then(|r| r.state).and_then(|s| serde_json::from_value(s.get("rfm")?.clone()).ok()).unwrap_or_default())
}

/// The three aggregate statements behind [`facts`]: won deals per customer and currency
/// (in-window count and amount, all-time first and last purchase), the margin of
/// in-window lines with a known cost, and complaints in the window. `ids` narrows them to
/// a batch of customers; `None` is every customer (a full pass, and its benchmark floor).
pub fn fact_statements(
    db: &impl ConnectionTrait,
    policy: &Policy,
    ids: Option<&[Uuid]>,
    as_of: NaiveDate,
) -> [Statement; 3] {
    use entity::{deal, deal_line_item as line, feedback};
    use sea_orm::sea_query::{Alias, ExprTrait, Func, Query};
    let backend = db.get_database_backend();
    let from = as_of - Duration::days(policy.window_days);
    let won = || {
        Condition::all()
            .add(Expr::col((deal::Entity, deal::Column::Stage)).eq(DealStage::Won.as_str()))
            .add(Expr::col((deal::Entity, deal::Column::DeletedAt)).is_null())
    };
    let close = || Expr::col((deal::Entity, deal::Column::ActualCloseDate));
    let of_batch = |column: Expr| ids.map(|ids| column.is_in(ids.iter().copied()));

    let mut deals = Query::select();
    deals
        .column(deal::Column::CustomerId)
        .column(deal::Column::Currency)
        .expr_as(sum_when(close().gte(from), 1), Alias::new("n"))
        .expr_as(sum_when(close().gte(from), Expr::col(deal::Column::AmountMinor)), Alias::new("total"))
        .expr_as(Func::min(close()), Alias::new("first_on"))
        .expr_as(Func::max(close()), Alias::new("last_on"))
        .from(deal::Entity)
        .cond_where(won())
        .and_where(close().is_not_null())
        .and_where(close().lte(as_of))
        .and_where_option(of_batch(Expr::col(deal::Column::CustomerId)))
        .group_by_col(deal::Column::CustomerId)
        .group_by_col(deal::Column::Currency);

    let price = Expr::col((line::Entity, line::Column::UnitPriceMinor));
    let quantity = || Expr::col((line::Entity, line::Column::Quantity));
    let mut margins = Query::select();
    margins
        .column((deal::Entity, deal::Column::CustomerId))
        .column((deal::Entity, deal::Column::Currency))
        .expr_as(
            bigint(Func::sum(
                quantity().mul(price.clone().sub(Expr::col((line::Entity, line::Column::UnitCostMinor)))),
            )),
            Alias::new("margin"),
        )
        .expr_as(bigint(Func::sum(quantity().mul(price))), Alias::new("costed"))
        .from(line::Entity)
        .inner_join(
            deal::Entity,
            Expr::col((deal::Entity, deal::Column::Id)).equals((line::Entity, line::Column::DealId)),
        )
        .cond_where(won())
        .and_where(close().gte(from))
        .and_where(close().lte(as_of))
        .and_where(Expr::col((line::Entity, line::Column::UnitCostMinor)).is_not_null())
        .and_where_option(of_batch(Expr::col((deal::Entity, deal::Column::CustomerId))))
        .group_by_col((deal::Entity, deal::Column::CustomerId))
        .group_by_col((deal::Entity, deal::Column::Currency));

    let from_ts: DateTime<Utc> = from.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(now);
    let mut complaints = Query::select();
    complaints
        .column(feedback::Column::CustomerId)
        .expr_as(count_all(), Alias::new("n"))
        .from(feedback::Entity)
        .and_where(Expr::col(feedback::Column::Kind).eq(entity::enums::FeedbackKind::Complaint.as_str()))
        .and_where(Expr::col(feedback::Column::DeletedAt).is_null())
        .and_where(Expr::col(feedback::Column::CreatedAt).gte(from_ts))
        .and_where_option(of_batch(Expr::col(feedback::Column::CustomerId)))
        .group_by_col(feedback::Column::CustomerId);
    [backend.build(&deals), backend.build(&margins), backend.build(&complaints)]
}

/// Gathers the facts of the given customers (all customers with `None`) as of a date.
pub async fn facts(
    db: &impl ConnectionTrait,
    policy: &Policy,
    rates: &Rates,
    ids: Option<&[Uuid]>,
    as_of: NaiveDate,
) -> AppResult<HashMap<Uuid, Facts>> {
    let [deals, margins, complaints] = fact_statements(db, policy, ids, as_of);
    let mut out: HashMap<Uuid, Facts> = HashMap::new();
    let base = policy.base_currency.as_str();
    for row in db.query_all_raw(deals).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let currency: String = row.try_get("", "currency")?;
        let f = out.entry(id).or_default();
        f.won_count += row.try_get::<i64>("", "n")? as i32;
        f.revenue = f.revenue.saturating_add(rates.to_base(row.try_get::<i64>("", "total")?, &currency, base));
        let first: Option<NaiveDate> = row.try_get("", "first_on")?;
        let last: Option<NaiveDate> = row.try_get("", "last_on")?;
        f.first_purchase = match (f.first_purchase, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        f.last_purchase = match (f.last_purchase, last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    for row in db.query_all_raw(margins).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        let currency: String = row.try_get("", "currency")?;
        let f = out.entry(id).or_default();
        f.margin = f.margin.saturating_add(rates.to_base(row.try_get::<i64>("", "margin")?, &currency, base));
        f.costed_revenue =
            f.costed_revenue.saturating_add(rates.to_base(row.try_get::<i64>("", "costed")?, &currency, base));
    }
    for row in db.query_all_raw(complaints).await? {
        let id: Uuid = row.try_get("", "customer_id")?;
        out.entry(id).or_default().complaints = row.try_get::<i64>("", "n")? as i32;
    }
    Ok(out)
}
