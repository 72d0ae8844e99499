//! One search box over customers and contacts: each reading of the query (`reading`) a
//! range of the key index, the matches of a record merged into its best, ranked by how
//! they matched and then by whose and how recent the record is (`docs/search.md`).
//!
//! Scope is part of every range's condition, read from the key rows themselves (each
//! carries its customer's zone, and a caller reaches a set of zones): a record the caller
//! may not read is neither returned nor counted, and a key of a field group the caller does
//! not see on that record (phone, e-mail) matches nothing.
use super::keys::{Field, Form, stored};
use super::reading::{Points, Reading, readings};
use crate::access::{Actor, FieldAccess, Reach};
use crate::error::{AppError, AppResult};
use crate::kernel::pagination::{Cursor, Page, PageArgs, page_size};
use entity::enums::{Action, Resource};
use entity::{contact, customer, search_doc, search_term, search_zone};
use sea_orm::sea_query::{
    Alias, Asterisk, CaseStatement, Condition, Expr, ExprTrait, NullOrdering, Order, Query, SelectStatement,
    SimpleExpr, UnionType,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryResult};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use search_term::Column as T;

/// What a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customer,
    Contact,
}

/// How a field matched, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum How {
    Exact,
    Prefix,
    Substring,
    Pinyin,
    Initials,
    Fuzzy,
}

impl How {
    fn of(points: i64) -> How {
        match points {
            100.. => How::Exact,
            90..=99 => How::Prefix,
            80..=89 => How::Substring,
            70..=79 => How::Pinyin,
            60..=69 => How::Initials,
            _ => How::Fuzzy,
        }
    }
}

/// One field that matched, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub field: Field,
    pub how: How,
}

/// One record found.
#[derive(Debug, Clone)]
pub struct Hit {
    /// 0 to 1: 1 an exact match, 0.9 a prefix, 0.8 a substring, 0.7 pinyin, 0.6 initials,
    /// 0.5 one typo (a little more within a band for a whole or leading match).
    pub score: f64,
    pub kind: Kind,
    pub customer: customer::Model,
    pub contact: Option<contact::Model>,
    /// Best first.
    pub matched: Vec<Matched>,
}

/// Hits a caller may page through.
const MAX_DEPTH: u64 = 1000;
/// How long a page's statement may take before a total wanted is counted beside it.
const BESIDE_AFTER: std::time::Duration = std::time::Duration::from_millis(3);

/// The first string after every string that starts with `p`.
fn after_prefix(p: &str) -> String {
    format!("{p}\u{10FFFF}")
}

fn points_expr(r: &Reading) -> SimpleExpr {
    let term = || Expr::col(T::Term);
    let head = || Expr::col(T::Head).eq(true);
    let whole = || Condition::all().add(head()).add(term().eq(stored(r.forms[0], &r.terms[0])));
    let case = |whole_points: i64, head_points: i64, rest: i64| -> SimpleExpr {
        CaseStatement::new().case(whole(), whole_points).case(head(), head_points).finally(rest).into()
    };
    match r.points {
        Points::Text => case(100, 90, 80),
        Points::Email => case(100, 90, 90),
        Points::Pinyin => case(78, 74, 70),
        Points::Initials => case(64, 60, 60),
        Points::Fuzzy => Expr::val(50),
    }
}

/// The keys of the customers `reach` reaches: of the zones it reaches. On PostgreSQL the
/// zones are an array made once per statement (`zone = ANY(ARRAY(...))`), so that they
/// are the leading condition of the zone-first key index: a sales rep's search reads the
/// rep's keys, not every key of the range (`IN (SELECT ...)` was planned as a filter on
/// the whole range).
fn zoned(reach: &Reach, pg: bool) -> Condition {
    if reach.everything {
        return Condition::all();
    }
    let mut zones = Query::select();
    zones
        .column(search_zone::Column::Zone)
        .from(search_zone::Entity)
        .cond_where(reach.condition(search_zone::Column::OwnerId, search_zone::Column::DepartmentId));
    if pg {
        let array = Expr::cust_with_expr("ARRAY $1", Expr::SubQuery(None, Box::new(zones.into())));
        return Condition::all()
            .add(Expr::col(T::Zone).eq(sea_orm::sea_query::extension::postgres::PgFunc::any(array)));
    }
    Condition::all().add(T::Zone.in_subquery(zones))
}

