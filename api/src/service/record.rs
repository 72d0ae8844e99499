//! What contacts, deals, feedback and interactions share: they hang off a customer,
//! are scoped through it, carry a `version` and are soft-deleted. The generic read,
//! write, delete and restore paths live here once.
use super::pagination::{Page, PageArgs, SortKey, paginate};
use super::{audit, db::begin_write, now};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use entity::customer;
use entity::enums::{Action, Resource};
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QuerySelect, QueryTrait,
};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// A record that belongs to a customer.
pub trait CustomerRecord:
    EntityTrait<
        Model: Serialize + Clone + Send + Sync + IntoActiveModel<Self::ActiveModel>,
        ActiveModel: ActiveModelTrait<Entity = Self> + Send,
    >
{
    /// Permission resource.
    const RESOURCE: Resource;
    /// Table name, used in the audit log and error messages.
    const NAME: &'static str;

    fn id_column() -> Self::Column;
    fn customer_column() -> Self::Column;
    fn version_column() -> Self::Column;
    fn deleted_column() -> Self::Column;
    fn created_column() -> Self::Column;

    fn id(m: &Self::Model) -> Uuid;
    fn customer_id(m: &Self::Model) -> Uuid;
    fn version(m: &Self::Model) -> i32;
    fn created_at(m: &Self::Model) -> DateTime<Utc>;

    /// Sets version and updated_at on a changed row.
    fn touch(am: &mut Self::ActiveModel, version: i32, at: DateTime<Utc>);
    /// Sets or clears deleted_at.
    fn set_deleted(am: &mut Self::ActiveModel, at: Option<DateTime<Utc>>);
}

fn not_found<E: CustomerRecord>() -> AppError {
    AppError::NotFound(E::NAME)
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

/// Records the caller may read matching `filter`; the trash with `deleted`.
///
/// # Errors
/// VALIDATION (paging).
pub async fn list<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    filter: Condition,
    deleted: bool,
    keys: &[SortKey<E>],
    args: &PageArgs,
) -> AppResult<Page<E::Model>> {
    let live = if deleted { E::deleted_column().is_not_null() } else { E::deleted_column().is_null() };
    let q = E::find().filter(read_condition::<E>(actor)).filter(live).filter(filter);
    paginate(db, q, keys, E::id_column(), E::id, args).await
}

/// Checks that the caller may add a record of `E` to a customer: NOT_FOUND if the
/// customer is not readable, FORBIDDEN if the create scope does not cover it.
pub async fn check_parent<E: CustomerRecord>(
    txn: &impl ConnectionTrait,
    actor: &Actor,
    customer_id: Uuid,
) -> AppResult<customer::Model> {
    let readable = customer::Entity::find_by_id(customer_id)
        .filter(customer::Column::DeletedAt.is_null())
        .filter(
            Condition::any()
                .add(actor.customer_condition(Resource::Customer, Action::Read))
                .add(actor.customer_condition(E::RESOURCE, Action::Read)),
        )
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("customer"))?;
    actor.require(E::RESOURCE, Action::Create)?;
    let allowed = customer::Entity::find_by_id(customer_id)
        .filter(actor.customer_condition(E::RESOURCE, Action::Create))
        .count(txn)
        .await?;
    if allowed == 0 {
        return Err(AppError::Forbidden(format!("you may not add a {} to this customer", E::NAME)));
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
        return Err(AppError::Forbidden(format!("you may not {} this {}", action.as_str().to_lowercase(), E::NAME)));
    }
    if let Some(v) = version {
        if v != E::version(&row) {
            return Err(AppError::Conflict(format!(
                "{} was changed meanwhile (version {} is current, you sent {v})",
                E::NAME,
                E::version(&row)
            )));
        }
    }
    Ok(row)
}

/// Writes a changed row guarded by its version, and its audit row.
pub async fn save<E: CustomerRecord>(
    txn: &DatabaseTransaction,
    actor: &Actor,
    action: &str,
    old: &E::Model,
    mut am: E::ActiveModel,
) -> AppResult<E::Model> {
    E::touch(&mut am, E::version(old) + 1, now());
    let res = E::update_many()
        .set(am)
        .filter(E::id_column().eq(E::id(old)))
        .filter(E::version_column().eq(E::version(old)))
        .exec(txn)
        .await?;
    if res.rows_affected != 1 {
        return Err(AppError::Conflict(format!("{} was changed meanwhile", E::NAME)));
    }
    let new = E::find().filter(E::id_column().eq(E::id(old))).one(txn).await?.ok_or_else(not_found::<E>)?;
    audit::record(txn, Some(actor.id()), action, E::NAME, E::id(old), Some(old), Some(&new)).await?;
    Ok(new)
}

