//! The compiled read path (PostgreSQL): a GraphQL selection over customers and their
//! contacts and deals answered by one SQL statement that builds the answer's JSON inside
//! the database (`json_build_object`, `array_to_json(ARRAY(...))`), passed to the client as
//! it comes.
//!
//! The API turns a selection into [`Pick`]s only when every part of it is one this module
//! answers (`api/src/schema/compiled.rs`); any other selection takes the ordinary path. The
//! rules are the ordinary path's, taken from the same places, so that the two cannot drift:
//! - which customers: `customer::get_condition` and `customer::list_select` (filter, sort
//!   keys, trash) with [`Actor::customer_condition`], paged by `pagination::page_select`
//!   (order, cursor, page size, a sales rep's two parts);
//! - a nested list: the rule of [`Actor::may`] on the customer (live, inside the list's own
//!   read grant) and the records `records::first_per_customer` reads (live, newest first);
//! - a field group: [`Actor::field_access`] for the record's resource and the group the
//!   record's catalogue names, as `CASE WHEN <the group's reach over the customer> THEN
//!   <column> END`, which is [`Actor::sees`] for every row at once.
//!
//! A statement is a function of the caller's rights ([`Actor::rights`]), the selection
//! and the list's query, built once and kept by [`Compiler`]: the next request like it
//! binds the kept text and values (a lookup puts its id in the kept statement's place for
//! it). Nothing that goes into a statement may read the clock or the database; a list
//! whose filter or sort names custom fields (typed by the stored categories) is built
//! every time.
//!
//! `docs/architecture.md` ("The compiled read path") says when the ordinary path answers.
use crate::access::list::ListQuery;
use crate::access::{Actor, FieldAccess};
use crate::catalogue::{CONTACT, CUSTOMER, DEAL, RecordCatalogue};
use crate::customer::{self as customers, SortField};
use crate::error::{AppError, AppResult};
use crate::kernel::lane::Lane;
use crate::kernel::pagination::page_select;
use crate::records::CustomerRecord;
use entity::enums::{Action, Resource};
use entity::{contact, customer, deal};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, ExprTrait, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, EntityName, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select,
};
use std::sync::{Arc, LazyLock, Mutex};
use uuid::Uuid;

mod statement;
use statement::{Built, Kept, limits_inline};

/// Most fields of one object: `json_build_object` takes at most 100 arguments, a key and a
/// value per field.
pub const MAX_FIELDS: usize = 50;

/// Most bound values of one statement: well under PostgreSQL's 65,535, which a selection
/// with many masked fields and nested lists over a large department subtree could reach
/// (each renders the reach again); such a selection takes the ordinary path.
const MAX_VALUES: usize = 10_000;

/// The compiled path: its lane of connections and the statements it built lately.
pub struct Compiler {
    lane: Lane,
    kept: Mutex<Kept>,
}

/// The id a lookup's statement is built with, found among the built values and replaced
/// there by each request's: drawn at random, so no caller's or scope's value equals it.
static LOOKED_UP: LazyLock<Uuid> = LazyLock::new(Uuid::new_v4);

impl Compiler {
    pub fn new(lane: Lane) -> Compiler {
        Compiler { lane, kept: Mutex::new(Kept::new()) }
    }

