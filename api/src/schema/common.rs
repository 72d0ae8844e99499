//! Shared GraphQL pieces: the request's Actor, paging, money, filters and connections.
use super::error::IntoGql;
use async_graphql::{
    Context, InputObject, InputType, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
};
use chrono::{DateTime, NaiveDate, Utc};
use service::access::Actor;
use service::access::list::ListQuery;
use service::error::{AppError, AppResult};
use service::kernel::pagination::{Page, PageArgs};
use uuid::Uuid;

/// The authenticated caller of this request.
pub fn actor<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Actor> {
    ctx.data_opt::<Actor>().ok_or_else(|| AppError::Unauthenticated("authentication required").gql_error())
}

/// The database of this schema.
pub fn db<'a>(ctx: &'a Context<'_>) -> &'a sea_orm::DatabaseConnection {
    &ctx.data_unchecked::<crate::state::AppState>().db
}

/// The server's shared state.
pub fn state<'a>(ctx: &'a Context<'_>) -> &'a crate::state::AppState {
    ctx.data_unchecked::<crate::state::AppState>()
}

/// Waits for a heavy read's turn (`service::access::heavy`): every resolver priced at
/// [`REPORT_COST`] holds one while it reads, on the connection it hands out ([`Heavy::db`]:
/// the heavy pool, at a lower OS priority).
///
/// # Errors
/// RATE_LIMITED when the share stays full.
pub async fn heavy<'a>(ctx: &'a Context<'_>, actor: &Actor) -> async_graphql::Result<Heavy<'a>> {
    // The request stops counting as interactive work while it waits and reads (heavy
    // reads on SQLite pause for interactive work: `kernel::interactive`).
    let aside = ctx.data_opt::<service::kernel::interactive::Ticket>().map(|t| t.step_aside());
    let permit = state(ctx).heavy.enter(actor.id()).await.map_err(|e| e.gql_error())?;
    Ok(Heavy { permit, main: db(ctx), _aside: aside })
}

/// A heavy read's turn and the connection it reads on.
pub struct Heavy<'a> {
    permit: service::access::heavy::HeavyPermit,
    main: &'a sea_orm::DatabaseConnection,
    _aside: Option<service::kernel::interactive::Aside>,
}

impl Heavy<'_> {
    pub fn db(&self) -> &sea_orm::DatabaseConnection {
        self.permit.db(self.main)
    }
}

/// Where the request came from (the client address the login back-off counts under), as
/// the HTTP layer determined it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

/// Parses a GraphQL `ID` holding a UUID.
pub fn parse_id(field: &str, id: &async_graphql::ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::invalid(field, "not a valid id"))
}

/// Paging arguments as the service wants them.
pub fn page_args(first: Option<i32>, after: Option<String>) -> PageArgs {
    PageArgs { first, after }
}

/// A GraphQL input as the JSON the services read (filters have the same shape in JSON,
/// see `service/src/kernel/filter.rs`).
pub fn to_json<T: InputType>(input: Option<T>) -> AppResult<Option<serde_json::Value>> {
    input.map(|v| v.to_value().into_json().map_err(AppError::internal)).transpose()
}

/// The service's list query from a connection field's arguments.
pub fn list_query<F: InputType, S>(
    first: Option<i32>,
    after: Option<String>,
    filter: Option<F>,
    order: Vec<(S, bool)>,
    deleted: bool,
) -> AppResult<ListQuery<S>> {
    Ok(ListQuery { filter: to_json(filter)?, order, deleted, page: page_args(first, after) })
}

/// Complexity of a report field (an aggregate over the caller's whole scope: reports,
/// compliance, and key lists on top of their page): with the default limit of 50,000, at
/// most 25 reports in one request.
pub const REPORT_COST: usize = 2_000;

