//! Reading and writing grades in bulk: what a full pass reads of each customer, what it
//! writes when grades change, and the per-backend way to do both fast ([`BulkStore`]).
use crate::category::Catalogue;
use crate::classification::{Facts, Grades, Policy, Reason, RfmCutoffs, grade};
use crate::error::{AppError, AppResult};
use crate::kernel::new_id;
use crate::kernel::sql::Binds;
use chrono::{DateTime, NaiveDate, Utc};
use entity::customer;
use entity::enums::{Level, LifecycleStage, RelationshipType, Tier, TurnoverMarginClass};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use uuid::Uuid;

/// The columns of a customer that grading reads: no need to fetch whole rows. SQLite
/// reads them as JSON objects keyed by column (`Sqlite::read_batch`).
#[derive(Debug, Clone, sea_orm::DerivePartialModel, Deserialize)]
#[sea_orm(entity = "customer::Entity")]
pub(super) struct Graded {
    pub(super) id: Uuid,
    tier_override: Option<Tier>,
    /// Where the customer sits, for promotions between categories.
    category: String,
    department_id: Uuid,
    #[sea_orm(nested)]
    #[serde(flatten)]
    stored: Stored,
}

/// The computed columns of a customer row, as stored; the fields are named after the
/// columns (SQLite reads and writes them as JSON objects, see `Sqlite::write_grades`).
#[derive(Debug, Clone, PartialEq, sea_orm::DerivePartialModel, Serialize, Deserialize)]
#[sea_orm(entity = "customer::Entity")]
pub(super) struct Stored {
    computed_tier: Option<Tier>,
    tier: Tier,
    lifecycle_stage: LifecycleStage,
    rfm_recency: Option<i32>,
    rfm_frequency: Option<i32>,
    rfm_monetary: Option<i32>,
    rfm_score: Option<i32>,
    frequency_class: Option<Level>,
    value_class: Option<Level>,
    relationship_type: Option<RelationshipType>,
    turnover_margin_class: Option<TurnoverMarginClass>,
    first_purchase_on: Option<NaiveDate>,
    last_purchase_on: Option<NaiveDate>,
    won_count: i32,
    revenue_minor: i64,
    margin_minor: i64,
}

/// The columns of [`Stored`]: its field names (the keys of SQLite's JSON rows), in the
/// order of [`Stored::values`] (PostgreSQL's VALUES rows).
pub const STORED_COLUMNS: [&str; 16] = [
    "computed_tier",
    "tier",
    "lifecycle_stage",
    "rfm_recency",
    "rfm_frequency",
    "rfm_monetary",
    "rfm_score",
    "frequency_class",
    "value_class",
    "relationship_type",
    "turnover_margin_class",
    "first_purchase_on",
    "last_purchase_on",
    "won_count",
    "revenue_minor",
    "margin_minor",
];

impl Stored {
    fn new(g: &Grades, f: &Facts) -> Self {
        let (r, fr, m, s) = match g.rfm {
            Some((r, fr, m, s)) => (Some(r), Some(fr), Some(m), Some(s)),
            None => (None, None, None, None),
        };
        Stored {
            computed_tier: Some(g.computed_tier),
            tier: g.tier,
            lifecycle_stage: g.lifecycle,
            rfm_recency: r,
            rfm_frequency: fr,
            rfm_monetary: m,
            rfm_score: s,
            frequency_class: g.frequency_class,
            value_class: g.value_class,
            relationship_type: g.relationship,
            turnover_margin_class: g.turnover_margin,
            first_purchase_on: f.first_purchase,
            last_purchase_on: f.last_purchase,
            won_count: f.won_count,
            revenue_minor: f.revenue,
            margin_minor: f.margin,
        }
    }

    /// The values in [`STORED_COLUMNS`] order.
    fn values(&self) -> [Value; 16] {
        [
            self.computed_tier.map(Tier::as_str).into(),
            self.tier.as_str().into(),
            self.lifecycle_stage.as_str().into(),
            self.rfm_recency.into(),
            self.rfm_frequency.into(),
            self.rfm_monetary.into(),
            self.rfm_score.into(),
            self.frequency_class.map(Level::as_str).into(),
            self.value_class.map(Level::as_str).into(),
            self.relationship_type.map(RelationshipType::as_str).into(),
            self.turnover_margin_class.map(TurnoverMarginClass::as_str).into(),
            self.first_purchase_on.into(),
            self.last_purchase_on.into(),
            self.won_count.into(),
            self.revenue_minor.into(),
            self.margin_minor.into(),
        ]
    }
}

