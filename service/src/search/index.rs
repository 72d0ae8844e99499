//! Keeping the search keys: rebuilt per customer (its own keys and its contacts') in the
//! transaction of every write that changed what they are made of, by the kernel's
//! finisher at the end of each use case; an import rebuilds its chunk's at the chunk's end
//! (`transfer::import`), and `crm search reindex` rebuilds them all.
//!
//! A customer's keys are made from its row as stored at the end of the write, not from the
//! change: a merge that moved contacts, an erasure that blanked the fields, a restore out
//! of the trash all end in the same rebuild. Deleted, merged and erased customers have no
//! keys.
//!
//! Three tables (migration 000025): `search_doc` numbers the keyed records (a record keeps
//! its number while it has keys), `search_zone` numbers the (owner, department) pairs
//! customers sit in, and `search_term` holds the keys with those two numbers.
use super::keys::{self, Field, Key};
use crate::error::{AppError, AppResult};
use crate::kernel::change::{Change, Subject};
use crate::kernel::store::{FINISHERS, Finisher, Finishing};
use chrono::{DateTime, Utc};
use entity::enums::CustomerKind;
use entity::{contact, customer, interaction, search_doc, search_term, search_zone};
use linkme::distributed_slice;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
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
        let mut docs = Query::select();
        docs.column(search_doc::Column::Doc).from(search_doc::Entity).and_where(search_doc::Column::CustomerId.eq(id));
        search_term::Entity::update_many()
            .col_expr(
                search_term::Column::ContactedAt,
                Expr::expr(sea_orm::sea_query::SimpleExpr::SubQuery(
                    None,
                    Box::new(sea_orm::sea_query::SubQueryStatement::SelectStatement(latest)),
                )),
            )
            .filter(search_term::Column::Doc.in_subquery(docs))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Customers rebuilt per statement group.
const CHUNK: usize = 200;
/// Key rows per INSERT (eight values each, under SQLite's bound-value limit).
const ROWS_PER_INSERT: usize = 1000;

fn unbuilt(e: sea_orm::sea_query::error::Error) -> AppError {
    AppError::Internal(format!("building a search key statement: {e}").into())
}

/// Where a customer sits: owner (none in the pool) and department.
type Placement = (Option<Uuid>, Uuid);
type CustomerKeyed = (Uuid, CustomerKind, String, Option<String>, Option<String>, Option<Uuid>, Uuid);
type ContactKeyed = (Uuid, Uuid, String, Option<String>, Option<String>, Option<String>);

/// A record's keys, and what its doc and key rows say of it.
struct Keyed {
    record: Uuid,
    customer: Uuid,
    contact: bool,
    placement: Placement,
    contacted: Option<DateTime<Utc>>,
    keys: Vec<Key>,
}

