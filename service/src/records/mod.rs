//! What contacts, deals, feedback and interactions share: they hang off a customer,
//! are scoped through it, carry a `version` and are soft-deleted. The generic read,
//! write, delete and restore paths live here once.
pub mod contact;
pub mod deal;
pub mod feedback;
pub mod follow_up;
pub mod interaction;
use crate::access::Actor;
use crate::access::list::{self, ListQuery, Listing};
use crate::error::{AppError, AppResult};
use crate::kernel::change::Verb;
use crate::kernel::now;
use crate::kernel::pagination::{Page, paginate};
use crate::kernel::store::{Versioned, check_version, save, write};
use crate::kernel::vault::Keyring;
use chrono::{DateTime, Utc};
use entity::customer;
use entity::enums::{Action, Resource};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, Order, Query, WindowStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QuerySelect, QueryTrait, Statement, Value,
};
use std::collections::HashMap;
use uuid::Uuid;

/// A record that belongs to a customer.
pub trait CustomerRecord: Versioned + Listing {
    /// Permission resource.
    const RESOURCE: Resource;

    fn id_column() -> Self::Column;
    fn customer_column() -> Self::Column;
    fn deleted_column() -> Self::Column;
    fn created_column() -> Self::Column;

    fn id(m: &Self::Model) -> Uuid;
    fn customer_id(m: &Self::Model) -> Uuid;
    fn created_at(m: &Self::Model) -> DateTime<Utc>;

    /// Sets or clears deleted_at.
    fn set_deleted(am: &mut Self::ActiveModel, at: Option<DateTime<Utc>>);

    /// What else moving the record to or from the trash changes, in the same
    /// transaction: a deal's customer is regraded; the others change nothing.
    fn after_trash(
        txn: &DatabaseTransaction,
        actor: &Actor,
        vault: &Keyring,
        row: &Self::Model,
    ) -> impl Future<Output = AppResult<()>> + Send;
}

fn not_found<E: CustomerRecord>() -> AppError {
    AppError::NotFound(<E as Versioned>::NAME)
}

/// The caller's read condition for records of `E`.
pub fn read_condition<E: CustomerRecord>(actor: &Actor) -> Condition {
    actor.child_condition(E::customer_column(), E::RESOURCE, Action::Read)
}

/// A live record the caller may read.
///
/// # Errors
/// NOT_FOUND.
pub async fn get<E: CustomerRecord>(db: &impl ConnectionTrait, actor: &Actor, id: Uuid) -> AppResult<E::Model> {
    E::find()
        .filter(E::id_column().eq(id))
        .filter(E::deleted_column().is_null())
        .filter(read_condition::<E>(actor))
        .one(db)
        .await?
        .ok_or_else(not_found::<E>)
}

/// Records the caller may read matching the query; the trash with `deleted`.
///
/// # Errors
/// VALIDATION (filter, paging), FORBIDDEN (amounts without the right to see them).
pub async fn list<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &ListQuery<E::SortField>,
) -> AppResult<Page<E::Model>> {
    let (filter, keys) = list::plan::<E>(actor, E::RESOURCE, query, None)?;
    let live = if query.deleted { E::deleted_column().is_not_null() } else { E::deleted_column().is_null() };
    let q = E::find().filter(read_condition::<E>(actor)).filter(live).filter(filter);
    paginate(db, q, &keys, E::id_column(), E::id, &query.page).await
}

/// The live records among `ids` that the caller may read, for batched loads.
pub async fn readable_by_ids<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    ids: Vec<Uuid>,
) -> AppResult<Vec<E::Model>> {
    Ok(E::find()
        .filter(E::id_column().is_in(ids))
        .filter(E::deleted_column().is_null())
        .filter(read_condition::<E>(actor))
        .all(db)
        .await?)
}

/// Checks that the caller may add a record of `E` to a customer: NOT_FOUND if the
/// customer is not readable, FORBIDDEN if the create scope does not cover it.
pub async fn check_parent<E: CustomerRecord>(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    customer_id: crate::kernel::types::CustomerId,
) -> AppResult<customer::Model> {
    let customer_id = customer_id.uuid();
    // Locked as it is read: the customer first, then the record (the lock order of every
    // write, `customer::lock`).
    let readable = customer::Entity::find_by_id(customer_id)
        .filter(customer::Column::DeletedAt.is_null())
        .filter(
            Condition::any()
                .add(actor.customer_condition(Resource::Customer, Action::Read))
                .add(actor.customer_condition(E::RESOURCE, Action::Read)),
        )
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("customer"))?;
    actor.require(E::RESOURCE, Action::Create)?;
    let allowed = customer::Entity::find_by_id(customer_id)
        .filter(actor.customer_condition(E::RESOURCE, Action::Create))
        .count(txn)
        .await?;
    if allowed == 0 {
        return Err(AppError::Forbidden(format!("you may not add a {} to this customer", <E as Versioned>::NAME)));
    }
    Ok(readable)
}