/// A customer whose grades change, with its history rows.
pub(super) struct Change {
    id: Uuid,
    new: Stored,
    /// The category the customer is promoted to.
    category: Option<String>,
    history: Vec<HistoryRow>,
}

/// One changed field of a customer; reason, actor and time are the write's.
pub(super) struct HistoryRow {
    customer: Uuid,
    field: &'static str,
    from: Cow<'static, str>,
    to: Cow<'static, str>,
}

/// The category a promotion rule moves the customer to, if one applies: its category is
/// the rule's `from`, the new grades qualify and the old ones did not, and the target is
/// active and open to the customer's department (everywhere, or that department).
fn promotion(c: &Graded, old: &Stored, new: &Stored, policy: &Policy, catalogue: &Catalogue) -> Option<String> {
    let rule = policy.promotions.iter().find(|p| {
        p.from == c.category
            && p.qualifies(new.tier, new.lifecycle_stage)
            && !p.qualifies(old.tier, old.lifecycle_stage)
    })?;
    let target = catalogue.get(&rule.to)?;
    let open = target.row.department_id.is_none_or(|d| d == c.department_id);
    (open && catalogue.active(target)).then(|| rule.to.clone())
}

/// Compares a customer's stored grades with fresh ones.
pub(super) fn diff(
    c: &Graded,
    facts: &Facts,
    policy: &Policy,
    cutoffs: &RfmCutoffs,
    as_of: NaiveDate,
    catalogue: &Catalogue,
) -> Option<Change> {
    let grades = grade(policy, facts, c.stored.lifecycle_stage, c.tier_override, cutoffs, as_of);
    let new = Stored::new(&grades, facts);
    let old = &c.stored;
    if new == *old {
        return None;
    }
    let mut history = Vec::new();
    if new.tier != old.tier {
        history.push(HistoryRow {
            customer: c.id,
            field: "TIER",
            from: old.tier.as_str().into(),
            to: new.tier.as_str().into(),
        });
    }
    if new.lifecycle_stage != old.lifecycle_stage {
        history.push(HistoryRow {
            customer: c.id,
            field: "LIFECYCLE",
            from: old.lifecycle_stage.as_str().into(),
            to: new.lifecycle_stage.as_str().into(),
        });
    }
    let category = promotion(c, old, &new, policy, catalogue);
    if let Some(to) = &category {
        history.push(HistoryRow {
            customer: c.id,
            field: "CATEGORY",
            from: c.category.clone().into(),
            to: to.clone().into(),
        });
    }
    Some(Change { id: c.id, new, category, history })
}

/// Writes changed grades and their history rows. Grades are derived data: `version` is
/// left alone, so a user's edit in flight never conflicts with a reclassification.
/// Returns the time the history took, for the pass's timing log.
pub(super) async fn write_changes<B: BulkStore>(
    db: &impl ConnectionTrait,
    changes: Vec<Change>,
    reason: Reason,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
) -> AppResult<std::time::Duration> {
    if changes.is_empty() {
        return Ok(std::time::Duration::ZERO);
    }
    B::write_grades(db, &changes, at).await?;
    // Promotions are rare (a customer reaching a tier): one statement each.
    for c in &changes {
        if let Some(to) = &c.category {
            customer::Entity::update_many()
                .col_expr(customer::Column::Category, sea_orm::sea_query::Expr::value(to.clone()))
                .filter(customer::Column::Id.eq(c.id))
                .exec(db)
                .await?;
        }
    }
    let clock = std::time::Instant::now();
    let history: Vec<&HistoryRow> = changes.iter().flat_map(|c| &c.history).collect();
    B::write_history(db, &history, reason, actor, at).await?;
    Ok(clock.elapsed())
}

/// The per-backend half of a full pass. Each backend has its fastest way to move a
/// batch of grades through its driver (measured in `BENCHMARKS.md`); the pass itself is
/// one generic function over this trait.
pub(super) trait BulkStore {
    /// Customers per write transaction. Short transactions keep the API answering while a
    /// pass runs.
    const BATCH: u64;

    /// The graded columns of the next `limit` live customers after `after`, by id, locked
    /// for the transaction where the backend locks rows.
    fn read_batch(
        txn: &DatabaseTransaction,
        after: Option<Uuid>,
        limit: u64,
    ) -> impl Future<Output = AppResult<Vec<Graded>>> + Send;

