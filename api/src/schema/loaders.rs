//! Per-request DataLoaders: a nested field of many parents loads in one query, and
//! scoped loads carry the request's Actor so batching never widens what is visible. The
//! nested pages of a customer (`NestedKey`, `CountKey`) are the exception: only
//! [`nested_page`] makes their keys, after checking the caller's grant against the
//! customer in hand, so their queries carry no scope of their own. That customer is the
//! one the request read (or a live event's snapshot): its nested lists follow the same
//! snapshot as its own fields.
use super::department::Department;
use super::error::IntoGql;
use super::user::User;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Result};
use chrono::{DateTime, Utc};
use entity::enums::{Action, Resource};
use entity::{customer, deal_line_item, department, user};
use sea_orm::DatabaseConnection;
use service::access::{Actor, FieldAccess, Placement};
use service::error::AppError;
use service::kernel::pagination::{Cursor, SortValue};
use service::records as record;
use service::records::CustomerRecord;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use uuid::Uuid;

/// The loaders of one request (or one WebSocket connection).
pub struct Loaders {
    pub db: DatabaseConnection,
    pub actor: Option<Actor>,
    /// Whether settings are read once (a request) or at each use (a subscription, which
    /// may run for days while an administrator changes them).
    cache: bool,
    /// The classification policy.
    policy: tokio::sync::OnceCell<(service::classification::Policy, i32)>,
    /// The category catalogue (field templates).
    catalogue: tokio::sync::OnceCell<Arc<service::category::Catalogue>>,
}

/// What the request data holds.
pub type RequestLoader = Arc<DataLoader<Loaders>>;

/// Shared error type of loaders (DataLoader needs Clone).
pub type LoadError = Arc<AppError>;

fn err(e: impl Into<AppError>) -> LoadError {
    Arc::new(e.into())
}

impl Loaders {
    fn actor(&self) -> Result<&Actor, LoadError> {
        self.actor.as_ref().ok_or_else(|| Arc::new(AppError::Unauthenticated("authentication required")))
    }
}

/// A new loader for a request.
pub fn new_loader(db: DatabaseConnection, actor: Option<Actor>) -> RequestLoader {
    let loaders = Loaders { db, actor, cache: true, policy: Default::default(), catalogue: Default::default() };
    Arc::new(DataLoader::new(loaders, tokio::spawn))
}

/// A new loader for a subscription: it caches nothing across events.
pub fn stream_loader(db: DatabaseConnection, actor: Option<Actor>) -> RequestLoader {
    let loaders = Loaders { db, actor, cache: false, policy: Default::default(), catalogue: Default::default() };
    Arc::new(DataLoader::new(loaders, tokio::spawn))
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepartmentKey(pub Uuid);
/// A customer as the actor may read it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CustomerKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineItemsKey(pub Uuid);
/// The marketing consents of a customer (asked only by a customer the caller reads).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsentsKey(pub Uuid);
/// Where a customer sits (owner, department), unscoped: only asked for a customer whose
/// record the caller already reads, to decide which field groups show on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlacementKey(pub Uuid);
/// The newest `first` classification changes of a customer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryKey {
    pub customer: Uuid,
    pub first: u64,
}

/// One page of a customer's records of type `E`, newest first. Unscoped: made only by
/// [`nested_page`], after the read grant was checked against the customer.
pub struct NestedKey<E> {
    pub customer: Uuid,
    pub first: u64,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    _e: PhantomData<fn() -> E>,
}

impl<E> NestedKey<E> {
    fn new(customer: Uuid, first: u64, after: Option<(DateTime<Utc>, Uuid)>) -> Self {
        NestedKey { customer, first, after, _e: PhantomData }
    }
}

impl<E> Clone for NestedKey<E> {
    fn clone(&self) -> Self {
        NestedKey { customer: self.customer, first: self.first, after: self.after, _e: PhantomData }
    }
}
impl<E> PartialEq for NestedKey<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.customer, self.first, self.after) == (o.customer, o.first, o.after)
    }
}
impl<E> Eq for NestedKey<E> {}
impl<E> Hash for NestedKey<E> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (self.customer, self.first, self.after).hash(h)
    }
}