/// Rebuilds the keys of `customers` (and of their contacts) from their rows as stored now.
/// A record keeps its doc number; a record new to the keys gets the next.
///
/// # Errors
/// Database errors.
pub async fn refresh(db: &impl ConnectionTrait, customers: &[Uuid]) -> AppResult<()> {
    let mut zones = Zones::default();
    for ids in customers.chunks(CHUNK) {
        let records = keyed(db, ids).await?;
        let record_ids: Vec<Uuid> = records.iter().map(|r| r.record).collect();
        // The docs held now: these customers' records, and records keyed here that were
        // another customer's (a contact moved by a merge).
        let held: Vec<(i32, Uuid)> = search_doc::Entity::find()
            .select_only()
            .columns([search_doc::Column::Doc, search_doc::Column::RecordId])
            .filter(
                Condition::any()
                    .add(search_doc::Column::CustomerId.is_in(ids.to_vec()))
                    .add(search_doc::Column::RecordId.is_in(record_ids)),
            )
            .into_tuple()
            .all(db)
            .await?;
        // Numbered before the old rows go (SQLite numbers after the highest there is).
        let mut numbered: HashMap<Uuid, i32> = held.iter().map(|(doc, record)| (*record, *doc)).collect();
        let mut fresh = new_docs(db, records.iter().filter(|r| !numbered.contains_key(&r.record)).count()).await?;
        for docs in held.chunks(ROWS_PER_INSERT) {
            let docs: Vec<i32> = docs.iter().map(|h| h.0).collect();
            search_term::Entity::delete_many().filter(search_term::Column::Doc.is_in(docs.clone())).exec(db).await?;
            search_doc::Entity::delete_many().filter(search_doc::Column::Doc.is_in(docs)).exec(db).await?;
        }
        if records.is_empty() {
            continue;
        }
        for r in &records {
            if let std::collections::hash_map::Entry::Vacant(slot) = numbered.entry(r.record) {
                slot.insert(fresh.next().ok_or_else(|| AppError::Internal("no doc number".into()))?);
            }
        }
        zones.learn(db, records.iter().map(|r| r.placement)).await?;
        let doc = |r: &Keyed| numbered.get(&r.record).copied().unwrap_or_default();
        for batch in records.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert.into_table(search_doc::Entity).columns([
                search_doc::Column::Doc,
                search_doc::Column::RecordId,
                search_doc::Column::CustomerId,
                search_doc::Column::Contact,
            ]);
            for r in batch {
                insert
                    .values([doc(r).into(), r.record.into(), r.customer.into(), r.contact.into()])
                    .map_err(unbuilt)?;
            }
            db.execute(&insert).await?;
        }
        let rows: Vec<(&Keyed, &Key)> = records.iter().flat_map(|r| r.keys.iter().map(move |k| (r, k))).collect();
        for batch in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert.into_table(search_term::Entity).columns([
                search_term::Column::Term,
                search_term::Column::Doc,
                search_term::Column::Field,
                search_term::Column::Zone,
                search_term::Column::Head,
                search_term::Column::Contact,
                search_term::Column::ContactedAt,
            ]);
            for (r, k) in batch {
                insert
                    .values([
                        keys::stored(k.form, &k.term).into(),
                        doc(r).into(),
                        (k.field as i16).into(),
                        zones.of(r.placement)?.into(),
                        k.head.into(),
                        r.contact.into(),
                        r.contacted.into(),
                    ])
                    .map_err(unbuilt)?;
            }
            db.execute(&insert).await?;
        }
    }
    Ok(())
}

/// `n` doc numbers not in use. PostgreSQL: from `search_doc_seq`. SQLite: after the
/// highest (its writers take turns, so no one else numbers meanwhile).
async fn new_docs(db: &impl ConnectionTrait, n: usize) -> AppResult<std::ops::Range<i32>> {
    if n == 0 {
        return Ok(0..0);
    }
    let backend = db.get_database_backend();
    if backend == sea_orm::DatabaseBackend::Postgres {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                "SELECT CAST(nextval('search_doc_seq') AS integer) FROM generate_series(1, $1)",
                [(n as i32).into()],
            ))
            .await?;
        let docs: Vec<i32> = rows.iter().map(|r| r.try_get_by_index::<i32>(0)).collect::<Result<_, _>>()?;
        // Numbers taken together are consecutive unless another writer took some between.
        let (first, last) = (docs.iter().min().copied().unwrap_or(1), docs.iter().max().copied().unwrap_or(0));
        if last - first + 1 == n as i32 {
            return Ok(first..last + 1);
        }
        return Err(AppError::Internal("doc numbers were not consecutive".into()));
    }
    let top: Option<i32> = search_doc::Entity::find()
        .select_only()
        .column_as(search_doc::Column::Doc.max(), "top")
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten();
    let first = top.unwrap_or(0) + 1;
    Ok(first..first + n as i32)
}

/// Zone numbers by placement, learnt from `search_zone` and added to it when missing.
#[derive(Default)]
struct Zones(HashMap<Placement, i32>);

