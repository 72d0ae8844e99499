//! Keeping the search keys: rebuilt per customer (its own keys and its contacts') in the
//! transaction of every write that changed what they are made of, by the kernel's
//! finisher at the end of each use case; an import rebuilds its chunk's at the chunk's end
//! (`transfer::import`), and `crm search reindex` rebuilds them all.
//!
//! A customer's keys are made from its row as stored at the end of the write, not from the
//! change: a merge that moved contacts, an erasure that blanked the fields, a restore out
//! of the trash all end in the same rebuild. Deleted, merged and erased customers have no
//! keys.
use super::keys::{self, Field, Key};
use crate::error::AppResult;
use crate::kernel::change::{Change, Subject};
use crate::kernel::store::{FINISHERS, Finisher, Finishing};
use chrono::{DateTime, Utc};
use entity::enums::CustomerKind;
use entity::{contact, customer, interaction, search_term};
use linkme::distributed_slice;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

#[distributed_slice(FINISHERS)]
static KEEP: Finisher = Finisher { name: "search", run: keep };

fn keep<'a>(txn: &'a DatabaseTransaction, changes: &'a [Change]) -> Finishing<'a> {
    Box::pin(follow(txn, changes))
}

/// The row fields the keys are made of, or say where they sit.
const KEYED: &[&str] =
    &["name", "kind", "phone", "email", "owner_id", "department_id", "deleted_at", "erased_at", "merged_into"];