/// A record of type `E` by id, as the actor may read it.
pub struct RecordKey<E>(pub Uuid, PhantomData<fn() -> E>);

impl<E> RecordKey<E> {
    pub fn new(id: Uuid) -> Self {
        RecordKey(id, PhantomData)
    }
}
impl<E> Clone for RecordKey<E> {
    fn clone(&self) -> Self {
        RecordKey(self.0, PhantomData)
    }
}
impl<E> PartialEq for RecordKey<E> {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl<E> Eq for RecordKey<E> {}
impl<E> Hash for RecordKey<E> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

/// How many live records of type `E` a customer has; unscoped like [`NestedKey`].
pub struct CountKey<E>(pub Uuid, PhantomData<fn() -> E>);

impl<E> CountKey<E> {
    fn new(customer: Uuid) -> Self {
        CountKey(customer, PhantomData)
    }
}
impl<E> Clone for CountKey<E> {
    fn clone(&self) -> Self {
        CountKey(self.0, PhantomData)
    }
}
impl<E> PartialEq for CountKey<E> {
    fn eq(&self, o: &Self) -> bool {
        self.0 == o.0
    }
}
impl<E> Eq for CountKey<E> {}
impl<E> Hash for CountKey<E> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}

impl Loader<UserKey> for Loaders {
    type Value = user::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, user::Model>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = service::access::user::by_ids(&self.db, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (UserKey(r.id), r)).collect())
    }
}

impl Loader<DepartmentKey> for Loaders {
    type Value = department::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[DepartmentKey]) -> Result<HashMap<DepartmentKey, department::Model>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = service::access::department::by_ids(&self.db, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (DepartmentKey(r.id), r)).collect())
    }
}

impl Loader<CustomerKey> for Loaders {
    type Value = customer::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[CustomerKey]) -> Result<HashMap<CustomerKey, customer::Model>, LoadError> {
        let actor = self.actor()?;
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = service::customer::readable_by_ids(&self.db, actor, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (CustomerKey(r.id), r)).collect())
    }
}

impl Loader<ConsentsKey> for Loaders {
    type Value = Vec<entity::consent::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[ConsentsKey]) -> Result<HashMap<ConsentsKey, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut map = service::personal::consents_of(&self.db, ids.clone()).await.map_err(err)?;
        Ok(ids.into_iter().map(|id| (ConsentsKey(id), map.remove(&id).unwrap_or_default())).collect())
    }
}

impl Loader<PlacementKey> for Loaders {
    type Value = Placement;
    type Error = LoadError;
    async fn load(&self, keys: &[PlacementKey]) -> Result<HashMap<PlacementKey, Placement>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = service::customer::placements(&self.db, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|(id, p)| (PlacementKey(id), p)).collect())
    }
}

impl Loader<LineItemsKey> for Loaders {
    type Value = Vec<deal_line_item::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[LineItemsKey]) -> Result<HashMap<LineItemsKey, Self::Value>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let map = service::records::deal::line_items(&self.db, &ids).await.map_err(err)?;
        Ok(ids.into_iter().map(|id| (LineItemsKey(id), map.get(&id).cloned().unwrap_or_default())).collect())
    }
}

impl Loader<HistoryKey> for Loaders {
    type Value = Vec<entity::classification_history::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[HistoryKey]) -> Result<HashMap<HistoryKey, Self::Value>, LoadError> {
        // One query per distinct `first`, however many customers ask.
        let mut groups: HashMap<u64, Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups.entry(k.first).or_default().push(k.customer);
        }
        let mut out = HashMap::new();
        for (first, customers) in groups {
            let mut rows = service::classification::history_of(&self.db, &customers, first).await.map_err(err)?;
            for customer in customers {
                out.insert(HistoryKey { customer, first }, rows.remove(&customer).unwrap_or_default());
            }
        }
        Ok(out)
    }
}

/// Where a nested page starts: after this (created_at, id).
type Position = (DateTime<Utc>, Uuid);