    /// Writes the new grades of changed customers.
    fn write_grades(
        db: &impl ConnectionTrait,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> impl Future<Output = AppResult<()>> + Send;

    /// Appends history rows.
    fn write_history(
        db: &impl ConnectionTrait,
        history: &[&HistoryRow],
        reason: Reason,
        actor: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> impl Future<Output = AppResult<()>> + Send;
}

/// SQLite: whole batches as JSON documents (two bound values a statement).
pub(super) struct Sqlite;

/// PostgreSQL: `SELECT ... FOR UPDATE`, `UPDATE ... FROM (VALUES ...)`, multi-row INSERTs.
pub(super) struct Postgres;

impl BulkStore for Sqlite {
    /// Readers never wait for a writer (WAL), so batches are larger: each commit rewrites
    /// the pages of the grade indexes it touched, and 50,000 customers (about 1.5 s on 1M,
    /// what an API writer may wait) share them.
    const BATCH: u64 = 50_000;

    /// SQLite: the next `limit` live customers after `after`, read as one JSON document. The
    /// driver copies every value of every row between threads: reading a million customers a
    /// row at a time took 9 s, most of it there.
    async fn read_batch(txn: &DatabaseTransaction, after: Option<Uuid>, limit: u64) -> AppResult<Vec<Graded>> {
        let fields: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("'{c}', {c}")).collect();
        let mut b = Binds::new(txn);
        let after = match after {
            Some(id) => format!(" AND id > {}", b.bind(id)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT json_group_array(json_object('id', hex(id), 'tier_override', tier_override, 'category', category, \
             'department_id', hex(department_id), {})) AS batch \
             FROM (SELECT id, tier_override, category, department_id, {} FROM customer WHERE deleted_at IS NULL{after} ORDER BY id LIMIT {})",
            fields.join(", "),
            STORED_COLUMNS.join(", "),
            b.bind(limit as i64)
        );
        let row = txn
            .query_one_raw(b.statement(sql))
            .await?
            .ok_or_else(|| AppError::Internal("an aggregate returned no row".into()))?;
        let doc: String = row.try_get("", "batch")?;
        let mut batch: Vec<Graded> = serde_json::from_str(&doc).map_err(AppError::internal)?;
        // The aggregate keeps the subquery's order in practice; the keyset needs it for certain.
        batch.sort_unstable_by_key(|c| c.id);
        Ok(batch)
    }

    /// SQLite: one UPDATE per 10,000 customers whose new grades arrive as one JSON document,
    /// unpacked by `jsonb_each`. Binding 17 values a customer cost more than the update itself:
    /// the driver copies each value, so two bound values a statement are much cheaper.
    /// (`jsonb_each` and `unhex` need SQLite 3.45; the bundled library is 3.51.)
    async fn write_grades(db: &impl ConnectionTrait, changes: &[Change], at: DateTime<Utc>) -> AppResult<()> {
        #[derive(Serialize)]
        struct Row<'a> {
            id: String,
            #[serde(flatten)]
            new: &'a Stored,
        }
        let sets: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("{c} = v.{c}")).collect();
        let fields: Vec<String> = STORED_COLUMNS.iter().map(|c| format!("value ->> '{c}' AS {c}")).collect();
        for chunk in changes.chunks(SQLITE_CHUNK) {
            let rows: Vec<Row> = chunk.iter().map(|c| Row { id: c.id.simple().to_string(), new: &c.new }).collect();
            let doc = serde_json::to_string(&rows).map_err(AppError::internal)?;
            let mut b = Binds::new(db);
            let sql = format!(
                "UPDATE customer SET {}, classified_at = {} FROM (SELECT unhex(value ->> 'id') AS id, {} FROM jsonb_each({})) AS v WHERE customer.id = v.id",
                sets.join(", "),
                b.bind(at),
                fields.join(", "),
                b.bind(doc),
            );
            db.execute_raw(b.statement(sql)).await?;
        }
        Ok(())
    }

    /// The history rows as one JSON document per statement, like the grades.
    async fn write_history(
        db: &impl ConnectionTrait,
        history: &[&HistoryRow],
        reason: Reason,
        actor: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> AppResult<()> {
        for chunk in history.chunks(SQLITE_CHUNK) {
            let rows: Vec<(String, String, &str, &str, &str)> = chunk
                .iter()
                .map(|h| {
                    let id = new_id().simple().to_string();
                    (id, h.customer.simple().to_string(), h.field, h.from.as_ref(), h.to.as_ref())
                })
                .collect();
            let doc = serde_json::to_string(&rows).map_err(AppError::internal)?;
            let mut b = Binds::new(db);
            let sql = format!(
                "INSERT INTO classification_history (id, customer_id, field, from_value, to_value, reason, actor_id, at) \
                 SELECT unhex(value ->> 0), unhex(value ->> 1), value ->> 2, value ->> 3, value ->> 4, {}, {}, {} FROM jsonb_each({})",
                b.bind(reason.as_str()),
                b.bind(actor),
                b.bind(at),
                b.bind(doc)
            );
            db.execute_raw(b.statement(sql)).await?;
        }
        Ok(())
    }
}

impl BulkStore for Postgres {
    const BATCH: u64 = 5000;