impl Zones {
    /// Makes sure every placement of `wanted` has its number.
    async fn learn(&mut self, db: &impl ConnectionTrait, wanted: impl IntoIterator<Item = Placement>) -> AppResult<()> {
        let missing: BTreeSet<Placement> = wanted.into_iter().filter(|p| !self.0.contains_key(p)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let departments: BTreeSet<Uuid> = missing.iter().map(|p| p.1).collect();
        let load = async |zones: &mut HashMap<Placement, i32>| -> AppResult<()> {
            let rows = search_zone::Entity::find()
                .filter(search_zone::Column::DepartmentId.is_in(departments.iter().copied()))
                .all(db)
                .await?;
            zones.extend(rows.into_iter().map(|z| ((z.owner_id, z.department_id), z.zone)));
            Ok(())
        };
        load(&mut self.0).await?;
        let new: Vec<&Placement> = missing.iter().filter(|p| !self.0.contains_key(p)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut insert = Query::insert();
        insert
            .into_table(search_zone::Entity)
            .columns([search_zone::Column::OwnerId, search_zone::Column::DepartmentId])
            .on_conflict(OnConflict::new().do_nothing().to_owned());
        for (owner, department) in new {
            insert.values([(*owner).into(), (*department).into()]).map_err(unbuilt)?;
        }
        db.execute(&insert).await?;
        load(&mut self.0).await
    }

    fn of(&self, p: Placement) -> AppResult<i32> {
        self.0.get(&p).copied().ok_or_else(|| AppError::Internal("a placement without a zone".into()))
    }
}

/// Which customers to key.
#[derive(Clone, Copy)]
enum Customers<'a> {
    These(&'a [Uuid]),
    /// Every customer from the first id to the last (a rebuild's run of the id order:
    /// two bounds instead of a list of thousands).
    Between(Uuid, Uuid),
}

impl Customers<'_> {
    fn of(ids: &[Uuid], span: bool) -> Customers<'_> {
        match (span, ids.first(), ids.last()) {
            (true, Some(a), Some(b)) => Customers::Between(*a, *b),
            _ => Customers::These(ids),
        }
    }

    fn on(self, id: impl ColumnTrait) -> Condition {
        match self {
            Customers::These(ids) => Condition::all().add(id.is_in(ids.to_vec())),
            Customers::Between(a, b) => Condition::all().add(id.gte(a)).add(id.lte(b)),
        }
    }
}