impl<E: CustomerRecord> Loader<NestedKey<E>> for Loaders {
    type Value = Vec<E::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[NestedKey<E>]) -> Result<HashMap<NestedKey<E>, Self::Value>, LoadError> {
        // One query per distinct page request, however many customers ask for it.
        let mut groups: HashMap<(u64, Option<Position>), Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups.entry((k.first, k.after)).or_default().push(k.customer);
        }
        let mut out = HashMap::new();
        for ((first, after), customers) in groups {
            let mut rows = record::first_per_customer::<E>(&self.db, &customers, first, after).await.map_err(err)?;
            for c in customers {
                out.insert(NestedKey::new(c, first, after), rows.remove(&c).unwrap_or_default());
            }
        }
        Ok(out)
    }
}

impl<E: CustomerRecord> Loader<RecordKey<E>> for Loaders {
    type Value = E::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[RecordKey<E>]) -> Result<HashMap<RecordKey<E>, E::Model>, LoadError> {
        let actor = self.actor()?;
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = record::readable_by_ids::<E>(&self.db, actor, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (RecordKey::new(E::id(&r)), r)).collect())
    }
}

impl<E: CustomerRecord> Loader<CountKey<E>> for Loaders {
    type Value = i64;
    type Error = LoadError;
    async fn load(&self, keys: &[CountKey<E>]) -> Result<HashMap<CountKey<E>, i64>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let counts = record::count_per_customer::<E>(&self.db, &ids).await.map_err(err)?;
        Ok(ids.into_iter().map(|id| (CountKey::new(id), counts.get(&id).copied().unwrap_or(0))).collect())
    }
}

/// The request's loader.
pub fn loader(ctx: &Context<'_>) -> RequestLoader {
    ctx.data_unchecked::<RequestLoader>().clone()
}

/// Turns a loader error into a GraphQL error with its code.
pub fn unshare(e: LoadError) -> async_graphql::Error {
    e.gql_error()
}

/// The classification policy, read at most once per request (for subscriptions, as it is
/// now).
pub async fn policy(ctx: &Context<'_>) -> Result<(service::classification::Policy, i32)> {
    let loader = loader(ctx);
    let inner = loader.loader();
    let read = || service::classification::policy(&inner.db);
    if inner.cache { inner.policy.get_or_try_init(read).await.cloned() } else { read().await }
        .map_err(|e| e.gql_error())
}

/// The category catalogue, read at most once per request (for subscriptions, as it is
/// now).
pub async fn catalogue(ctx: &Context<'_>) -> Result<Arc<service::category::Catalogue>> {
    let loader = loader(ctx);
    let inner = loader.loader();
    let read = async || service::category::Catalogue::load(&inner.db).await.map(Arc::new);
    if inner.cache { inner.catalogue.get_or_try_init(read).await.cloned() } else { read().await }
        .map_err(|e| e.gql_error())
}

/// A staff member by id (staff names and departments are visible to colleagues).
pub async fn user(ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
    loader(ctx).load_one(UserKey(id)).await.map(|u| u.map(User)).map_err(unshare)
}

/// Whether the field group `group` shows on a record of `over` that hangs off the
/// customer `customer` (a contact's phone, a deal's amount): the group's grant applied to
/// where that customer sits. Loads the placement only when the grant is partial.
pub async fn shows_under(ctx: &Context<'_>, group: Resource, over: Resource, customer: Uuid) -> Result<bool> {
    let Some(actor) = ctx.data_opt::<Actor>() else { return Ok(false) };
    // `Actor::sees`, with the customer's placement loaded only when the answer needs it.
    match actor.field_access(group, over) {
        FieldAccess::Every => Ok(true),
        FieldAccess::Never => Ok(false),
        access => {
            let placement = loader(ctx).load_one(PlacementKey(customer)).await.map_err(unshare)?;
            Ok(placement.is_some_and(|p| access.admits(p)))
        }
    }
}

/// Whether the field group `group` shows on the customer `c` for the caller.
pub fn shows(ctx: &Context<'_>, group: Resource, c: &customer::Model) -> bool {
    ctx.data_opt::<Actor>().is_some_and(|a| a.sees(group, Resource::Customer, c.into()))
}

