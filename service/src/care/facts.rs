//! Contact facts: who contacted which customer, how and when, in the periods the
//! standards count; read by compliance and by the overdue-contact rule.
use crate::care::policy::Standard;
use crate::error::{AppError, AppResult};
use crate::kernel::sql::sum_when;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{InteractionKind, Role};
use entity::{customer, user};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, Func, Query};
use std::collections::HashMap;
use uuid::Uuid;

/// Per customer: every (interaction kind, user role, by the owner) group with its last
/// contact and counts within each period the standards use.
#[derive(Debug, Default, Clone)]
pub struct ContactFacts {
    groups: Vec<ContactGroup>,
}

#[derive(Debug, Clone)]
pub(super) struct ContactGroup {
    kind: InteractionKind,
    role: Role,
    by_owner: bool,
    last: DateTime<Utc>,
    /// Count within each of `periods` (same order).
    counts: Vec<i64>,
}

impl ContactFacts {
    /// Last contact counting toward `s`, and the number within its period.
    pub(super) fn of(&self, s: &Standard, periods: &[i32]) -> (Option<DateTime<Utc>>, i64) {
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

pub use crate::kernel::day_start;

/// The contact facts of `customers` up to the end of `as_of`.
pub(super) async fn contact_facts(
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
        // Contacts by people: an API key logging a visit keeps no contact standard.
        .and_where(Expr::col((user::Entity, user::Column::ServiceAccount)).eq(false))
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
pub(super) fn row_time(row: &sea_orm::QueryResult, column: &str) -> AppResult<DateTime<Utc>> {
    if let Ok(t) = row.try_get::<DateTime<Utc>>("", column) {
        return Ok(t);
    }
    let s: String = row.try_get("", column)?;
    DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| AppError::Internal(format!("unreadable time {s:?}: {e}").into()))
}