/// Complexity of a bulk write: each record's write (a transaction of its own) weighs
/// [`BULK_RECORD_COST`] plus what is selected of it, counted up to [`BULK_SELECTION_MAX`].
/// With the default limit of 50,000 a request holds two full batches of 100, whatever it
/// selects, and not three (aliases cannot multiply them; `docs/partners.md`).
pub fn bulk_cost(records: usize, child: usize) -> usize {
    records.clamp(1, 100).saturating_mul(BULK_RECORD_COST + child.min(BULK_SELECTION_MAX))
}

/// What one record of a bulk write weighs before its selection.
pub const BULK_RECORD_COST: usize = 200;
/// The most a bulk record's selection adds to its weight.
pub const BULK_SELECTION_MAX: usize = 50;

/// Complexity of a list field: its page size times the cost of one node.
pub fn list_cost(first: Option<i32>, child: usize) -> usize {
    (first.unwrap_or(20).clamp(1, 100) as usize).saturating_mul(child.max(1))
}

/// A calendar date, ISO 8601 (YYYY-MM-DD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => service::kernel::parse_date(s)
                .map(Date)
                .map_err(|_| InputValueError::custom("expected a date YYYY-MM-DD")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

impl From<NaiveDate> for Date {
    fn from(d: NaiveDate) -> Self {
        Date(d)
    }
}

/// An amount of money: a decimal string in the currency's minor-unit precision.
#[derive(SimpleObject, Clone)]
pub struct Money {
    /// Decimal string, e.g. "80000.00"; never a float.
    pub amount: String,
    /// ISO 4217 code, e.g. CNY.
    pub currency: String,
}

impl Money {
    pub fn new(minor: i64, currency: &str) -> Self {
        Money { amount: service::kernel::money::format_minor(minor, currency), currency: currency.to_string() }
    }
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

pub fn page_info<T>(page: &Page<T>) -> PageInfo {
    PageInfo {
        has_next_page: page.has_next_page,
        has_previous_page: page.has_previous_page,
        start_cursor: page.edges.first().map(|(c, _)| c.encode()),
        end_cursor: page.edges.last().map(|(c, _)| c.encode()),
    }
}

/// Defines `XConnection` and `XEdge` for a node type.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ".")]
        pub struct $conn(pub ::service::kernel::pagination::Page<$node>);

        /// An edge borrowed from the page: nodes are not cloned to be served.
        pub struct $edge<'a> {
            cursor: &'a ::service::kernel::pagination::Cursor,
            node: &'a $node,
        }

        #[doc = concat!("One ", $what, " with its cursor.")]
        #[async_graphql::Object]
        impl $edge<'_> {
            /// Opaque cursor; pass as `after` to continue after this row.
            async fn cursor(&self) -> String {
                // Encoded only when asked for: most clients read the nodes alone.
                self.cursor.encode()
            }

            /// The record.
            async fn node(&self) -> &$node {
                self.node
            }
        }

        #[async_graphql::Object]
        impl $conn {
            /// The rows of this page.
            async fn edges(&self) -> Vec<$edge<'_>> {
                self.0.edges.iter().map(|(cursor, node)| $edge { cursor, node }).collect()
            }

            /// The nodes of this page, without cursors.
            async fn nodes(&self) -> Vec<&$node> {
                self.0.edges.iter().map(|(_, n)| n).collect()
            }

            /// Where this page stands.
            async fn page_info(&self) -> $crate::schema::common::PageInfo {
                $crate::schema::common::page_info(&self.0)
            }

            /// Number of rows matching the filter that the caller may read, all pages together.
            async fn total_count(&self) -> async_graphql::Result<i64> {
                use $crate::schema::error::ResultExt;
                (self.0.total_count)().await.map(|n| n as i64).gql()
            }
        }
    };
}
pub(crate) use connection;

/// Sort direction.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq, Default)]
pub enum SortDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// Filter on a text field.
#[derive(InputObject, Default)]
pub struct StringFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Equal to one of.
    #[graphql(name = "in")]
    pub in_: Option<Vec<String>>,
    /// Contains, ignoring case.
    pub contains: Option<String>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on a label matched whole (no substring search).
