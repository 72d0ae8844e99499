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
        let rows: Vec<(i32, &Keyed)> =
            records.iter().map(|r| (numbered.get(&r.record).copied().unwrap_or_default(), r)).collect();
        write(db, "search_doc", "search_term", &rows, &zones).await?;
    }
    Ok(())
}

/// Writes numbered records into a doc table and their keys into a key table (the live
/// ones, or a rebuild's new ones); returns how many keys.
async fn write(
    db: &impl ConnectionTrait,
    docs: &str,
    terms: &str,
    records: &[(i32, &Keyed)],
    zones: &Zones,
) -> AppResult<u64> {
    use sea_orm::sea_query::Alias;
    for batch in records.chunks(ROWS_PER_INSERT) {
        let mut insert = Query::insert();
        insert.into_table(Alias::new(docs)).columns([
            search_doc::Column::Doc,
            search_doc::Column::RecordId,
            search_doc::Column::CustomerId,
            search_doc::Column::Contact,
        ]);
        for (doc, r) in batch {
            insert.values([(*doc).into(), r.record.into(), r.customer.into(), r.contact.into()]).map_err(unbuilt)?;
        }
        db.execute(&insert).await?;
    }
    let rows: Vec<(i32, &Keyed, &Key)> =
        records.iter().flat_map(|(doc, r)| r.keys.iter().map(move |k| (*doc, *r, k))).collect();
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

mod bulk;
mod copy;
