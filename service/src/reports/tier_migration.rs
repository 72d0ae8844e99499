//! The tier migration matrix: where the customers of one day's tiers stand on another day.
use super::*;

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