#[derive(InputObject, Default)]
pub struct LabelFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Equal to one of.
    #[graphql(name = "in")]
    pub in_: Option<Vec<String>>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on a whole number.
#[derive(InputObject, Default)]
pub struct IntFilter {
    /// Equal to.
    pub eq: Option<i32>,
    /// At least.
    pub gte: Option<i32>,
    /// At most.
    pub lte: Option<i32>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on an amount of money in one currency.
#[derive(InputObject)]
pub struct MoneyFilter {
    /// ISO 4217 code; amounts in other currencies do not match.
    #[graphql(default = "CNY")]
    pub currency: String,
    /// At least this decimal amount.
    pub gte: Option<String>,
    /// At most this decimal amount.
    pub lte: Option<String>,
}

/// Filter on an id.
#[derive(InputObject, Default)]
pub struct IdFilter {
    /// Equal to.
    pub eq: Option<async_graphql::ID>,
    /// Equal to one of.
    #[graphql(name = "in")]
    pub in_: Option<Vec<async_graphql::ID>>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on a point in time (UTC).
#[derive(InputObject, Default)]
pub struct DateTimeFilter {
    /// At or after.
    pub gte: Option<DateTime<Utc>>,
    /// At or before.
    pub lte: Option<DateTime<Utc>>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on a calendar date.
#[derive(InputObject, Default)]
pub struct DateFilter {
    /// On.
    pub eq: Option<Date>,
    /// On or after.
    pub gte: Option<Date>,
    /// On or before.
    pub lte: Option<Date>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// Filter on an enum field.
#[derive(InputObject)]
#[graphql(concrete(name = "CustomerKindFilter", params(super::enums::CustomerKind)))]
#[graphql(concrete(name = "LifecycleStageFilter", params(super::enums::LifecycleStage)))]
#[graphql(concrete(name = "TierFilter", params(super::enums::Tier)))]
#[graphql(concrete(name = "ImportanceFilter", params(super::enums::Importance)))]
#[graphql(concrete(name = "CustomerSourceFilter", params(super::enums::CustomerSource)))]
#[graphql(concrete(name = "ContactRoleFilter", params(super::enums::ContactRole)))]
#[graphql(concrete(name = "DealStageFilter", params(super::enums::DealStage)))]
#[graphql(concrete(name = "FeedbackKindFilter", params(super::enums::FeedbackKind)))]
#[graphql(concrete(name = "FeedbackChannelFilter", params(super::enums::FeedbackChannel)))]
#[graphql(concrete(name = "FeedbackStatusFilter", params(super::enums::FeedbackStatus)))]
#[graphql(concrete(name = "InteractionKindFilter", params(super::enums::InteractionKind)))]
#[graphql(concrete(name = "LevelFilter", params(super::enums::Level)))]
#[graphql(concrete(name = "RelationshipTypeFilter", params(super::enums::RelationshipType)))]
#[graphql(concrete(name = "TurnoverMarginClassFilter", params(super::enums::TurnoverMarginClass)))]
pub struct EnumFilter<T: async_graphql::InputType + async_graphql::EnumType> {
    /// Equal to.
    pub eq: Option<T>,
    /// Equal to one of.
    #[graphql(name = "in")]
    pub in_: Option<Vec<T>>,
    /// Is (true) or is not (false) empty.
    pub is_null: Option<bool>,
}

/// An amount in the base currency (the caller decided it may be shown), or null.
pub async fn base_money(ctx: &Context<'_>, minor: Option<i64>) -> async_graphql::Result<Option<Money>> {
    match minor {
        Some(m) => {
            let (policy, _) = super::loaders::policy(ctx).await?;
            Ok(Some(Money::new(m, &policy.base_currency)))
        }
        _ => Ok(None),
    }
}
