//! One customer at a time: regraded inside the transaction of the deal write that
//! changed its facts, or of a manual tier override; and its history.
use crate::access::Actor;
use crate::classification::bulk::{Graded, Postgres, Sqlite, diff, write_changes};
use crate::classification::{Reason, cutoffs, facts, policy, rates};
use crate::error::{AppError, AppResult};
use crate::kernel::change::{Subject, Verb};
use crate::kernel::now;
use crate::kernel::store::write;
use entity::enums::{Action, Tier};
use entity::{classification_history, customer};
use sea_orm::DatabaseBackend;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};
use std::collections::HashMap;
use uuid::Uuid;

/// Recomputes one customer inside the caller's transaction (a deal was won, lost,
/// changed or deleted; an override was set).
pub async fn recompute(
    txn: &DatabaseTransaction,
    customer_id: Uuid,
    reason: Reason,
    actor: Option<Uuid>,
) -> AppResult<()> {
    let (policy, _) = policy(txn).await?;
    let rates = rates(txn).await?;
    let cutoffs = cutoffs(txn).await?;
    // The customer row is locked before its deals are read (PostgreSQL; SQLite's write
    // transactions are serial anyway): two deal writes of one customer regrade one after
    // the other, the second seeing the first's deal, instead of each seeing only its own.
    let Some(c) =
        customer::Entity::find_by_id(customer_id).lock_exclusive().into_partial_model::<Graded>().one(txn).await?
    else {
        return Ok(());
    };
    let as_of = now().date_naive();
    let facts =
        facts(txn, &policy, &rates, Some(&[customer_id]), as_of).await?.remove(&customer_id).unwrap_or_default();
    let at = now();
    let catalogue = crate::category::Catalogue::load(txn).await?;
    if let Some(change) = diff(&c, &facts, &policy, &cutoffs, as_of, &catalogue) {
        match txn.get_database_backend() {
            DatabaseBackend::Postgres => write_changes::<Postgres>(txn, vec![change], reason, actor, at).await?,
            _ => write_changes::<Sqlite>(txn, vec![change], reason, actor, at).await?,
        };
    }
    Ok(())
}

/// Sets (or with `None` removes) a manual tier that wins over the computed one.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN (needs the assign permission over the customer), VALIDATION
/// (a reason is required).
pub async fn set_override(
    db: &DatabaseConnection,
    actor: &Actor,
    customer_id: Uuid,
    tier: Option<Tier>,
    reason: Option<String>,
) -> AppResult<customer::Model> {
    let reason = crate::kernel::clean(reason);
    if tier.is_some() && reason.is_none() {
        return Err(AppError::invalid("reason", "an override needs a reason"));
    }
    write(db, async |txn| {
        crate::personal::lock_customer(txn, customer_id).await?;
        let old = crate::customer::load_for_action(txn, actor, customer_id, Action::Assign).await?;
        customer::Entity::update_many()
            .col_expr(customer::Column::TierOverride, Expr::value(tier.map(|t| t.to_string())))
            .col_expr(customer::Column::TierOverrideReason, Expr::value(reason.clone()))
            // A changed record gets a new version: a stale edit of it must fail.
            .col_expr(
                customer::Column::Version,
                sea_orm::sea_query::ExprTrait::add(Expr::col(customer::Column::Version), 1),
            )
            .col_expr(customer::Column::UpdatedAt, Expr::value(now()))
            .filter(customer::Column::Id.eq(customer_id))
            .exec(txn)
            .await?;
        recompute(txn, customer_id, Reason::Override, Some(actor.id())).await?;
        let new = customer::Entity::find_by_id(customer_id).one(txn).await?.ok_or(AppError::NotFound("customer"))?;
        crate::kernel::change::record(
            txn,
            Some(actor.id()),
            Verb::OverrideTier,
            Subject::Customer,
            customer_id,
            Some(&old),
            Some(&new),
        )
        .await?;
        Ok(new)
    })
    .await
}

/// The newest `limit` history rows of each of `customer_ids` (tier and lifecycle changes,
/// newest first), in one query however many customers ask: a list of customers showing
/// their history costs one statement, not one per customer.
pub async fn history_of(
    db: &impl ConnectionTrait,
    customer_ids: &[Uuid],
    limit: u64,
) -> AppResult<HashMap<Uuid, Vec<classification_history::Model>>> {
    use classification_history::{Column, Entity};
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, Order, Query, WindowStatement};
    let mut ranked = Entity::find().filter(Column::CustomerId.is_in(customer_ids.to_vec())).into_query();
    ranked.expr_window_as(
        Func::cust(Alias::new("ROW_NUMBER")),
        WindowStatement::partition_by(Column::CustomerId)
            .order_by(Column::At, Order::Desc)
            // Rows of one change share `at`; keep the order they were written in (tier first).
            .order_by(Column::Id, Order::Asc)
            .to_owned(),
        Alias::new("rn"),
    );
    let q = Query::select()
        .column(Asterisk)
        .from_subquery(ranked, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rn")).lte(limit as i64))
        .to_owned();
    let rows = Entity::find().from_raw_sql(db.get_database_backend().build(&q)).all(db).await?;
    let mut out: HashMap<Uuid, Vec<classification_history::Model>> = HashMap::new();
    for row in rows {
        out.entry(row.customer_id).or_default().push(row);
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| b.at.cmp(&a.at).then(a.id.cmp(&b.id)));
    }
    Ok(out)
}