/// The rows a caller reaches, and the field groups it sees on them. The customers reached
/// come first, outside the kinds' alternatives (a contact is found only on a customer the
/// caller reads), so that they can lead the index read.
fn scope(actor: &Actor, kinds: &[Kind], pg: bool) -> Condition {
    let reach = |r: Resource| actor.reach(r, Action::Read);
    let details = |over: Resource| -> Condition {
        let hidden: Vec<i16> = Field::ALL.into_iter().filter(|f| f.is_contact_detail()).map(|f| f as i16).collect();
        match actor.field_access(Resource::ContactDetails, over) {
            FieldAccess::Every => Condition::all(),
            FieldAccess::Some(r) => Condition::any().add(T::Field.is_not_in(hidden)).add(zoned(&r, pg)),
            FieldAccess::Never => Condition::all().add(T::Field.is_not_in(hidden)),
        }
    };
    let mut any = Condition::any();
    if kinds.contains(&Kind::Customer) {
        any = any.add(Condition::all().add(T::Contact.eq(false)).add(details(Resource::Customer)));
    }
    if kinds.contains(&Kind::Contact) {
        any = any.add(
            Condition::all()
                .add(T::Contact.eq(true))
                .add(zoned(&reach(Resource::Contact), pg))
                .add(details(Resource::Contact)),
        );
    }
    Condition::all().add(zoned(&reach(Resource::Customer), pg)).add(any)
}

/// The matching key rows of one reading: record, kind, zone, last contact, field and
/// points.
fn range(r: &Reading, within: &Condition, pg: bool, docs: Option<&[i32]>) -> SelectStatement {
    let mut q = Query::select();
    q.columns([T::Doc, T::Contact, T::Zone, T::ContactedAt, T::Field])
        .expr_as(points_expr(r), Alias::new("points"))
        .cond_where(within.clone());
    match docs {
        None => q.from(search_term::Entity),
        // The keys of these records only, read by their record numbers first: the range's
        // condition then filters a few rows (PostgreSQL, misjudging how many keys a
        // prefix has, would otherwise read the whole range and filter it by record).
        Some(docs) => {
            let mut theirs = Query::select();
            theirs.column(Asterisk).from(search_term::Entity).and_where(doc_in(docs, pg));
            if pg {
                // Kept a subquery (not merged into the outer query's plan).
                theirs.offset(0);
            }
            q.from_subquery(theirs, search_term::Entity)
        }
    };
    if r.points == Points::Fuzzy {
        let terms: Vec<String> = r.forms.iter().flat_map(|f| r.terms.iter().map(|t| stored(*f, t))).collect();
        q.and_where(if pg {
            // One array parameter: a list of hundreds took longer to plan than to run.
            Expr::col(T::Term).eq(sea_orm::sea_query::extension::postgres::PgFunc::any(Expr::val(terms)))
        } else {
            T::Term.is_in(terms)
        });
    } else {
        let mut ranges = Condition::any();
        for f in &r.forms {
            let from = stored(*f, &r.terms[0]);
            ranges = ranges.add(Condition::all().add(T::Term.gte(from.clone())).add(T::Term.lt(after_prefix(&from))));
        }
        q.cond_where(ranges);
    }
    if r.head_only {
        q.and_where(T::Head.eq(true));
    }
    if r.forms != [Form::Text] && r.forms != [Form::Digits] && r.forms != [Form::Email] {
        // Readings and initials are of names only.
        q.and_where(T::Field.is_in([Field::Name, Field::Organization, Field::ContactName].map(|f| f as i16)));
    }
    for c in &r.han {
        let t2 = Alias::new("t2");
        let mut holds = Query::select();
        holds
            .expr(Expr::val(1))
            .from_as(search_term::Entity, t2.clone())
            .and_where(Expr::col((t2.clone(), T::Doc)).equals((search_term::Entity, T::Doc)))
            .and_where(Expr::col((t2.clone(), T::Field)).equals((search_term::Entity, T::Field)))
            .and_where(Expr::col((t2.clone(), T::Head)).eq(true))
            .and_where(Expr::col((t2, T::Term)).like(format!("{}%{c}%", stored(Form::Text, ""))));
        q.and_where(Expr::exists(holds));
    }
    q
}