/// Loads a record for a write: NOT_FOUND unless readable (deleted ones with `deleted`),
/// FORBIDDEN unless the action's scope covers it, CONFLICT on a stale version.
pub async fn load_for<E: CustomerRecord>(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    id: Uuid,
    action: Action,
    deleted: bool,
    version: Option<i32>,
) -> AppResult<E::Model> {
    let live = if deleted { E::deleted_column().is_not_null() } else { E::deleted_column().is_null() };
    let row = E::find()
        .filter(E::id_column().eq(id))
        .filter(live)
        .filter(read_condition::<E>(actor))
        .one(txn)
        .await?
        .ok_or_else(not_found::<E>)?;
    actor.require(E::RESOURCE, action)?;
    let allowed = E::find()
        .filter(E::id_column().eq(id))
        .filter(actor.child_condition(E::customer_column(), E::RESOURCE, action))
        .count(txn)
        .await?;
    if allowed == 0 {
        return Err(AppError::Forbidden(format!(
            "you may not {} this {}",
            action.as_str().to_lowercase(),
            <E as Versioned>::NAME
        )));
    }
    check_version::<E>(&row, version)?;
    if action != Action::Read {
        // The customer first, then the record (the lock order of every write).
        crate::customer::lock(txn, E::customer_id(&row)).await?;
    }
    Ok(row)
}

/// Soft-deletes a record.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, CONFLICT.
pub async fn delete<E: CustomerRecord>(
    db: &DatabaseConnection,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
    version: Option<i32>,
) -> AppResult<E::Model> {
    write(db, async |txn| delete_in::<E>(txn, vault, actor, id, version).await).await
}

/// Soft-deletes a record inside the caller's transaction.
pub async fn delete_in<E: CustomerRecord>(
    txn: &DatabaseTransaction,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
    version: Option<i32>,
) -> AppResult<E::Model> {
    let old = load_for::<E>(txn, actor, id, Action::Delete, false, version).await?;
    let mut am = old.clone().into_active_model();
    E::set_deleted(&mut am, Some(now()));
    let new = save::<E>(txn, Some(actor.id()), Verb::Delete, &old, am).await?;
    E::after_trash(txn, actor, vault, &new).await?;
    Ok(new)
}

/// Restores a soft-deleted record.
///
/// # Errors
/// NOT_FOUND (nothing in the trash with that id in scope), FORBIDDEN.
pub async fn restore<E: CustomerRecord>(
    db: &DatabaseConnection,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
) -> AppResult<E::Model> {
    write(db, async |txn| restore_in::<E>(txn, vault, actor, id).await).await
}

/// Restores a record inside the caller's transaction.
pub async fn restore_in<E: CustomerRecord>(
    txn: &DatabaseTransaction,
    vault: &Keyring,
    actor: &Actor,
    id: Uuid,
) -> AppResult<E::Model> {
    let old = load_for::<E>(txn, actor, id, Action::Delete, true, None).await?;
    let mut am = old.clone().into_active_model();
    E::set_deleted(&mut am, None);
    let new = save::<E>(txn, Some(actor.id()), Verb::Restore, &old, am).await?;
    E::after_trash(txn, actor, vault, &new).await?;
    Ok(new)
}