    fn kept(&self, key: &str) -> Option<Arc<Built>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).get(key)
    }

    /// Builds the statement of `select` (its limits inline), keeping it under `key` when
    /// there is one and it is not too large (nor a lookup's without its `id`).
    fn build(&self, key: Option<String>, select: &SelectStatement, id: Option<Uuid>) -> Arc<Built> {
        let statement = limits_inline(DatabaseBackend::Postgres.build(select));
        let values = statement.values.as_ref().map_or(&[][..], |v| &v.0[..]);
        let id_at = match id {
            Some(id) => values
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == sea_orm::Value::Uuid(Some(id)))
                .map(|(i, _)| i)
                .collect(),
            None => Vec::new(),
        };
        let whole = id.is_none() || !id_at.is_empty();
        let count = values.len();
        let built = Arc::new(Built { statement: (count <= MAX_VALUES).then_some(statement), id_at });
        if let Some(key) = key
            && whole
        {
            self.kept.lock().unwrap_or_else(|e| e.into_inner()).put(key, built.clone());
        }
        built
    }

    /// The customer `id` as the JSON of `picks`, when it is live and the caller may read
    /// it.
    ///
    /// # Errors
    /// Database errors; INTERNAL for a pick the API should not have compiled.
    pub async fn customer(&self, actor: &Actor, id: Uuid, picks: &[Pick]) -> AppResult<Answer> {
        let key = format!("customer\n{}\n{picks:?}", actor.rights());
        let built = match self.kept(&key) {
            Some(built) => built,
            None => {
                let json = object(actor, Kind::Customer, picks)?;
                // Built in place: `to_owned()` would copy the whole JSON expression once more.
                let mut select = Query::select();
                select
                    .expr_as(text(json), Alias::new("j"))
                    .from(customer::Entity)
                    .cond_where(customers::get_condition(actor, *LOOKED_UP));
                let built = self.build(Some(key), &select, Some(*LOOKED_UP));
                if built.id_at.is_empty() {
                    return Err(AppError::Internal("a lookup's statement without its id".into()));
                }
                built
            }
        };
        self.run(&built, Some(id)).await
    }

    /// A page of the customer list as the JSON of `picks` ([`Answer::Ordinary`] when the
    /// statement would bind too many values).
    ///
    /// # Errors
    /// As `customer::list`; INTERNAL for a pick the API should not have compiled.
    pub async fn customers(
        &self,
        db: &DatabaseConnection,
        actor: &Actor,
        query: &ListQuery<SortField>,
        picks: &[ListPick],
    ) -> AppResult<Answer> {
        let key = (!customers::reads_categories(query))
            .then(|| format!("customers\n{}\n{picks:?}\n{query:?}", actor.rights()));
        if let Some(built) = key.as_deref().and_then(|key| self.kept(key)) {
            return self.run(&built, None).await;
        }
        let select = customers_select(db, actor, query, picks).await?;
        let built = self.build(key, &select, None);
        self.run(&built, None).await
    }

    /// Runs a built statement of one `j` column on the lane (with `id` in its place): its
    /// text, [`Answer::Nothing`] without a row.
    async fn run(&self, built: &Built, id: Option<Uuid>) -> AppResult<Answer> {
        let Some(statement) = &built.statement else { return Ok(Answer::Ordinary) };
        let mut statement = statement.clone();
        if let (Some(id), Some(values)) = (id, statement.values.as_mut()) {
            for &at in &built.id_at {
                values.0[at] = sea_orm::Value::Uuid(Some(id));
            }
        }
        Ok(match self.lane.text(statement).await? {
            Some(json) => Answer::Json(json),
            None => Answer::Nothing,
        })
    }
}

/// What the compiled path answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The JSON of the selection.
    Json(String),
    /// No such row the caller may read.
    Nothing,
    /// Not compiled: the ordinary path answers (the same rows, read its own way).
    Ordinary,
}

/// The record types the compiled path answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customer,
    Contact,
    Deal,
}

impl Kind {
    /// The GraphQL type, its connection and its edge.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Customer => "Customer",
            Kind::Contact => "Contact",
            Kind::Deal => "Deal",
        }
    }
    pub fn connection_name(self) -> &'static str {
        match self {
            Kind::Customer => "CustomerConnection",
            Kind::Contact => "ContactConnection",
            Kind::Deal => "DealConnection",
        }
    }
    pub fn edge_name(self) -> &'static str {
        match self {
            Kind::Customer => "CustomerEdge",
            Kind::Contact => "ContactEdge",
            Kind::Deal => "DealEdge",
        }
    }

    fn catalogue(self) -> &'static RecordCatalogue {
        match self {
            Kind::Customer => &CUSTOMER,
            Kind::Contact => &CONTACT,
            Kind::Deal => &DEAL,
        }
    }

    /// A customer's nested list of this kind, by its field name on `Customer`.
    pub fn nested(name: &str) -> Option<Kind> {
        match name {
            "contacts" => Some(Kind::Contact),
            "deals" => Some(Kind::Deal),
            _ => None,
        }
    }

    /// Whether the compiled path answers the scalar field `name` of this type.
    pub fn answers(self, name: &str) -> bool {
        self.column(name).is_some()
    }

    /// The fields whose resolvers return the stored column as it is (enums are stored
    /// under their GraphQL names), named on the API; their columns are the catalogue's.
    fn plain(self) -> &'static [&'static str] {
        match self {
            Kind::Customer => &[
                "id",
                "kind",
                "category",
                "name",
                "phone",
                "phoneE164",
                "email",
                "region",
                "industry",
                "creditRating",
                "lifecycleStage",
                "tier",
                "wonDealCount",
                "ownerId",
                "departmentId",
            ],
            Kind::Contact => &[
                "id",
                "customerId",
                "name",
                "title",
                "dealRole",
                "mobile",
                "officePhone",
                "email",
                "hometown",
                "hobbies",
                "notes",
            ],
            Kind::Deal => &["id", "customerId", "title", "stage", "lostReason"],
        }
    }

    /// The SQL of a scalar field the compiled path answers, before masking: a plain
    /// field's column as its catalogue stores it, the row's `version`, and a customer's
    /// `inPublicPool` (no owner).
    fn column(self, name: &str) -> Option<Expr> {
        let table = self.table();
        let column = |c: &str| Expr::col((Alias::new(table), Alias::new(c)));
        match (self, name) {
            (_, "version") => Some(column("version")),
            (Kind::Customer, "inPublicPool") => Some(column("owner_id").is_null()),
            _ if self.plain().contains(&name) => self.catalogue().column(name).map(|c| column(&c)),
            _ => None,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Kind::Customer => customer::Entity.table_name(),
            Kind::Contact => contact::Entity.table_name(),
            Kind::Deal => deal::Entity.table_name(),
        }
    }

    /// The resource whose read grant reaches records of this kind.
    fn resource(self) -> Resource {
        self.catalogue().resource
    }
}