/// The keys of `customers` (live, not erased) and of their live contacts.
async fn keyed(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<Keyed>> {
    keyed_of(db, Customers::These(ids)).await
}

async fn keyed_of(db: &impl ConnectionTrait, which: Customers<'_>) -> AppResult<Vec<Keyed>> {
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
        .filter(which.on(customer::Column::Id))
        .filter(customer::Column::DeletedAt.is_null())
        .filter(customer::Column::ErasedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let live: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let live = match which {
        Customers::These(_) => Customers::These(&live),
        span => span,
    };
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
        .filter(live.on(contact::Column::CustomerId))
        .filter(contact::Column::DeletedAt.is_null())
        .into_tuple()
        .all(db)
        .await?;
    let latest: HashMap<Uuid, Option<DateTime<Utc>>> = interaction::Entity::find()
        .select_only()
        .column(interaction::Column::CustomerId)
        .column_as(interaction::Column::OccurredAt.max(), "at")
        .filter(live.on(interaction::Column::CustomerId))
        .filter(interaction::Column::DeletedAt.is_null())
        .group_by(interaction::Column::CustomerId)
        .into_tuple::<(Uuid, Option<DateTime<Utc>>)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut out = Vec::with_capacity(rows.len() + contacts.len());
    let mut by_customer: HashMap<Uuid, &CustomerKeyed> = HashMap::new();
    let record = |record: Uuid, contact: bool, c: &CustomerKeyed, keys: Vec<Key>| Keyed {
        record,
        customer: c.0,
        contact,
        placement: (c.5, c.6),
        contacted: latest.get(&c.0).copied().flatten(),
        keys,
    };
    for c in &rows {
        by_customer.insert(c.0, c);
        out.push(record(c.0, false, c, customer_keys(c)));
    }
    for k in &contacts {
        let Some(c) = by_customer.get(&k.1) else { continue };
        out.push(record(k.0, true, c, contact_keys(k)));
    }
    Ok(out)
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
    let mut docs = Query::select();
    docs.column(search_term::Column::Doc)
        .from(search_term::Entity)
        .and_where(search_term::Column::Term.eq(keys::stored(Form::Text, &folded)))
        .and_where(search_term::Column::Head.eq(true))
        .and_where(search_term::Column::Field.eq(Field::Name as i16));
    let mut q = Query::select();
    q.column(search_doc::Column::RecordId)
        .from(search_doc::Entity)
        .and_where(search_doc::Column::Doc.in_subquery(docs));
    q
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reindexed {
    pub customers: u64,
    pub terms: u64,
}

/// Rebuilds every key into new tables, filled in bulk, indexed once full and swapped in
/// under a lock, after the customers written meanwhile were rebuilt into them (writes go
/// on throughout, and wait for the swap). PostgreSQL fills by binary `COPY`; SQLite
/// writes its keys unordered into a plain table and then into the key-ordered one in one
/// ordered pass. One rebuild at a time.
///
/// # Errors
/// Database errors.
pub async fn reindex(db: &DatabaseConnection) -> AppResult<Reindexed> {
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        return copy::rebuild(db, false).await.map(Option::unwrap_or_default);
    }
    bulk::rebuild(db).await
}

/// Builds the keys when there are customers and none are kept (a database upgraded to the
/// version that brought search, or to one that changed its tables).
///
/// # Errors
/// Database errors.
pub async fn fill_if_empty(db: &DatabaseConnection) -> AppResult<Option<Reindexed>> {
    if search_doc::Entity::find().one(db).await?.is_some() || customer::Entity::find().one(db).await?.is_none() {
        return Ok(None);
    }
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        return copy::rebuild(db, true).await;
    }
    reindex(db).await.map(Some)
}

/// Every customer id, in order.
async fn all_customers(db: &DatabaseConnection) -> AppResult<Vec<Uuid>> {
    let mut ids: Vec<Uuid> = Vec::new();
    loop {
        let mut page = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .order_by_asc(customer::Column::Id)
            .limit(50_000);
        if let Some(a) = ids.last() {
            page = page.filter(customer::Column::Id.gt(*a));
        }
        let next: Vec<Uuid> = page.into_tuple().all(db).await?;
        if next.is_empty() {
            return Ok(ids);
        }
        ids.extend(next);
    }
}

/// Customers whose keys a write since `since` may have changed: the customer, one of its
/// contacts or its interactions written.
async fn written_since(db: &impl ConnectionTrait, since: DateTime<Utc>) -> AppResult<Vec<Uuid>> {
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
    db: &impl ConnectionTrait,
    customer: E::Column,
    updated: E::Column,
    since: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    Ok(E::find().select_only().column(customer).filter(updated.gte(since)).into_tuple::<Uuid>().all(db).await?)
}

/// Counts the keys.
async fn count_terms(db: &DatabaseConnection) -> AppResult<u64> {
    Ok(search_term::Entity::find().count(db).await?)
}

/// PostgreSQL's rebuild: binary `COPY` into new tables.
mod copy {
    use super::*;
    use sea_orm::sqlx::{self, Connection, postgres::PgConnection};

    fn failed(e: sqlx::Error) -> AppError {
        AppError::Internal(format!("rebuilding the search keys: {e}").into())
    }

    /// See [`reindex`]; with `only_if_empty`, none when there are keys (another instance
    /// built them first). Instances take turns on an advisory lock, held by a connection
    /// of the rebuild's own (closed, and the lock with it, however it ends).
    pub(super) async fn rebuild(db: &DatabaseConnection, only_if_empty: bool) -> AppResult<Option<Reindexed>> {
        let options = db.get_postgres_connection_pool().connect_options();
        let mut conn = PgConnection::connect_with(&options).await.map_err(failed)?;
        let done = async {
            sqlx::raw_sql("SELECT pg_advisory_lock(hashtext('crm search rebuild'))")
                .execute(&mut conn)
                .await
                .map_err(failed)?;
            if only_if_empty && search_doc::Entity::find().one(db).await?.is_some() {
                return Ok(None);
            }
            locked(db, &mut conn).await.map(Some)
        }
        .await;
        let _ = conn.close().await;
        done
    }

    /// `COPY`'s binary format, written as the rows are made.
    #[derive(Default)]
    struct Binary(Vec<u8>);

    impl Binary {
        fn header(&mut self) {
            self.0.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
            self.0.extend_from_slice(&[0; 8]);
        }
        fn row(&mut self, fields: i16) {
            self.0.extend_from_slice(&fields.to_be_bytes());
        }
        fn bytes(&mut self, b: &[u8]) {
            self.0.extend_from_slice(&(b.len() as i32).to_be_bytes());
            self.0.extend_from_slice(b);
        }
        fn null(&mut self) {
            self.0.extend_from_slice(&(-1i32).to_be_bytes());
        }
        fn time(&mut self, t: Option<DateTime<Utc>>) {
            // Microseconds since 2000-01-01 UTC.
            match t {
                Some(t) => self.bytes(&(t.timestamp_micros() - 946_684_800_000_000).to_be_bytes()),
                None => self.null(),
            }
        }
        fn trailer(&mut self) {
            self.0.extend_from_slice(&(-1i16).to_be_bytes());
        }
    }

    /// What one batch of customers became: its doc rows and its key rows, as `COPY` data.
    struct Batch {
        docs: Binary,
        terms: Binary,
        keys: u64,
    }

    /// Numbers and encodes `records` from doc `next` on.
    fn encode(records: &[Keyed], zones: &Zones, next: &mut i32) -> AppResult<Batch> {
        let mut b = Batch { docs: Binary::default(), terms: Binary::default(), keys: 0 };
        for r in records {
            let doc = *next;
            *next += 1;
            b.docs.row(4);
            b.docs.bytes(&doc.to_be_bytes());
            b.docs.bytes(r.record.as_bytes());
            b.docs.bytes(r.customer.as_bytes());
            b.docs.bytes(&[u8::from(r.contact)]);
            let zone = zones.of(r.placement)?;
            for k in &r.keys {
                b.terms.row(7);
                b.terms.time(r.contacted);
                b.terms.bytes(&doc.to_be_bytes());
                b.terms.bytes(&zone.to_be_bytes());
                b.terms.bytes(&(k.field as i16).to_be_bytes());
                b.terms.bytes(&[u8::from(k.head)]);
                b.terms.bytes(&[u8::from(r.contact)]);
                b.terms.bytes(keys::stored(k.form, &k.term).as_bytes());
            }
            b.keys += r.keys.len() as u64;
        }
        Ok(b)
    }

    /// Copies the keys of `ids` into the new tables, numbering their records from `next`
    /// on; returns how many keys. `all`: `ids` are every customer, in order, and the
    /// tables were made in this transaction (their rows are written frozen, visible to
    /// all, so that index-only scans need no vacuum first).
    async fn fill(
        db: &DatabaseConnection,
        conn: &mut PgConnection,
        ids: &[Uuid],
        next: &mut i32,
        all: bool,
    ) -> AppResult<u64> {
        let freeze = if all { ", FREEZE" } else { "" };
        let mut terms = conn
            .copy_in_raw(&format!(
                "COPY search_term_next (contacted_at, doc, zone, field, head, contact, term) \
                 FROM STDIN (FORMAT binary{freeze})"
            ))
            .await
            .map_err(failed)?;
        let mut header = Binary::default();
        header.header();
        terms.send(header.0).await.map_err(failed)?;
        // Reading and keying the next customers overlaps the server's taking in the last.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AppResult<Batch>>(2);
        let reader = {
            let (db, ids, first) = (db.clone(), ids.to_vec(), *next);
            tokio::spawn(async move {
                let (mut zones, mut next) = (Zones::default(), first);
                for chunk in ids.chunks(5000) {
                    let batch = async {
                        let records = keyed_of(&db, Customers::of(chunk, all)).await?;
                        zones.learn(&db, records.iter().map(|r| r.placement)).await?;
                        encode(&records, &zones, &mut next)
                    }
                    .await;
                    let failed = batch.is_err();
                    if tx.send(batch).await.is_err() || failed {
                        return next;
                    }
                }
                next
            })
        };
        let (mut keys, mut docs) = (0, Binary::default());
        docs.header();
        while let Some(batch) = rx.recv().await {
            let batch = batch?;
            terms.send(batch.terms.0).await.map_err(failed)?;
            docs.0.extend_from_slice(&batch.docs.0);
            keys += batch.keys;
        }
        *next = reader.await.map_err(|e| AppError::Internal(format!("keying customers: {e}").into()))?;
        let mut end = Binary::default();
        end.trailer();
        terms.send(end.0).await.map_err(failed)?;
        terms.finish().await.map_err(failed)?;
        docs.trailer();
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY search_doc_next (doc, record_id, customer_id, contact) FROM STDIN (FORMAT binary{freeze})"
            ))
            .await
            .map_err(failed)?;
        copy.send(docs.0).await.map_err(failed)?;
        copy.finish().await.map_err(failed)?;
        Ok(keys)
    }

    async fn run(conn: &mut PgConnection, statements: &[&'static str]) -> AppResult<()> {
        for statement in statements {
            sqlx::raw_sql(*statement).execute(&mut *conn).await.map_err(failed)?;
        }
        Ok(())
    }

    async fn locked(db: &DatabaseConnection, conn: &mut PgConnection) -> AppResult<Reindexed> {
        // Writes not committed when the copy starts may be missed by it: their customers are
        // rebuilt again at the swap. They began no earlier than the oldest open transaction
        // (a minute more for the clocks of the instances that stamp `updated_at`).
        let started: DateTime<Utc> = sqlx::query_scalar(
            "SELECT LEAST(now(), COALESCE((SELECT MIN(xact_start) FROM pg_stat_activity \
             WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()), now())) - interval '1 minute'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(failed)?;
        run(conn, &["DROP TABLE IF EXISTS search_term_next", "DROP TABLE IF EXISTS search_doc_next"]).await?;
        let ids = all_customers(db).await?;
        let mut done = Reindexed { customers: ids.len() as u64, terms: 0 };
        let clock = std::time::Instant::now();
        let mut next = 1;
        run(
            conn,
            &[
                "BEGIN",
                "CREATE TABLE search_term_next (LIKE search_term)",
                "CREATE TABLE search_doc_next (LIKE search_doc)",
            ],
        )
        .await?;
        match fill(db, conn, &ids, &mut next, true).await {
            Ok(n) => done.terms = n,
            Err(e) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                return Err(e);
            }
        }
        run(conn, &["COMMIT"]).await?;
        drop(ids);
        tracing::info!(keys = done.terms, seconds = clock.elapsed().as_secs_f64(), "search keys copied");
        let clock = std::time::Instant::now();
        run(
            conn,
            &[
                "SET maintenance_work_mem = '1GB'",
                "CREATE INDEX idx_search_term_next_range ON search_term_next (term) \
                 INCLUDE (doc, zone, field, head, contact, contacted_at)",
                "CREATE INDEX idx_search_term_next_doc ON search_term_next (doc)",
                "ALTER TABLE search_doc_next ADD CONSTRAINT search_doc_next_pkey PRIMARY KEY (doc)",
                "CREATE UNIQUE INDEX idx_search_doc_next_record ON search_doc_next (record_id)",
                "CREATE INDEX idx_search_doc_next_customer ON search_doc_next (customer_id)",
                "RESET maintenance_work_mem",
            ],
        )
        .await?;
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys indexed");
        let clock = std::time::Instant::now();
        // The swap: writers wait for it; what they wrote since the copy began is rebuilt first.
        run(conn, &["BEGIN"]).await?;
        let swapped = async {
            run(conn, &["LOCK TABLE search_term, search_doc IN ACCESS EXCLUSIVE MODE"]).await?;
            let since = written_since(db, started).await?;
            let mut records = Vec::new();
            for ids in since.chunks(5000) {
                records.extend(keyed(db, ids).await?.into_iter().map(|r| r.record));
            }
            // Looked up first, so that the deletes are lookups of the doc index (a subquery
            // here was planned as a scan of every new key when there was nothing to delete).
            let stale: Vec<i32> = sqlx::query_scalar(
                "SELECT doc FROM search_doc_next WHERE customer_id = ANY($1) OR record_id = ANY($2)",
            )
            .bind(&since)
            .bind(&records)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed)?;
            if !stale.is_empty() {
                for statement in [
                    "DELETE FROM search_term_next WHERE doc = ANY($1)",
                    "DELETE FROM search_doc_next WHERE doc = ANY($1)",
                ] {
                    sqlx::query(statement).bind(&stale).execute(&mut *conn).await.map_err(failed)?;
                }
            }
            fill(db, conn, &since, &mut next, false).await?;
            run(
                conn,
                &[
                    "DROP TABLE search_term",
                    "DROP TABLE search_doc",
                    "ALTER TABLE search_term_next RENAME TO search_term",
                    "ALTER INDEX idx_search_term_next_range RENAME TO idx_search_term_range",
                    "ALTER INDEX idx_search_term_next_doc RENAME TO idx_search_term_doc",
                    "ALTER TABLE search_doc_next RENAME TO search_doc",
                    "ALTER TABLE search_doc RENAME CONSTRAINT search_doc_next_pkey TO search_doc_pkey",
                    "ALTER INDEX idx_search_doc_next_record RENAME TO idx_search_doc_record",
                    "ALTER INDEX idx_search_doc_next_customer RENAME TO idx_search_doc_customer",
                ],
            )
            .await?;
            sqlx::query("SELECT setval('search_doc_seq', $1)").bind(next).execute(&mut *conn).await.map_err(failed)?;
            run(conn, &["COMMIT"]).await
        }
        .await;
        if let Err(e) = swapped {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(e);
        }
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys swapped in");
        let clock = std::time::Instant::now();
        done.terms = count_terms(db).await?;
        // The planner's statistics of the new tables; searches work without them, only
        // planned worse, so a failure here is no failed rebuild.
        if let Err(e) = run(conn, &["ANALYZE search_term, search_doc"]).await {
            tracing::warn!(error = %e, "the search keys are rebuilt but not analyzed: run ANALYZE search_term");
        }
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys counted and analyzed");
        Ok(done)
    }
}

