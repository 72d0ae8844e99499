//! Listing a resource: what the caller asked for (filter, order, trash, page) and how a
//! resource declares what it can be filtered and sorted by.
use super::filter::{self, Field};
use super::pagination::{PageArgs, SortKey};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use sea_orm::{Condition, EntityTrait};
use serde_json::Value as Json;

/// A resource that lists: its filterable fields and its sort keys.
pub trait Listing: EntityTrait {
    /// The sortable fields.
    type SortField: Copy + Send + Sync;
    /// The order when none is asked for: (field, descending).
    const DEFAULT_SORT: (Self::SortField, bool);
    /// The filterable fields.
    const FILTER: &'static [Field<Self::Column>];
    /// The keyset sort key of a field.
    fn sort_key(field: Self::SortField, descending: bool) -> SortKey<Self>;
}

/// What a caller asks of a list.
#[derive(Debug, Clone)]
pub struct ListQuery<S> {
    /// A filter in the shape of the GraphQL `XFilter` input (see [`filter`]).
    pub filter: Option<Json>,
    /// Sort keys in order, each (field, descending); rows that tie are ordered by id.
    pub order: Vec<(S, bool)>,
    /// The trash instead of the live rows.
    pub deleted: bool,
    pub page: PageArgs,
}

impl<S> Default for ListQuery<S> {
    fn default() -> Self {
        ListQuery { filter: None, order: Vec::new(), deleted: false, page: PageArgs::default() }
    }
}

/// The filter's SQL condition and the sort keys of `query`, checked for `actor`.
///
/// # Errors
/// VALIDATION (filter), FORBIDDEN (filtering or sorting by amounts without the right to
/// see them).
pub fn plan<E: Listing>(actor: &Actor, query: &ListQuery<E::SortField>) -> AppResult<(Condition, Vec<SortKey<E>>)> {
    let condition = filter::condition(actor, E::FILTER, query.filter.as_ref())?;
    let keys: Vec<SortKey<E>> = if query.order.is_empty() {
        vec![E::sort_key(E::DEFAULT_SORT.0, E::DEFAULT_SORT.1)]
    } else {
        query.order.iter().map(|(f, d)| E::sort_key(*f, *d)).collect()
    };
    if let Some(key) = keys.iter().find(|k| k.amount)
        && !actor.sees_deal_amounts()
    {
        return Err(AppError::Forbidden(format!("your role may not sort by {}", key.name)));
    }
    Ok((condition, keys))
}
