//! Staff activity in a period (seed 000's appraisal figures), within the caller's report scope.
use super::*;

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