/// The first `first + 1` live records of each customer, newest first, optionally after a
/// (created_at, id) position: one query for any number of customers.
///
/// Unscoped: the caller has checked its read grant against each customer already in
/// memory (`Actor::may`), which spares the query a scope subquery that cost a customer
/// lookup per record. On PostgreSQL each customer's page is an index scan that stops after
/// `first + 1` rows (`LATERAL ... LIMIT`), however many records the customer has; SQLite
/// ranks the customers' records with a window instead.
pub async fn first_per_customer<E: CustomerRecord>(
    db: &DatabaseConnection,
    customer_ids: &[Uuid],
    first: u64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> AppResult<HashMap<Uuid, Vec<E::Model>>> {
    let limit = first as i64 + 1;
    let stmt = match db.get_database_backend() {
        DbBackend::Postgres => {
            let table = E::default().table_name();
            let mut values: Vec<Value> = vec![customer_ids.to_vec().into(), limit.into()];
            let position = match after {
                Some((at, id)) => {
                    values.extend([at.into(), id.into()]);
                    "AND (r.created_at, r.id) < ($3, $4)"
                }
                None => "",
            };
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    r#"SELECT page.* FROM unnest($1::uuid[]) AS parent(id) CROSS JOIN LATERAL (
                         SELECT r.* FROM "{table}" r
                         WHERE r.customer_id = parent.id AND r.deleted_at IS NULL {position}
                         ORDER BY r.created_at DESC, r.id DESC LIMIT $2) page"#
                ),
                values,
            )
        }
        backend => {
            let mut inner = E::find()
                .filter(E::customer_column().is_in(customer_ids.to_vec()))
                .filter(E::deleted_column().is_null());
            if let Some((at, id)) = after {
                inner = inner.filter(
                    Condition::any()
                        .add(E::created_column().lt(at))
                        .add(Condition::all().add(E::created_column().eq(at)).add(E::id_column().lt(id))),
                );
            }
            let mut inner = inner.into_query();
            inner.expr_window_as(
                Func::cust(Alias::new("ROW_NUMBER")),
                WindowStatement::partition_by(E::customer_column())
                    .order_by(E::created_column(), Order::Desc)
                    .order_by(E::id_column(), Order::Desc)
                    .to_owned(),
                Alias::new("rn"),
            );
            let outer = Query::select()
                .column(Asterisk)
                .from_subquery(inner, Alias::new("ranked"))
                .and_where(Expr::col(Alias::new("rn")).lte(limit))
                .to_owned();
            backend.build(&outer)
        }
    };
    let rows = E::find().from_raw_sql(stmt).all(db).await?;
    let mut by_customer: HashMap<Uuid, Vec<E::Model>> = HashMap::new();
    for row in rows {
        by_customer.entry(E::customer_id(&row)).or_default().push(row);
    }
    for list in by_customer.values_mut() {
        list.sort_by(|a, b| E::created_at(b).cmp(&E::created_at(a)).then(E::id(b).cmp(&E::id(a))));
    }
    Ok(by_customer)
}

/// Live records per customer, counted in one query; unscoped like [`first_per_customer`].
pub async fn count_per_customer<E: CustomerRecord>(
    db: &DatabaseConnection,
    customer_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = E::find()
        .select_only()
        .column(E::customer_column())
        .column_as(E::id_column().count(), "n")
        .filter(E::customer_column().is_in(customer_ids.to_vec()))
        .filter(E::deleted_column().is_null())
        .group_by(E::customer_column())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Implements [`CustomerRecord`] for an entity with the shared column names.
macro_rules! customer_record {
    ($module:ident, $resource:expr) => {
        customer_record!($module, $resource, nothing_else);
    };
    ($module:ident, $resource:expr, $after_trash:path) => {
        impl CustomerRecord for entity::$module::Entity {
            const RESOURCE: Resource = $resource;
            fn id_column() -> Self::Column {
                entity::$module::Column::Id
            }
            fn customer_column() -> Self::Column {
                entity::$module::Column::CustomerId
            }
            fn deleted_column() -> Self::Column {
                entity::$module::Column::DeletedAt
            }
            fn created_column() -> Self::Column {
                entity::$module::Column::CreatedAt
            }
            fn id(m: &Self::Model) -> Uuid {
                m.id
            }
            fn customer_id(m: &Self::Model) -> Uuid {
                m.customer_id
            }
            fn created_at(m: &Self::Model) -> DateTime<Utc> {
                m.created_at
            }
            fn set_deleted(am: &mut Self::ActiveModel, at: Option<DateTime<Utc>>) {
                am.deleted_at = sea_orm::Set(at);
            }
            async fn after_trash(
                txn: &DatabaseTransaction,
                actor: &Actor,
                vault: &Keyring,
                row: &Self::Model,
            ) -> AppResult<()> {
                $after_trash(txn, actor, vault, row).await
            }
        }
    };
}

// A contact back from the trash must not share its ID number with a live one.
customer_record!(contact, Resource::Contact, crate::records::contact::after_trash);
// A deal in the trash no longer counts toward its customer's grades (and counts again
// when restored): the classification engine's finisher regrades at the end of the write.
customer_record!(deal, Resource::Deal);

/// The trash hook of records whose trash changes nothing else.
async fn nothing_else<M>(_txn: &DatabaseTransaction, _actor: &Actor, _vault: &Keyring, _row: &M) -> AppResult<()> {
    Ok(())
}
customer_record!(feedback, Resource::Feedback);
customer_record!(interaction, Resource::Interaction);