fn union(readings: &[Reading], within: &Condition, pg: bool, docs: Option<&[i32]>) -> SelectStatement {
    let mut all = range(&readings[0], within, pg, docs);
    for r in &readings[1..] {
        all.union(UnionType::All, range(r, within, pg, docs));
    }
    all
}

/// 1 for a key of a customer `me` owns, 0 for others.
fn mine_expr(me: Uuid) -> SimpleExpr {
    let mut mine = Query::select();
    mine.column(search_zone::Column::Zone).from(search_zone::Entity).and_where(search_zone::Column::OwnerId.eq(me));
    CaseStatement::new().case(Expr::col((Alias::new("m"), T::Zone)).in_subquery(mine), 1).finally(0).into()
}

/// Every matching key of the readings (up to `cap`), one row each, in the order of the
/// hits: a record's doc, kind, field and points, its band, whether `me` owns it and its
/// last contact. A record's zone, kind and last contact are the same on all its keys, so
/// its first key in this order is its best, and the records in the order of their first
/// keys are the hits in rank order: the page is cut from the first keys, with no grouping
/// of every match (a top-N sort of the keys).
fn keys(
    readings: &[Reading],
    within: &Condition,
    me: Uuid,
    pg: bool,
    cap: Option<u64>,
    docs: Option<&[i32]>,
) -> SelectStatement {
    let m = Alias::new("m");
    let col = |c: &str| Expr::col((m.clone(), Alias::new(c)));
    let mut q = Query::select();
    q.expr_as(col("doc"), Alias::new("doc"))
        .expr_as(col("contact"), Alias::new("contact"))
        .expr_as(col("field"), Alias::new("field"))
        .expr_as(Expr::cust("CAST(m.points AS BIGINT)"), Alias::new("points"))
        .expr_as(Expr::cust("CAST(m.points / 10 AS BIGINT)"), Alias::new("band"))
        .expr_as(mine_expr(me), Alias::new("mine"))
        .expr_as(col("contacted_at"), Alias::new("recent"))
        .from_subquery(union(readings, within, pg, docs), m)
        .order_by(Alias::new("band"), Order::Desc)
        .order_by(Alias::new("mine"), Order::Desc)
        .order_by_with_nulls(Alias::new("recent"), Order::Desc, NullOrdering::Last)
        .order_by(Alias::new("points"), Order::Desc)
        .order_by(Alias::new("doc"), Order::Asc);
    if let Some(n) = cap {
        q.limit(n);
    }
    q
}

/// The number of records the readings match.
fn count(readings: &[Reading], within: &Condition, pg: bool) -> SelectStatement {
    let mut count = Query::select();
    count
        .expr(Expr::cust("CAST(COUNT(DISTINCT m.doc) AS BIGINT)"))
        .from_subquery(union(readings, within, pg, None), Alias::new("m"));
    count
}

async fn counted(db: &DatabaseConnection, count: &SelectStatement) -> AppResult<u64> {
    let row = db.query_one(count).await?.ok_or_else(|| AppError::Internal("no count".into()))?;
    Ok(row.try_get_by_index::<i64>(0)? as u64)
}

/// `doc` is one of `docs`: one array parameter on PostgreSQL, so the statement's text does
/// not change with the page's length.
fn doc_in(docs: &[i32], pg: bool) -> SimpleExpr {
    if pg {
        Expr::col(T::Doc).eq(sea_orm::sea_query::extension::postgres::PgFunc::any(Expr::val(docs.to_vec())))
    } else {
        T::Doc.is_in(docs.iter().copied())
    }
}

/// The records the keys name, best first, each with its fields' best points.
#[derive(Default)]
struct Ranked {
    docs: Vec<(i32, bool, i64)>,
    fields: HashMap<i32, HashMap<i16, i64>>,
}

