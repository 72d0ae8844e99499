//! Listing a resource: what the caller asked for (filter, order, trash, page) and how a
//! resource declares what it can be filtered and sorted by.
use crate::access::{Actor, FieldAccess};
use crate::error::{AppError, AppResult};
use crate::kernel::filter::{self, Field};
use crate::kernel::pagination::{PageArgs, SortKey};
use entity::customer;
use entity::enums::Resource;
use sea_orm::ColumnTrait;
use sea_orm::sea_query::Query;
use sea_orm::{Condition, EntityTrait};
use serde_json::Value as Json;

/// Most keys an `orderBy` may list: a page's condition grows with the square of them.
pub const MAX_SORT_KEYS: usize = 5;

/// A resource that lists: its filterable fields and its sort keys.
pub trait Listing: EntityTrait {
    /// The sortable fields.
    type SortField: Clone + Send + Sync;
    /// The order when none is asked for: (field, descending).
    const DEFAULT_SORT: (Self::SortField, bool);
    /// Its fields: their groups confine filters and sort keys.
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue;
    /// What types its custom fields ([`filter::NoCustom`] for none).
    type Custom: filter::CustomFields;
    /// The filterable fields.
    const FILTER: &'static [Field<Self::Column>];
    /// The column naming the customer a record hangs off (`None` for customers).
    const CUSTOMER_COLUMN: Option<Self::Column>;
    /// The keyset sort key of a field (`custom`: customers' custom fields).
    ///
    /// # Errors
    /// VALIDATION for a field the list cannot be sorted by.
    fn sort_key(field: &Self::SortField, descending: bool, custom: Option<&Self::Custom>) -> AppResult<SortKey<Self>>;
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

/// The rows of `E` on which the field group `group` shows to `actor`, as SQL; FORBIDDEN
/// (naming `field`) when it shows on none.
///
/// # Errors
/// FORBIDDEN.
pub fn group_condition<E: Listing>(
    actor: &Actor,
    group: Resource,
    over: Resource,
    field: &str,
) -> AppResult<Condition> {
    let on_customers = match actor.field_access(group, over) {
        FieldAccess::Every => return Ok(Condition::all()),
        FieldAccess::Never => return Err(AppError::Forbidden(format!("your role may not see {field}"))),
        FieldAccess::Some(reach) => reach.condition(customer::Column::OwnerId, customer::Column::DepartmentId),
    };
    Ok(match E::CUSTOMER_COLUMN {
        None => on_customers,
        Some(column) => {
            let mut customers = Query::select();
            customers.column((customer::Entity, customer::Column::Id)).from(customer::Entity).cond_where(on_customers);
            Condition::all().add(column.in_subquery(customers))
        }
    })
}

/// The filter's SQL condition and the sort keys of `query`, checked for `actor` reading
/// records of `over`. Sorting by a field of a group confines the list to the rows where
/// the group shows, as filtering by one does: an order must not rank hidden values.
///
/// # Errors
/// VALIDATION (filter), FORBIDDEN (filtering or sorting by a group the caller sees nowhere).
pub fn plan<E: Listing>(
    actor: &Actor,
    over: Resource,
    query: &ListQuery<E::SortField>,
    custom: Option<&E::Custom>,
) -> AppResult<(Condition, Vec<SortKey<E>>)> {
    if query.order.len() > MAX_SORT_KEYS {
        return Err(AppError::invalid("orderBy", format!("at most {MAX_SORT_KEYS} sort keys")));
    }
    let guard = |field: &str| {
        E::CATALOGUE.group(field).map(|group| group_condition::<E>(actor, group, over, field)).transpose()
    };
    // Empty when the caller's rows are all listed: no filter, no sort key confined.
    let mut condition = Condition::all();
    let filter =
        filter::condition(&guard, E::FILTER, query.filter.as_ref(), custom.map(|c| c as &dyn filter::CustomFields))?;
    if !filter.is_empty() {
        condition = condition.add(filter);
    }
    let keys: Vec<SortKey<E>> = if query.order.is_empty() {
        vec![E::sort_key(&E::DEFAULT_SORT.0, E::DEFAULT_SORT.1, custom)?]
    } else {
        query.order.iter().map(|(f, d)| E::sort_key(f, *d, custom)).collect::<AppResult<_>>()?
    };
    for key in &keys {
        if let Some(rows) = guard(&key.name)? {
            condition = condition.add(rows);
        }
    }
    Ok((condition, keys))
}