/// One field of a selection under its response key (alias or name), and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<W> {
    pub key: String,
    pub what: W,
}

/// One field of an object's selection.
pub type Pick = Keyed<What>;
/// One field of a connection's selection.
pub type ListPick = Keyed<ListWhat>;
/// One field of an edge's selection (`cursor` is not compiled).
pub type EdgePick = Keyed<EdgeWhat>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// `__typename`.
    Typename,
    /// A scalar field the type [`Kind::answers`].
    Field(String),
    /// A customer's nested list: its first `first` records of `of`, newest first.
    List { of: Kind, first: u64, picks: Vec<ListPick> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListWhat {
    Typename,
    TotalCount,
    Nodes(Vec<Pick>),
    Edges(Vec<EdgePick>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeWhat {
    Typename,
    Node(Vec<Pick>),
}

/// The statement of a page of the customer list as the JSON of `picks`.
async fn customers_select(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &ListQuery<SortField>,
    picks: &[ListPick],
) -> AppResult<SelectStatement> {
    let customers::ListSelect { select, keys, tallied } = customers::list_select(db, actor, query).await?;
    // No columns: each use below picks its own (a select of every column, cloned for each
    // use, was a tenth of the server's samples on a nested page).
    let select = select.select_only();
    // A sales rep's "own rows or the pool" is paged from each part's index, as the
    // ordinary list pages it (`pagination::paginate_parts`).
    let parts = actor.customer_parts(Resource::Customer, Action::Read);
    let scoped = select.clone().filter(actor.customer_condition(Resource::Customer, Action::Read));
    let paged = if parts.is_some() { select } else { scoped.clone() };
    // Built even when no rows are asked for: a bad cursor or page size is refused alike.
    let page = page_select(paged, parts.as_deref(), &keys, customer::Column::Id, &query.page)?;
    let rows = |picked: Expr| rows_of(page.clone(), picked);
    let count = tallied.unwrap_or_else(|| count_of(&scoped));
    let json = connection(Kind::Customer, picks, &count, rows, actor)?;
    let mut select = Query::select();
    select.expr_as(text(json), Alias::new("j"));
    Ok(select)
}

/// `array_to_json(ARRAY(<page, one column picked>))`: the page's rows in the page's order
/// (an `ARRAY` subquery keeps its `ORDER BY`), `[]` when there are none.
fn rows_of<E: EntityTrait>(page: Select<E>, picked: Expr) -> Expr {
    array(page.select_only().expr(picked).into_query())
}

fn array(rows: SelectStatement) -> Expr {
    Expr::cust_with_expr("array_to_json(ARRAY $1)", Expr::SubQuery(None, Box::new(rows.into())))
}

fn text(json: Expr) -> Expr {
    Expr::cust_with_expr("($1)::text", json)
}

/// A JSON object key or a type name as an SQL literal: GraphQL names are `[_A-Za-z][_0-9A-Za-z]*`.
fn literal(name: &str) -> AppResult<Expr> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(AppError::Internal(format!("not a GraphQL name: {name:?}").into()));
    }
    Ok(Expr::cust(format!("'{name}'")))
}

fn build(args: Vec<Expr>) -> Expr {
    Func::cust(Alias::new("json_build_object")).args(args).into()
}

/// `json_build_object` of a selection: each response key with what `value` makes of its
/// field.
fn object_of<W>(picks: &[Keyed<W>], mut value: impl FnMut(&W) -> AppResult<Expr>) -> AppResult<Expr> {
    if picks.len() > MAX_FIELDS {
        return Err(AppError::Internal(format!("{} fields in one object", picks.len()).into()));
    }
    let mut args = Vec::with_capacity(picks.len() * 2);
    for p in picks {
        args.push(literal(&p.key)?);
        args.push(value(&p.what)?);
    }
    Ok(build(args))
}

/// `SELECT count(*)` of `all`.
fn count_of<E: EntityTrait>(all: &Select<E>) -> SelectStatement {
    all.clone().select_only().expr(Expr::cust("count(*)")).into_query()
}

/// A connection's JSON: `count` for `totalCount` (every row's count), and its page (`rows`
/// builds the page's array of one picked column).
fn connection(
    kind: Kind,
    picks: &[ListPick],
    count: &SelectStatement,
    rows: impl Fn(Expr) -> Expr,
    actor: &Actor,
) -> AppResult<Expr> {
    object_of(picks, |what| {
        Ok(match what {
            ListWhat::Typename => literal(kind.connection_name())?,
            ListWhat::TotalCount => Expr::SubQuery(None, Box::new(count.clone().into())),
            ListWhat::Nodes(node) => rows(object(actor, kind, node)?),
            ListWhat::Edges(edge) => rows(object_of(edge, |what| match what {
                EdgeWhat::Typename => literal(kind.edge_name()),
                EdgeWhat::Node(node) => object(actor, kind, node),
            })?),
        })
    })
}

/// One record's JSON, over the row of its table in scope (and, for a contact or a deal,
/// its customer's row in the enclosing statement).
fn object(actor: &Actor, kind: Kind, picks: &[Pick]) -> AppResult<Expr> {
    object_of(picks, |what| match what {
        What::Typename => literal(kind.type_name()),
        What::Field(name) => field(actor, kind, name),
        What::List { of, first, picks } => match (kind, of) {
            (Kind::Customer, Kind::Contact) => nested::<contact::Entity>(actor, *of, *first, picks),
            (Kind::Customer, Kind::Deal) => nested::<deal::Entity>(actor, *of, *first, picks),
            _ => Err(AppError::Internal(format!("no list of {of:?} under {kind:?}").into())),
        },
    })
}

/// A scalar field, masked as its resolver masks it: the field group's reach over the
/// record's customer (`Actor::sees` as SQL).
fn field(actor: &Actor, kind: Kind, name: &str) -> AppResult<Expr> {
    let value =
        kind.column(name).ok_or_else(|| AppError::Internal(format!("{name} of {kind:?} is not compiled").into()))?;
    let Some(group) = kind.catalogue().group(name) else { return Ok(value) };
    Ok(match actor.field_access(group, kind.resource()) {
        FieldAccess::Every => value,
        FieldAccess::Never => Expr::cust("NULL"),
        FieldAccess::Some(reach) => CaseStatement::new()
            .case(reach.condition(customer::Column::OwnerId, customer::Column::DepartmentId), value)
            .into(),
    })
}

/// A customer's list of `E` (correlated with the customer's row): empty unless the caller
/// may read records of `E` on that customer (`Actor::may`), the live records newest
/// first (`records::first_per_customer`).
fn nested<E: CustomerRecord>(actor: &Actor, of: Kind, first: u64, picks: &[ListPick]) -> AppResult<Expr> {
    let all = E::find()
        .select_only()
        .filter(Expr::col((E::default(), E::customer_column())).equals((customer::Entity, customer::Column::Id)))
        .filter(E::deleted_column().is_null())
        .filter(customer::Column::DeletedAt.is_null())
        .filter(actor.customer_condition(of.resource(), Action::Read));
    let page = all.clone().order_by_desc(E::created_column()).order_by_desc(E::id_column()).limit(first);
    connection(of, picks, &count_of(&all), |picked| rows_of(page.clone(), picked), actor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_mapped_fields() {
        let sql = |e: Expr| Query::select().expr(e).to_string(sea_orm::sea_query::PostgresQueryBuilder);
        assert_eq!(sql(Kind::Customer.column("phoneE164").unwrap()), r#"SELECT "customer"."phone_norm""#);
        assert_eq!(sql(Kind::Contact.column("officePhone").unwrap()), r#"SELECT "contact"."office_phone""#);
        assert_eq!(sql(Kind::Deal.column("version").unwrap()), r#"SELECT "deal"."version""#);
        assert!(Kind::Customer.answers("name"));
        assert!(Kind::Contact.answers("mobile"));
        assert!(!Kind::Customer.answers("address"), "sealed at rest: decrypted by the ordinary path");
        assert!(!Kind::Customer.answers("revenue"), "money in the base currency: the ordinary path");
        assert!(!Kind::Deal.answers("amount"));
        assert_eq!(Kind::nested("deals"), Some(Kind::Deal));
        assert_eq!(Kind::nested("feedback"), None);
    }

    #[test]
    fn literals_are_names_only() {
        assert!(literal("totalCount").is_ok());
        assert!(literal("a'b").is_err());
        assert!(literal("").is_err());
    }
}