/// Runs `f` in a write transaction, committing on success.
pub async fn write<T, F>(db: &DatabaseConnection, f: F) -> AppResult<T>
where
    F: AsyncFnOnce(&DatabaseTransaction) -> AppResult<T>,
{
    let txn = begin_write(db).await?;
    match f(&txn).await {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            txn.rollback().await?;
            Err(e)
        }
    }
}

/// Soft-deletes a record.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, CONFLICT.
pub async fn delete<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    version: Option<i32>,
) -> AppResult<E::Model> {
    write(db, async |txn| delete_in::<E>(txn, actor, id, version).await).await
}

/// Soft-deletes a record inside the caller's transaction.
pub async fn delete_in<E: CustomerRecord>(
    txn: &DatabaseTransaction,
    actor: &Actor,
    id: Uuid,
    version: Option<i32>,
) -> AppResult<E::Model> {
    let old = load_for::<E>(txn, actor, id, Action::Delete, false, version).await?;
    let mut am = old.clone().into_active_model();
    E::set_deleted(&mut am, Some(now()));
    save::<E>(txn, actor, "delete", &old, am).await
}

/// Restores a soft-deleted record.
///
/// # Errors
/// NOT_FOUND (nothing in the trash with that id in scope), FORBIDDEN.
pub async fn restore<E: CustomerRecord>(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<E::Model> {
    write(db, async |txn| restore_in::<E>(txn, actor, id).await).await
}

/// Restores a record inside the caller's transaction.
pub async fn restore_in<E: CustomerRecord>(txn: &DatabaseTransaction, actor: &Actor, id: Uuid) -> AppResult<E::Model> {
    let old = load_for::<E>(txn, actor, id, Action::Delete, true, None).await?;
    let mut am = old.clone().into_active_model();
    E::set_deleted(&mut am, None);
    save::<E>(txn, actor, "restore", &old, am).await
}

/// The first `first + 1` live, readable records of each customer, newest first,
/// optionally after a (created_at, id) position: one query for any number of customers.
pub async fn first_per_customer<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    customer_ids: &[Uuid],
    first: u64,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> AppResult<HashMap<Uuid, Vec<E::Model>>> {
    let mut inner = E::find()
        .filter(E::customer_column().is_in(customer_ids.to_vec()))
        .filter(E::deleted_column().is_null())
        .filter(read_condition::<E>(actor));
    if let Some((at, id)) = after {
        inner = inner.filter(
            Condition::any()
                .add(E::created_column().lt(at))
                .add(Condition::all().add(E::created_column().eq(at)).add(E::id_column().lt(id))),
        );
    }
    let inner = inner
        .expr_as(Expr::cust("ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created_at DESC, id DESC)"), "rn")
        .into_query();
    let outer = Query::select()
        .column(Asterisk)
        .from_subquery(inner, Alias::new("ranked"))
        .and_where(Expr::col(Alias::new("rn")).lte(first as i64 + 1))
        .to_owned();
    let stmt = db.get_database_backend().build(&outer);
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

/// Live readable records per customer, counted in one query.
pub async fn count_per_customer<E: CustomerRecord>(
    db: &DatabaseConnection,
    actor: &Actor,
    customer_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = E::find()
        .select_only()
        .column(E::customer_column())
        .column_as(E::id_column().count(), "n")
        .filter(E::customer_column().is_in(customer_ids.to_vec()))
        .filter(E::deleted_column().is_null())
        .filter(read_condition::<E>(actor))
        .group_by(E::customer_column())
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Implements [`CustomerRecord`] for an entity with the shared column names.
macro_rules! customer_record {
    ($module:ident, $resource:expr, $name:literal) => {
        impl CustomerRecord for entity::$module::Entity {
            const RESOURCE: Resource = $resource;
            const NAME: &'static str = $name;
            fn id_column() -> Self::Column {
                entity::$module::Column::Id
            }
            fn customer_column() -> Self::Column {
                entity::$module::Column::CustomerId
            }
            fn version_column() -> Self::Column {
                entity::$module::Column::Version
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
            fn version(m: &Self::Model) -> i32 {
                m.version
            }
            fn created_at(m: &Self::Model) -> DateTime<Utc> {
                m.created_at
            }
            fn touch(am: &mut Self::ActiveModel, version: i32, at: DateTime<Utc>) {
                am.version = sea_orm::Set(version);
                am.updated_at = sea_orm::Set(at);
            }
            fn set_deleted(am: &mut Self::ActiveModel, at: Option<DateTime<Utc>>) {
                am.deleted_at = sea_orm::Set(at);
            }
        }
    };
}

customer_record!(contact, Resource::Contact, "contact");
customer_record!(deal, Resource::Deal, "deal");
customer_record!(feedback, Resource::Feedback, "feedback");
customer_record!(interaction, Resource::Interaction, "interaction");