impl Ranked {
    /// The records of key rows as [`keys`] returns them, in their order.
    fn read(rows: &[QueryResult]) -> AppResult<Ranked> {
        let mut out = Ranked::default();
        for r in rows {
            out.take(
                r.try_get("", "doc")?,
                r.try_get("", "contact")?,
                r.try_get("", "field")?,
                r.try_get("", "points")?,
            );
        }
        Ok(out)
    }

    fn take(&mut self, doc: i32, contact: bool, field: i16, points: i64) {
        let fields = self.fields.entry(doc).or_default();
        if fields.is_empty() {
            self.docs.push((doc, contact, points));
        }
        let best = fields.entry(field).or_insert(points);
        *best = std::cmp::max(*best, points);
    }

    /// A record's fields that matched, best first.
    fn matched(&self, doc: i32) -> Vec<Matched> {
        let mut fields: Vec<(Field, i64)> = self
            .fields
            .get(&doc)
            .into_iter()
            .flatten()
            .filter_map(|(f, p)| Field::ALL.into_iter().find(|x| *x as i16 == *f).map(|f| (f, *p)))
            .collect();
        fields.sort_by_key(|(f, p)| (-p, *f));
        fields.into_iter().map(|(field, p)| Matched { field, how: How::of(p) }).collect()
    }
}

/// The hits up to `need`, ranked, and whether every match was read (then each record's
/// fields are all there, and the records are the total).
async fn ranked(
    db: &DatabaseConnection,
    readings: &[Reading],
    within: &Condition,
    me: Uuid,
    need: u64,
    pg: bool,
) -> AppResult<(Ranked, bool)> {
    // A record has a few keys in a range (one per field, or per place a substring
    // appears): four times the records wanted is usually enough; when it is not, every
    // key is read.
    let mut cap = Some(need * 4);
    loop {
        let rows = db.query_all(&keys(readings, within, me, pg, cap, None)).await?;
        let complete = cap.is_none_or(|n| (rows.len() as u64) < n);
        let out = Ranked::read(&rows)?;
        if complete || out.docs.len() as u64 >= need {
            return Ok((out, complete));
        }
        cap = None;
    }
}