/// Rebuilds the keys `changes` made stale, and the last-contact time of customers with a
/// new interaction.
///
/// # Errors
/// Database errors.
pub async fn follow(db: &impl ConnectionTrait, changes: &[Change]) -> AppResult<()> {
    let mut rekey = BTreeSet::new();
    let mut contacted = BTreeSet::new();
    let customer_of = |v: &Option<Value>| {
        v.as_ref().and_then(|r| r.get("customer_id")).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
    };
    for c in changes {
        match c.subject {
            Subject::Customer => {
                let row = |v: &Option<Value>| v.as_ref().filter(|r| r.get("version").is_some()).cloned();
                let same = match (row(&c.old), row(&c.new)) {
                    (Some(old), Some(new)) => KEYED.iter().all(|k| old.get(k) == new.get(k)),
                    _ => false,
                };
                if !same {
                    rekey.insert(c.id);
                }
            }
            Subject::Contact => {
                rekey.extend(customer_of(&c.old));
                rekey.extend(customer_of(&c.new));
            }
            Subject::Interaction => {
                contacted.extend(customer_of(&c.old));
                contacted.extend(customer_of(&c.new));
            }
            _ => {}
        }
    }
    let rekey: Vec<Uuid> = rekey.into_iter().collect();
    refresh(db, &rekey).await?;
    for id in contacted.into_iter().filter(|id| rekey.binary_search(id).is_err()) {
        let mut latest = Query::select();
        latest
            .expr(Expr::col(interaction::Column::OccurredAt).max())
            .from(interaction::Entity)
            .and_where(interaction::Column::CustomerId.eq(id))
            .and_where(interaction::Column::DeletedAt.is_null());
        search_term::Entity::update_many()
            .col_expr(
                search_term::Column::ContactedAt,
                Expr::expr(sea_orm::sea_query::SimpleExpr::SubQuery(
                    None,
                    Box::new(sea_orm::sea_query::SubQueryStatement::SelectStatement(latest)),
                )),
            )
            .filter(search_term::Column::CustomerId.eq(id))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Customers rebuilt per statement group.
const CHUNK: usize = 200;
/// Rows per INSERT (ten values each, under SQLite's bound-value limit).
const ROWS_PER_INSERT: usize = 1000;

type CustomerKeyed = (Uuid, CustomerKind, String, Option<String>, Option<String>, Option<Uuid>, Uuid);
type ContactKeyed = (Uuid, Uuid, String, Option<String>, Option<String>, Option<String>);

/// Rebuilds the keys of `customers` (and of their contacts) from their rows as stored now.
///
/// # Errors
/// Database errors.
pub async fn refresh(db: &impl ConnectionTrait, customers: &[Uuid]) -> AppResult<()> {
    for ids in customers.chunks(CHUNK) {
        search_term::Entity::delete_many().filter(search_term::Column::CustomerId.is_in(ids.to_vec())).exec(db).await?;
        let rows = keyed(db, ids).await?;
        for batch in rows.chunks(ROWS_PER_INSERT) {
            search_term::Entity::insert_many(batch.iter().cloned().map(active)).exec(db).await?;
        }
    }
    Ok(())
}

/// The key rows of `customers` (live, not erased) and of their live contacts.
async fn keyed(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<search_term::Model>> {
    let rows: Vec<CustomerKeyed> = customer::Entity::find()
        .select_only()
        .columns([
            customer::Column::Id,
            customer::Column::Kind,
            customer::Column::Name,
            customer::Column::Phone,
            customer::Column::Email,
            customer::Column::OwnerId,
            customer::Column::DepartmentId,
        ])
        .filter(customer::Column::Id.is_in(ids.to_vec()))
        .filter(customer::Column::DeletedAt.is_null())
        .filter(customer::Column::ErasedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let live: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let contacts: Vec<ContactKeyed> = contact::Entity::find()
        .select_only()
        .columns([
            contact::Column::Id,
            contact::Column::CustomerId,
            contact::Column::Name,
            contact::Column::Mobile,
            contact::Column::OfficePhone,
            contact::Column::Email,
        ])
        .filter(contact::Column::CustomerId.is_in(live.clone()))
        .filter(contact::Column::DeletedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let latest: HashMap<Uuid, Option<DateTime<Utc>>> = interaction::Entity::find()
        .select_only()
        .column(interaction::Column::CustomerId)
        .column_as(interaction::Column::OccurredAt.max(), "at")
        .filter(interaction::Column::CustomerId.is_in(live))
        .filter(interaction::Column::DeletedAt.is_null())
        .group_by(interaction::Column::CustomerId)
        .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut out = Vec::new();
    let mut by_customer: HashMap<Uuid, &CustomerKeyed> = HashMap::new();
    for c in &rows {
        by_customer.insert(c.0, c);
        let row = |k: Key| row(k, c.0, c.0, false, c, latest.get(&c.0).copied().flatten());
        out.extend(customer_keys(c).into_iter().map(row));
    }
    for k in &contacts {
        let Some(c) = by_customer.get(&k.1) else { continue };
        let row = |key: Key| row(key, k.0, c.0, true, c, latest.get(&c.0).copied().flatten());
        out.extend(contact_keys(k).into_iter().map(row));
    }
    Ok(out)
}

fn active(m: search_term::Model) -> search_term::ActiveModel {
    search_term::ActiveModel {
        form: Set(m.form),
        term: Set(m.term),
        field: Set(m.field),
        head: Set(m.head),
        record_id: Set(m.record_id),
        customer_id: Set(m.customer_id),
        contact: Set(m.contact),
        owner_id: Set(m.owner_id),
        department_id: Set(m.department_id),
        contacted_at: Set(m.contacted_at),
    }
}

fn row(
    k: Key,
    record: Uuid,
    customer: Uuid,
    is_contact: bool,
    c: &CustomerKeyed,
    contacted: Option<DateTime<Utc>>,
) -> search_term::Model {
    search_term::Model {
        form: k.form as i16,
        term: k.term,
        field: k.field as i16,
        head: k.head,
        record_id: record,
        customer_id: customer,
        contact: is_contact,
        owner_id: c.5,
        department_id: c.6,
        contacted_at: contacted,
    }
}

fn customer_keys(c: &CustomerKeyed) -> Vec<Key> {
    let mut out = Vec::new();
    match c.1 {
        CustomerKind::Organization => keys::organization(&mut out, &c.2),
        CustomerKind::Individual => keys::name(&mut out, Field::Name, &c.2, true),
    }
    if let Some(p) = &c.3 {
        keys::phone(&mut out, Field::Phone, p);
    }
    if let Some(e) = &c.4 {
        keys::email(&mut out, Field::Email, e);
    }
    keys::dedup(out)
}

fn contact_keys(k: &ContactKeyed) -> Vec<Key> {
    let mut out = Vec::new();
    keys::name(&mut out, Field::ContactName, &k.2, true);
    if let Some(p) = &k.3 {
        keys::phone(&mut out, Field::ContactMobile, p);
    }
    if let Some(p) = &k.4 {
        keys::phone(&mut out, Field::ContactOfficePhone, p);
    }
    if let Some(e) = &k.5 {
        keys::email(&mut out, Field::Email, e);
    }
    keys::dedup(out)
}

/// The individual customers whose name is `name` once folded (width, case, spaces,
/// traditional characters), read from their keys.
pub fn named(name: &str) -> sea_orm::sea_query::SelectStatement {
    use super::fold::{Unit, fold, units};
    use super::keys::Form;
    let folded: String =
        units(&fold(name)).iter().map(Unit::text).collect::<String>().chars().take(keys::MAX_TERM).collect();
    let mut q = Query::select();
    q.column(search_term::Column::RecordId)
        .from(search_term::Entity)
        .and_where(search_term::Column::Form.eq(Form::Text as i16))
        .and_where(search_term::Column::Term.eq(folded))
        .and_where(search_term::Column::Head.eq(true))
        .and_where(search_term::Column::Field.eq(Field::Name as i16));
    q
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reindexed {
    pub customers: u64,
    pub terms: u64,
}

/// Rebuilds every key. PostgreSQL: into a new table by `COPY`, indexed once full, swapped
/// in, then the customers written meanwhile rebuilt in place (writes go on throughout).
/// SQLite: customer by customer in id order, a few hundred per transaction, then the keys
/// of customers that are gone dropped. One rebuild at a time.
///
/// # Errors
/// Database errors.
pub async fn reindex(db: &DatabaseConnection) -> AppResult<Reindexed> {
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        return rebuild_by_copy(db, false).await.map(Option::unwrap_or_default);
    }
    let mut done = Reindexed::default();
    let mut after: Option<Uuid> = None;
    while let Some(ids) = next_ids(db, &mut after, CHUNK as u64 * 5).await? {
        crate::kernel::store::write(db, async |txn| refresh(txn, &ids).await).await?;
        done.customers += ids.len() as u64;
    }
    let mut live = Query::select();
    live.expr(Expr::val(1))
        .from(customer::Entity)
        .and_where(
            Expr::col((customer::Entity, customer::Column::Id))
                .equals((search_term::Entity, search_term::Column::CustomerId)),
        )
        .and_where(customer::Column::DeletedAt.is_null())
        .and_where(customer::Column::ErasedAt.is_null());
    crate::kernel::store::write(db, async |txn| {
        search_term::Entity::delete_many().filter(Expr::exists(live).not()).exec(txn).await?;
        AppResult::Ok(())
    })
    .await?;
    done.terms = search_term::Entity::find().count(db).await?;
    Ok(done)
}

/// The next `n` customer ids after `after` (moved on), or `None` at the end.
async fn next_ids(db: &DatabaseConnection, after: &mut Option<Uuid>, n: u64) -> AppResult<Option<Vec<Uuid>>> {
    let mut page =
        customer::Entity::find().select_only().column(customer::Column::Id).order_by_asc(customer::Column::Id).limit(n);
    if let Some(a) = *after {
        page = page.filter(customer::Column::Id.gt(a));
    }
    let ids: Vec<Uuid> = page.into_tuple().all(db).await?;
    *after = ids.last().copied();
    Ok((!ids.is_empty()).then_some(ids))
}

/// One key row as a line of `COPY ... FROM STDIN` text.
fn copy_line(out: &mut String, r: &search_term::Model) {
    use std::fmt::Write;
    let escaped = r.term.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r");
    let opt = |v: Option<String>| v.unwrap_or_else(|| "\\N".into());
    let _ = writeln!(
        out,
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        r.form,
        escaped,
        r.field,
        if r.head { 't' } else { 'f' },
        r.record_id,
        r.customer_id,
        if r.contact { 't' } else { 'f' },
        opt(r.owner_id.map(|o| o.to_string())),
        r.department_id,
        opt(r.contacted_at.map(|t| t.to_rfc3339())),
    );
}

/// PostgreSQL's rebuild (see [`reindex`]); with `only_if_empty`, none when there are keys
/// (another instance built them first). Instances take turns on an advisory lock, held by
/// a connection of the rebuild's own (closed, and the lock with it, however it ends).
async fn rebuild_by_copy(db: &DatabaseConnection, only_if_empty: bool) -> AppResult<Option<Reindexed>> {
    use sea_orm::sqlx::{self, Connection};
    let options = db.get_postgres_connection_pool().connect_options();
    let mut conn = sqlx::postgres::PgConnection::connect_with(&options).await.map_err(copy_failed)?;
    let done = async {
        sqlx::raw_sql("SELECT pg_advisory_lock(hashtext('crm search rebuild'))")
            .execute(&mut conn)
            .await
            .map_err(copy_failed)?;
        if only_if_empty && search_term::Entity::find().one(db).await?.is_some() {
            return Ok(None);
        }
        rebuild_locked(db, &mut conn).await.map(Some)
    }
    .await;
    let _ = conn.close().await;
    done
}

fn copy_failed(e: sea_orm::sqlx::Error) -> crate::error::AppError {
    crate::error::AppError::Internal(format!("rebuilding the search keys: {e}").into())
}

/// Copies the keys of `ids` into `table` on `conn`; returns how many.
async fn copy_keys(
    db: &DatabaseConnection,
    conn: &mut sea_orm::sqlx::postgres::PgConnection,
    table: &str,
    ids: &[Uuid],
) -> AppResult<u64> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {table} (form, term, field, head, record_id, customer_id, contact, owner_id, department_id, \
             contacted_at) FROM STDIN"
        ))
        .await
        .map_err(copy_failed)?;
    // Reading and keying the next customers overlaps the server's taking in the last.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AppResult<(String, u64)>>(2);
    let reader = {
        let (db, ids) = (db.clone(), ids.to_vec());
        tokio::spawn(async move {
            for chunk in ids.chunks(5000) {
                let text = keyed(&db, chunk).await.map(|rows| {
                    let mut text = String::with_capacity(rows.len() * 120);
                    for r in &rows {
                        copy_line(&mut text, r);
                    }
                    (text, rows.len() as u64)
                });
                let failed = text.is_err();
                if tx.send(text).await.is_err() || failed {
                    return;
                }
            }
        })
    };
    let mut n = 0;
    while let Some(next) = rx.recv().await {
        let (text, rows) = next?;
        copy.send(text.as_bytes()).await.map_err(copy_failed)?;
        n += rows;
    }
    reader.await.map_err(|e| crate::error::AppError::Internal(format!("keying customers: {e}").into()))?;
    copy.finish().await.map_err(copy_failed)?;
    Ok(n)
}

async fn rebuild_locked(
    db: &DatabaseConnection,
    conn: &mut sea_orm::sqlx::postgres::PgConnection,
) -> AppResult<Reindexed> {
    use sea_orm::sqlx;
    // Writes not committed when the copy starts may be missed by it: their customers are
    // rebuilt again at the swap. They began no earlier than the oldest open transaction
    // (a minute more for the clocks of the instances that stamp `updated_at`).
    let started: DateTime<Utc> = sqlx::query_scalar(
        "SELECT LEAST(now(), COALESCE((SELECT MIN(xact_start) FROM pg_stat_activity \
         WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()), now())) - interval '1 minute'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(copy_failed)?;
    let mut done = Reindexed::default();
    for statement in
        ["DROP TABLE IF EXISTS search_term_next", "CREATE TABLE search_term_next (LIKE search_term INCLUDING DEFAULTS)"]
    {
        sqlx::raw_sql(statement).execute(&mut *conn).await.map_err(copy_failed)?;
    }
    let mut after: Option<Uuid> = None;
    let mut ids: Vec<Uuid> = Vec::new();
    while let Some(page) = next_ids(db, &mut after, 50_000).await? {
        done.customers += page.len() as u64;
        ids.extend(page);
    }
    let clock = std::time::Instant::now();
    done.terms = copy_keys(db, conn, "search_term_next", &ids).await?;
    drop(ids);
    tracing::info!(keys = done.terms, seconds = clock.elapsed().as_secs_f64(), "search keys copied");
    let clock = std::time::Instant::now();
    for statement in [
        "SET maintenance_work_mem = '1GB'",
        "CREATE INDEX idx_search_term_next_range ON search_term_next (form, term) \
         INCLUDE (head, field, record_id, customer_id, contact, owner_id, department_id, contacted_at)",
        "CREATE INDEX idx_search_term_next_customer ON search_term_next (customer_id)",
        "RESET maintenance_work_mem",
    ] {
        sqlx::raw_sql(statement).execute(&mut *conn).await.map_err(copy_failed)?;
    }
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys indexed");
    let clock = std::time::Instant::now();
    // The swap: writers wait for it; what they wrote since the copy began is rebuilt first.
    sqlx::raw_sql("BEGIN").execute(&mut *conn).await.map_err(copy_failed)?;
    let swapped = async {
        sqlx::raw_sql("LOCK TABLE search_term IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await
            .map_err(copy_failed)?;
        let since = written_since(db, started).await?;
        sqlx::query("DELETE FROM search_term_next WHERE customer_id = ANY($1)")
            .bind(&since)
            .execute(&mut *conn)
            .await
            .map_err(copy_failed)?;
        copy_keys(db, conn, "search_term_next", &since).await?;
        for statement in [
            "DROP TABLE search_term",
            "ALTER TABLE search_term_next RENAME TO search_term",
            "ALTER INDEX idx_search_term_next_range RENAME TO idx_search_term_range",
            "ALTER INDEX idx_search_term_next_customer RENAME TO idx_search_term_customer",
            "COMMIT",
        ] {
            sqlx::raw_sql(statement).execute(&mut *conn).await.map_err(copy_failed)?;
        }
        AppResult::Ok(())
    }
    .await;
    if let Err(e) = swapped {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        return Err(e);
    }
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys swapped in");
    let clock = std::time::Instant::now();
    done.terms = search_term::Entity::find().count(db).await?;
    // Index-only scans need the visibility map a fresh table does not have yet; searches
    // work without it, only slower, so a failure here is no failed rebuild.
    if let Err(e) = sqlx::raw_sql("VACUUM (ANALYZE) search_term").execute(&mut *conn).await {
        tracing::warn!(error = %e, "the search keys are rebuilt but not vacuumed: run VACUUM ANALYZE search_term");
    }
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys counted and vacuumed");
    Ok(done)
}

/// Customers whose keys a write since `since` may have changed: the customer, one of its
/// contacts or its interactions written.
async fn written_since(db: &DatabaseConnection, since: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
    let mut ids: BTreeSet<Uuid> = BTreeSet::new();
    ids.extend(customers_of::<customer::Entity>(db, customer::Column::Id, customer::Column::UpdatedAt, since).await?);
    ids.extend(
        customers_of::<contact::Entity>(db, contact::Column::CustomerId, contact::Column::UpdatedAt, since).await?,
    );
    ids.extend(
        customers_of::<interaction::Entity>(db, interaction::Column::CustomerId, interaction::Column::UpdatedAt, since)
            .await?,
    );
    Ok(ids.into_iter().collect())
}

/// The customer ids (`customer`) of `E`'s rows updated since `since`.
async fn customers_of<E: EntityTrait>(
    db: &DatabaseConnection,
    customer: E::Column,
    updated: E::Column,
    since: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    Ok(E::find().select_only().column(customer).filter(updated.gte(since)).into_tuple::<Uuid>().all(db).await?)
}

/// Builds the keys when there are customers and none are kept (a database upgraded to the
/// version that brought search).
///
/// # Errors
/// Database errors.
pub async fn fill_if_empty(db: &DatabaseConnection) -> AppResult<Option<Reindexed>> {
    if search_term::Entity::find().one(db).await?.is_some() || customer::Entity::find().one(db).await?.is_none() {
        return Ok(None);
    }
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        return rebuild_by_copy(db, true).await;
    }
    reindex(db).await.map(Some)
}