/// Whether field `name` of the customer `c` shows to the caller (its group is the
/// customer catalogue's; a field in none shows with the row).
pub fn shows_field(ctx: &Context<'_>, name: &str, c: &customer::Model) -> bool {
    service::catalogue::CUSTOMER.group(name).is_none_or(|group| shows(ctx, group, c))
}

/// A department by id.
pub async fn department(ctx: &Context<'_>, id: Uuid) -> Result<Option<Department>> {
    loader(ctx).load_one(DepartmentKey(id)).await.map(|d| d.map(Department)).map_err(unshare)
}

/// A customer by id, if the caller may read it.
pub async fn customer(ctx: &Context<'_>, id: Uuid) -> Result<Option<super::customer::Customer>> {
    loader(ctx).load_one(CustomerKey(id)).await.map(|c| c.map(super::customer::Customer)).map_err(unshare)
}

/// A contact by id, if the caller may read it.
pub async fn contact(ctx: &Context<'_>, id: Uuid) -> Result<Option<super::contact::Contact>> {
    loader(ctx)
        .load_one(RecordKey::<entity::contact::Entity>::new(id))
        .await
        .map(|c| c.map(super::contact::Contact))
        .map_err(unshare)
}

/// The order of a nested list of `E`, newest first: (created_at, id) descending.
fn nested_order<E: CustomerRecord>() -> String {
    format!("{}:nested:createdAt-,id-", E::default().table_name())
}

/// Cursor of a nested list: the (created_at, id) of the last row.
fn nested_cursor<E: CustomerRecord>(at: DateTime<Utc>, id: Uuid) -> Cursor {
    Cursor::After { v: vec![SortValue::Time(at)], i: id, o: nested_order::<E>() }
}

/// Reads a nested-list cursor.
fn parse_nested_cursor<E: CustomerRecord>(s: &str) -> Result<(DateTime<Utc>, Uuid), AppError> {
    let (v, id) = Cursor::keyset(s, &nested_order::<E>(), 1)?;
    match v.as_slice() {
        [SortValue::Time(at)] => Ok((*at, id)),
        _ => Err(AppError::invalid("after", "not a cursor of this list")),
    }
}

/// A customer's records of type `E` as a page: batched rows and a batched, lazy count.
///
/// The caller's read grant on `E` is checked against the customer in hand, the way
/// `Actor::child_condition` would check it in SQL: a customer outside that grant (or
/// deleted) shows an empty list, and the batched queries need no scope of their own.
pub async fn nested_page<E: CustomerRecord>(
    ctx: &Context<'_>,
    parent: &customer::Model,
    first: Option<i32>,
    after: Option<String>,
) -> Result<service::kernel::pagination::Page<E::Model>, AppError> {
    let first = service::kernel::pagination::page_size(first)?;
    let after_pos = after.as_deref().map(parse_nested_cursor::<E>).transpose()?;
    let actor = ctx.data_opt::<Actor>().ok_or(AppError::Unauthenticated("authentication required"))?;
    if !actor.may(E::RESOURCE, Action::Read, parent) {
        return Ok(service::kernel::pagination::Page::empty());
    }
    let customer = parent.id;
    let loader = loader(ctx);
    let mut rows = loader
        .load_one(NestedKey::<E>::new(customer, first, after_pos))
        .await
        .map_err(|e| (*e).clone())?
        .unwrap_or_default();
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(first as usize);
    let edges = rows.into_iter().map(|r| (nested_cursor::<E>(E::created_at(&r), E::id(&r)), r)).collect();
    let total_count: service::kernel::pagination::TotalCount = Arc::new(move || {
        let loader = loader.clone();
        Box::pin(async move {
            loader.load_one(CountKey::<E>::new(customer)).await.map(|n| n.unwrap_or(0) as u64).map_err(|e| (*e).clone())
        })
    });
    Ok(service::kernel::pagination::Page { edges, has_next_page, has_previous_page: after.is_some(), total_count })
}