    async fn read_batch(txn: &DatabaseTransaction, after: Option<Uuid>, limit: u64) -> AppResult<Vec<Graded>> {
        let mut q = customer::Entity::find()
            .filter(customer::Column::DeletedAt.is_null())
            .order_by_asc(customer::Column::Id)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(customer::Column::Id.gt(a));
        }
        Ok(q.lock_exclusive().into_partial_model::<Graded>().all(txn).await?)
    }

    /// PostgreSQL: one UPDATE ... FROM (VALUES ...) per 1,000 customers (17 parameters each).
    async fn write_grades(db: &impl ConnectionTrait, changes: &[Change], at: DateTime<Utc>) -> AppResult<()> {
        let sets: Vec<String> =
            STORED_COLUMNS.iter().chain(["classified_at"].iter()).map(|c| format!("{c} = v.{c}")).collect();
        let columns = format!("id, {}, classified_at", STORED_COLUMNS.join(", "));
        for chunk in changes.chunks(1000) {
            let mut b = Binds::new(db);
            let rows: Vec<String> = chunk
                .iter()
                .map(|c| {
                    let values = std::iter::once(Value::from(c.id)).chain(c.new.values()).chain([Value::from(at)]);
                    format!("({})", b.bind_all(values))
                })
                .collect();
            let sql = format!(
                "UPDATE customer SET {} FROM (VALUES {}) AS v({columns}) WHERE customer.id = v.id",
                sets.join(", "),
                rows.join(", ")
            );
            db.execute_raw(b.statement(sql)).await?;
        }
        Ok(())
    }

    /// One multi-row INSERT per 2,000 history rows (8 parameters a row).
    async fn write_history(
        db: &impl ConnectionTrait,
        history: &[&HistoryRow],
        reason: Reason,
        actor: Option<Uuid>,
        at: DateTime<Utc>,
    ) -> AppResult<()> {
        for chunk in history.chunks(2000) {
            let mut b = Binds::new(db);
            let rows: Vec<String> = chunk
                .iter()
                .map(|h| {
                    let values: [Value; 8] = [
                        new_id().into(),
                        h.customer.into(),
                        h.field.into(),
                        h.from.as_ref().into(),
                        h.to.as_ref().into(),
                        reason.as_str().into(),
                        actor.into(),
                        at.into(),
                    ];
                    format!("({})", b.bind_all(values))
                })
                .collect();
            let sql = format!(
                "INSERT INTO classification_history (id, customer_id, field, from_value, to_value, reason, actor_id, at) VALUES {}",
                rows.join(", ")
            );
            db.execute_raw(b.statement(sql)).await?;
        }
        Ok(())
    }
}

/// Rows per statement of the SQLite bulk writes (each statement carries one JSON document).
const SQLITE_CHUNK: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classification::grading::tests::{bought, day};
    use crate::classification::{Policy, RfmCutoffs, grade};

    /// SQLite's bulk UPDATE reads each column from the JSON key of the same name, and a
    /// missing key reads as NULL: the field names, the column list and the values must agree.
    #[test]
    fn stored_fields_match_the_column_list() {
        let policy = Policy::default();
        let facts = bought(9_000_000, 3, "2026-10-01");
        let cutoffs = RfmCutoffs::from_samples(vec![10, 50, 100, 200], vec![1, 2, 3, 4], vec![1, 2, 3, 4], 5);
        let grades = grade(&policy, &facts, LifecycleStage::Prospect, None, &cutoffs, day("2026-11-01"));
        let stored = Stored::new(&grades, &facts);
        let json = serde_json::to_value(&stored).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut columns = STORED_COLUMNS.to_vec();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        columns.sort_unstable();
        assert_eq!(sorted, columns);
        // Every value is written as the same SQL value both ways.
        for (column, value) in STORED_COLUMNS.iter().zip(stored.values()) {
            let written = &json[*column];
            let expected = match value {
                Value::String(Some(s)) => serde_json::Value::from(s.as_str()),
                Value::Int(Some(n)) => serde_json::Value::from(n),
                Value::BigInt(Some(n)) => serde_json::Value::from(n),
                Value::ChronoDate(Some(d)) => serde_json::Value::from(d.format("%Y-%m-%d").to_string()),
                _ => serde_json::Value::Null,
            };
            assert_eq!(written, &expected, "{column}");
        }
    }
}