/// Searches customers and contacts for `query` (`docs/search.md`). `wants_total`: the caller
/// will want the total (counted beside the page's other reads when the page's statement
/// did not read every match).
///
/// # Errors
/// VALIDATION (nothing to search for, too long, a bad page), FORBIDDEN (the caller reads
/// neither customers nor contacts).
pub async fn search(
    db: &DatabaseConnection,
    actor: &Actor,
    query: &str,
    kinds: Option<Vec<Kind>>,
    page: &PageArgs,
    wants_total: bool,
) -> AppResult<Page<Hit>> {
    let wanted = kinds.unwrap_or_else(|| vec![Kind::Customer, Kind::Contact]);
    let mut kinds: Vec<Kind> = Vec::new();
    if wanted.contains(&Kind::Customer) && actor.grant(Resource::Customer, Action::Read).allowed() {
        kinds.push(Kind::Customer);
    }
    if wanted.contains(&Kind::Contact)
        && actor.grant(Resource::Contact, Action::Read).allowed()
        && actor.grant(Resource::Customer, Action::Read).allowed()
    {
        kinds.push(Kind::Contact);
    }
    if kinds.is_empty() {
        return Err(AppError::Forbidden("your role may not read customers or contacts".into()));
    }
    let first = page_size(page.first)?;
    let offset = match page.after.as_deref().map(Cursor::decode).transpose()? {
        None => 0,
        Some(Cursor::Rank(n)) if n >= 0 => n as u64,
        Some(_) => return Err(AppError::invalid("after", "cursor belongs to another list")),
    };
    let Some(readings) = readings(query)? else { return Ok(Page::empty()) };

    let limit = std::cmp::min(first, MAX_DEPTH.saturating_sub(offset));
    let pg = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let within = scope(actor, &kinds, pg);
    let all = count(&readings, &within, pg);
    let page = ranked(db, &readings, &within, actor.id(), offset + limit + 1, pg);
    tokio::pin!(page);
    // A page that takes long reads many matches, and so would their count: a total wanted
    // is then counted beside it, on a second connection (the time of one scan, not two).
    let (ranked_page, mut total) = match tokio::time::timeout(BESIDE_AFTER, &mut page).await {
        Ok(r) => (r, None),
        Err(_) if wants_total => {
            let (r, n) = futures::join!(page, counted(db, &all));
            (r, Some(n?))
        }
        Err(_) => (page.await, None),
    };
    let (mut ranked, complete) = ranked_page?;
    if complete {
        total = Some(ranked.docs.len() as u64);
    }
    let found: Vec<(i32, bool, i64)> = ranked.docs.iter().skip(offset as usize).take(limit as usize).copied().collect();
    let has_next_page = ranked.docs.len() as u64 > offset + limit && offset + limit < MAX_DEPTH;
    if !complete {
        // Not every match was read: the page's records may have keys further on (read all
        // of theirs), and a total wanted and not yet counted is counted beside them.
        let page: Vec<i32> = found.iter().map(|f| f.0).collect();
        let fields = async {
            if page.is_empty() {
                return Ok(Vec::new());
            }
            db.query_all(&keys(&readings, &within, actor.id(), pg, None, Some(&page))).await
        };
        let (rows, n) = futures::join!(fields, async {
            if wants_total && total.is_none() { counted(db, &all).await.map(Some) } else { Ok(total) }
        });
        total = n?;
        ranked = Ranked::read(&rows?)?;
    }
    let docs: HashMap<i32, (Uuid, Uuid)> = search_doc::Entity::find()
        .filter(search_doc::Column::Doc.is_in(found.iter().map(|f| f.0)))
        .all(db)
        .await?
        .into_iter()
        .map(|d| (d.doc, (d.record_id, d.customer_id)))
        .collect();
    let customer_ids: Vec<Uuid> = docs.values().map(|d| d.1).collect();
    let contact_ids: Vec<Uuid> = found.iter().filter(|f| f.1).filter_map(|f| docs.get(&f.0)).map(|d| d.0).collect();
    let customers: HashMap<Uuid, customer::Model> = customer::Entity::find()
        .filter(customer::Column::Id.is_in(customer_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut contacts: HashMap<Uuid, contact::Model> = if contact_ids.is_empty() {
        HashMap::new()
    } else {
        contact::Entity::find()
            .filter(contact::Column::Id.is_in(contact_ids))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect()
    };
    let mut edges = Vec::with_capacity(found.len());
    for (i, (doc, is_contact, points)) in found.into_iter().enumerate() {
        // A record whose keys a write replaced since the statement read them.
        let Some(&(record, customer_id)) = docs.get(&doc) else { continue };
        // The keys said so; the rows have the last word (a key left stale by a rebuild
        // racing a write must not show what the caller may not read).
        let Some(customer) = customers.get(&customer_id).cloned() else { continue };
        if customer.erased_at.is_some() || !actor.may(Resource::Customer, Action::Read, &customer) {
            continue;
        }
        let contact = if is_contact {
            match contacts.remove(&record) {
                Some(c) if c.deleted_at.is_none() && actor.may(Resource::Contact, Action::Read, &customer) => Some(c),
                _ => continue,
            }
        } else {
            None
        };
        let hit = Hit {
            score: points as f64 / 100.0,
            kind: if is_contact { Kind::Contact } else { Kind::Customer },
            customer,
            contact,
            matched: ranked.matched(doc),
        };
        edges.push((Cursor::Rank(offset as i64 + i as i64 + 1), hit));
    }

    // Counted with the page, or when asked (a caller that said it would not ask may).
    let total_count: crate::kernel::pagination::TotalCount = if let Some(n) = total {
        Arc::new(move || Box::pin(async move { Ok(n) }))
    } else {
        let conn = db.clone();
        Arc::new(move || {
            let (conn, all) = (conn.clone(), all.clone());
            Box::pin(async move { counted(&conn, &all).await })
        })
    };
    Ok(Page { edges, has_next_page, has_previous_page: offset > 0, total_count })
}
