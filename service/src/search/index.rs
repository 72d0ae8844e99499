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
            continue;
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
        let mut out: Vec<search_term::ActiveModel> = Vec::new();
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
        for batch in out.chunks(ROWS_PER_INSERT) {
            search_term::Entity::insert_many(batch.to_vec()).exec(db).await?;
        }
    }
    Ok(())
}

fn row(
    k: Key,
    record: Uuid,
    customer: Uuid,
    is_contact: bool,
    c: &CustomerKeyed,
    contacted: Option<DateTime<Utc>>,
) -> search_term::ActiveModel {
    search_term::ActiveModel {
        form: Set(k.form as i16),
        term: Set(k.term),
        field: Set(k.field as i16),
        head: Set(k.head),
        record_id: Set(record),
        customer_id: Set(customer),
        contact: Set(is_contact),
        owner_id: Set(c.5),
        department_id: Set(c.6),
        contacted_at: Set(contacted),
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
    let folded: String = units(&fold(name)).iter().map(Unit::text).collect();
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

/// Rebuilds every key, customer by customer in id order, a few hundred per transaction
/// (writes go on meanwhile: each keeps its own customer's keys), then drops keys of
/// customers that are gone.
///
/// # Errors
/// Database errors.
pub async fn reindex(db: &DatabaseConnection) -> AppResult<Reindexed> {
    let mut done = Reindexed::default();
    let mut after: Option<Uuid> = None;
    loop {
        let mut page = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .order_by_asc(customer::Column::Id)
            .limit(CHUNK as u64 * 5);
        if let Some(a) = after {
            page = page.filter(customer::Column::Id.gt(a));
        }
        let ids: Vec<Uuid> = page.into_tuple().all(db).await?;
        let Some(last) = ids.last().copied() else { break };
        crate::kernel::store::write(db, async |txn| refresh(txn, &ids).await).await?;
        done.customers += ids.len() as u64;
        after = Some(last);
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
    search_term::Entity::delete_many().filter(Expr::exists(live).not()).exec(db).await?;
    done.terms = search_term::Entity::find().count(db).await?;
    Ok(done)
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
    reindex(db).await.map(Some)
}