/// SQLite's rebuild: the keys written unordered into a plain table, then in key order into
/// the new key table (a B-tree filled from left to right, not by random inserts).
mod bulk {
    use super::*;
    use sea_orm::sea_query::Alias;
    use sea_orm::{DatabaseBackend, Statement};

    const TERM_COLUMNS: &str = "term, doc, field, zone, head, contact, contacted_at";

    async fn run(db: &impl ConnectionTrait, statements: &[&str]) -> AppResult<()> {
        for s in statements {
            db.execute_unprepared(s).await?;
        }
        Ok(())
    }

    /// Index names alternate between rebuilds (SQLite cannot rename an index).
    async fn free_name(db: &DatabaseConnection, name: &str) -> AppResult<String> {
        let taken = db
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                [name.into()],
            ))
            .await?
            .is_some();
        Ok(if taken { format!("{name}_b") } else { name.to_string() })
    }

    /// Writes `records` into `search_doc_next` and `terms`, numbered from `next` on;
    /// returns how many keys.
    async fn insert(
        db: &impl ConnectionTrait,
        terms: &str,
        records: &[Keyed],
        zones: &Zones,
        next: &mut i32,
    ) -> AppResult<u64> {
        let first = *next;
        *next += records.len() as i32;
        for (i, batch) in records.chunks(ROWS_PER_INSERT).enumerate() {
            let mut insert = Query::insert();
            insert.into_table(Alias::new("search_doc_next")).columns([
                search_doc::Column::Doc,
                search_doc::Column::RecordId,
                search_doc::Column::CustomerId,
                search_doc::Column::Contact,
            ]);
            for (j, r) in batch.iter().enumerate() {
                let doc = first + (i * ROWS_PER_INSERT + j) as i32;
                insert.values([doc.into(), r.record.into(), r.customer.into(), r.contact.into()]).map_err(unbuilt)?;
            }
            db.execute(&insert).await?;
        }
        let rows: Vec<(i32, &Keyed, &Key)> = records
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.keys.iter().map(move |k| (first + i as i32, r, k)))
            .collect();
        for batch in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Query::insert();
            insert.into_table(Alias::new(terms)).columns([
                search_term::Column::Term,
                search_term::Column::Doc,
                search_term::Column::Field,
                search_term::Column::Zone,
                search_term::Column::Head,
                search_term::Column::Contact,
                search_term::Column::ContactedAt,
            ]);
            for (doc, r, k) in batch {
                insert
                    .values([
                        keys::stored(k.form, &k.term).into(),
                        (*doc).into(),
                        (k.field as i16).into(),
                        zones.of(r.placement)?.into(),
                        k.head.into(),
                        r.contact.into(),
                        r.contacted.into(),
                    ])
                    .map_err(unbuilt)?;
            }
            db.execute(&insert).await?;
        }
        Ok(rows.len() as u64)
    }

    /// Drops from the new tables what they hold of `customers` and of `records`.
    async fn forget(db: &impl ConnectionTrait, customers: &[Uuid], records: &[Uuid]) -> AppResult<()> {
        let next = Alias::new("search_doc_next");
        for (column, ids) in [(search_doc::Column::CustomerId, customers), (search_doc::Column::RecordId, records)] {
            for ids in ids.chunks(ROWS_PER_INSERT) {
                let mut docs = Query::select();
                // Unqualified columns: the tables are not the entities' own.
                docs.column(search_doc::Column::Doc)
                    .from(next.clone())
                    .and_where(Expr::col(column).is_in(ids.to_vec()));
                let mut terms = Query::delete();
                terms
                    .from_table(Alias::new("search_term_next"))
                    .and_where(Expr::col(search_term::Column::Doc).in_subquery(docs));
                db.execute(&terms).await?;
                let mut gone = Query::delete();
                gone.from_table(next.clone()).and_where(Expr::col(column).is_in(ids.to_vec()));
                db.execute(&gone).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn rebuild(db: &DatabaseConnection) -> AppResult<Reindexed> {
        // Writes that began before now are rebuilt again at the swap.
        let started = Utc::now() - chrono::Duration::minutes(1);
        run(
            db,
            &[
                "DROP TABLE IF EXISTS search_term_load",
                "DROP TABLE IF EXISTS search_term_next",
                "DROP TABLE IF EXISTS search_doc_next",
                "CREATE TABLE search_doc_next (doc integer NOT NULL PRIMARY KEY, record_id uuid_text NOT NULL, \
                 customer_id uuid_text NOT NULL, contact boolean NOT NULL)",
                "CREATE TABLE search_term_load (term varchar, doc integer, field integer, \
                 zone integer, head boolean, contact boolean, contacted_at timestamp_with_timezone_text)",
                "CREATE TABLE search_term_next (term varchar NOT NULL, doc integer NOT NULL, \
                 field integer NOT NULL, zone integer NOT NULL, head boolean NOT NULL, contact boolean NOT NULL, \
                 contacted_at timestamp_with_timezone_text, PRIMARY KEY (term, doc, field)) WITHOUT ROWID",
            ],
        )
        .await?;
        let ids = all_customers(db).await?;
        let mut done = Reindexed { customers: ids.len() as u64, terms: 0 };
        let clock = std::time::Instant::now();
        let (mut zones, mut next) = (Zones::default(), 1);
        for chunk in ids.chunks(2000) {
            let records = keyed(db, chunk).await?;
            zones.learn(db, records.iter().map(|r| r.placement)).await?;
            let (zones, next) = (&zones, &mut next);
            done.terms += crate::kernel::store::write(db, async |txn| {
                insert(txn, "search_term_load", &records, zones, next).await
            })
            .await?;
        }
        drop(ids);
        tracing::info!(keys = done.terms, seconds = clock.elapsed().as_secs_f64(), "search keys written");
        let clock = std::time::Instant::now();
        let (term_doc, doc_record, doc_customer) = (
            free_name(db, "idx_search_term_doc").await?,
            free_name(db, "idx_search_doc_record").await?,
            free_name(db, "idx_search_doc_customer").await?,
        );
        run(
            db,
            &[
                &format!(
                    "INSERT INTO search_term_next ({TERM_COLUMNS}) SELECT {TERM_COLUMNS} FROM search_term_load \
                     ORDER BY term, doc, field"
                ),
                "DROP TABLE search_term_load",
                &format!("CREATE INDEX {term_doc} ON search_term_next (doc)"),
                &format!("CREATE UNIQUE INDEX {doc_record} ON search_doc_next (record_id)"),
                &format!("CREATE INDEX {doc_customer} ON search_doc_next (customer_id)"),
            ],
        )
        .await?;
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys ordered and indexed");
        let clock = std::time::Instant::now();
        // The catch-up and the swap in one write transaction: no writer comes between.
        crate::kernel::store::write(db, async |txn| {
            let since = written_since(txn, started).await?;
            let mut records = Vec::new();
            for ids in since.chunks(5000) {
                records.extend(keyed(txn, ids).await?);
            }
            let record_ids: Vec<Uuid> = records.iter().map(|r| r.record).collect();
            forget(txn, &since, &record_ids).await?;
            zones.learn(txn, records.iter().map(|r| r.placement)).await?;
            insert(txn, "search_term_next", &records, &zones, &mut next).await?;
            run(
                txn,
                &[
                    "DROP TABLE search_term",
                    "DROP TABLE search_doc",
                    "ALTER TABLE search_term_next RENAME TO search_term",
                    "ALTER TABLE search_doc_next RENAME TO search_doc",
                ],
            )
            .await
        })
        .await?;
        tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys swapped in");
        done.terms = count_terms(db).await?;
        Ok(done)
    }
}
