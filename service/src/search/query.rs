//! One search box over customers and contacts: what was typed, read every way it may be
//! meant (text, phone digits, e-mail, pinyin, initials, one typo), each reading a range of
//! the key index, the matches of a record merged into its best, ranked by how they matched
//! and then by whose and how recent the record is (`docs/search.md`).
//!
//! Scope is part of every range's condition, read from the key rows themselves (each
//! carries its customer's zone, and a caller reaches a set of zones): a record the caller
//! may not read is neither returned nor counted, and a key of a field group the caller does
//! not see on that record (phone, e-mail) matches nothing.
use super::fold::{Unit, fold, is_han, org_core, units};
use super::keys::{Field, Form, MAX_TERM, MIN_DIGITS, one_typo, query_readings, stored};
use crate::access::{Actor, FieldAccess, Reach};
use crate::error::{AppError, AppResult};
use crate::kernel::normalize;
use crate::kernel::pagination::{Cursor, Page, PageArgs, page_size};
use entity::enums::{Action, Resource};
use entity::{contact, customer, search_doc, search_term, search_zone};
use sea_orm::sea_query::{
    Alias, CaseStatement, Condition, Expr, ExprTrait, NullOrdering, Order, Query, SelectStatement, SimpleExpr,
    UnionType,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
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

/// Characters a search may have.
const MAX_QUERY: usize = 100;
/// Hits a caller may page through.
const MAX_DEPTH: u64 = 1000;
/// Letters at least for a match with one typo, and at most (the variants grow with it).
const FUZZY_LETTERS: std::ops::RangeInclusive<usize> = 5..=24;

/// How a range's matches score.
#[derive(Debug, Clone, PartialEq)]
enum Points {
    /// Whole 100, from the start 90, inside 80.
    Text,
    /// Whole 100, from the start 90 (an e-mail address is found by its beginning).
    Email,
    /// Whole 78, from the start 74, from a later syllable 70.
    Pinyin,
    /// Whole 64, from the start 60.
    Initials,
    /// 50.
    Fuzzy,
}

/// One reading of the query: a range (or, for a typo, a set) of terms of some forms.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    forms: Vec<Form>,
    /// The prefix; for [`Points::Fuzzy`] the terms themselves.
    terms: Vec<String>,
    points: Points,
    /// Characters the record's text must hold too (`zhang伟`: 张伟, not 张维).
    han: Vec<char>,
    /// Only keys of a whole form from its start (a number typed with its country code:
    /// the national number starts where the code ends).
    head_only: bool,
}

/// The readings of a query; `None` when it is too short to mean anything but everything
/// (one Latin letter or digit).
///
/// # Errors
/// VALIDATION when it holds no letter, digit or character, or is too long.
fn readings(query: &str) -> AppResult<Option<Vec<Reading>>> {
    let raw = query.trim();
    if raw.chars().count() > MAX_QUERY {
        return Err(AppError::invalid("query", format!("is longer than {MAX_QUERY} characters")));
    }
    if raw.chars().any(char::is_control) {
        return Err(AppError::invalid("query", "has a control character"));
    }
    let folded = fold(raw);
    let parts = units(&folded);
    if parts.is_empty() {
        return Err(AppError::invalid("query", "has no letter, digit or Chinese character to search for"));
    }
    let compact: String = parts.iter().map(Unit::text).collect();
    let han: Vec<char> = compact.chars().filter(|c| is_han(*c)).collect();
    let has_digit = compact.chars().any(|c| c.is_ascii_digit());
    let has_letter = compact.chars().any(|c| c.is_ascii_lowercase());
    if han.is_empty() && compact.chars().count() < 2 {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut add = |forms: Vec<Form>, term: String, points: Points, han: Vec<char>, head_only: bool| {
        // Keys are cut as long; a longer query is found by its beginning.
        let term: String = term.chars().take(MAX_TERM).collect();
        let same = |r: &Reading| r.forms == forms && r.terms == [term.clone()] && r.head_only == head_only;
        if !term.is_empty() && !out.iter().any(same) {
            out.push(Reading { forms, terms: vec![term], points, han, head_only });
        }
    };

    // An e-mail address is nothing else.
    if folded.contains('@') {
        let address: String = folded.chars().filter(|c| !c.is_whitespace()).collect();
        add(vec![Form::Email], address, Points::Email, vec![], false);
        return Ok(Some(out));
    }

    // Text as typed, and an organization's name without its company form and region.
    add(vec![Form::Text], compact.clone(), Points::Text, vec![], false);
    let without_form: String = units(&fold(&normalize::org_name(raw))).iter().map(Unit::text).collect();
    let core: String = units(&org_core(raw)).iter().map(Unit::text).collect();
    // A region typed is meant: 上海华联商贸 is not 北京华联商贸, whose core is the same.
    let region_typed = core != without_form && without_form.ends_with(&core);
    add(vec![Form::Text], without_form, Points::Text, vec![], false);
    if !region_typed {
        add(vec![Form::Text], core, Points::Text, vec![], false);
    }

    // A phone number or a fragment of one, in any written form.
    let phone_like = folded.chars().all(|c| c.is_ascii_digit() || " +-().//".contains(c));
    if phone_like {
        let digits: String = folded.chars().filter(char::is_ascii_digit).collect();
        // 00 starts an international number, or is two digits inside one; 86 starts a
        // Chinese number with its country code, whose keys start after it, or is two
        // digits inside one.
        let mut numbers = vec![digits.clone()];
        numbers.extend(digits.strip_prefix("00").map(str::to_string));
        for n in numbers {
            if let Some(national) = n.strip_prefix("86").filter(|r| r.len() >= MIN_DIGITS) {
                add(vec![Form::Digits], national.to_string(), Points::Text, vec![], true);
            }
            if n.len() >= MIN_DIGITS {
                add(vec![Form::Digits], n, Points::Text, vec![], false);
            }
        }
    }

    // The start of an address without its @: when it has what names rarely have (a dot,
    // a digit beside letters); plain letters are a name, whose pinyin an address often
    // repeats (zhangwei88@…), and would rank every such address above the name itself.
    let addressy = folded.contains(['.', '_', '-', '+']) || (has_letter && has_digit);
    if han.is_empty() && addressy && !folded.contains(char::is_whitespace) {
        add(vec![Form::Email], folded.clone(), Points::Email, vec![], false);
    }

    // Pinyin, initials and typos: letters (with characters among them, read as pinyin).
    if has_letter && !has_digit {
        let mixed = if han.is_empty() { vec![] } else { han.clone() };
        let read: String = query_readings(&parts).concat();
        add(vec![Form::Pinyin], read, Points::Pinyin, mixed.clone(), false);
        // A character's initial as its reading starts (a surname's as a surname's).
        let initials: String = parts
            .iter()
            .zip(query_readings(&parts))
            .map(|(u, r)| match u {
                Unit::Han(_) => r.chars().next().map(String::from).unwrap_or_default(),
                Unit::Word(w) => w.clone(),
            })
            .collect();
        if initials.len() >= 2 {
            add(vec![Form::Initials], initials, Points::Initials, mixed, false);
        }
        if han.is_empty() && FUZZY_LETTERS.contains(&compact.len()) {
            out.push(Reading {
                forms: vec![Form::Pinyin, Form::Text],
                terms: one_typo(&compact),
                points: Points::Fuzzy,
                han: vec![],
                head_only: false,
            });
        }
    }
    Ok(Some(out))
}

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

/// The keys of the customers `reach` reaches: of the zones it reaches.
fn zoned(reach: &Reach) -> Condition {
    if reach.everything {
        return Condition::all();
    }
    let mut zones = Query::select();
    zones
        .column(search_zone::Column::Zone)
        .from(search_zone::Entity)
        .cond_where(reach.condition(search_zone::Column::OwnerId, search_zone::Column::DepartmentId));
    Condition::all().add(T::Zone.in_subquery(zones))
}

/// The rows a caller reaches, and the field groups it sees on them.
fn scope(actor: &Actor, kinds: &[Kind]) -> Condition {
    let reach = |r: Resource| actor.reach(r, Action::Read);
    let details = |over: Resource| -> Condition {
        let hidden: Vec<i16> = Field::ALL.into_iter().filter(|f| f.is_contact_detail()).map(|f| f as i16).collect();
        match actor.field_access(Resource::ContactDetails, over) {
            FieldAccess::Every => Condition::all(),
            FieldAccess::Some(r) => Condition::any().add(T::Field.is_not_in(hidden)).add(zoned(&r)),
            FieldAccess::Never => Condition::all().add(T::Field.is_not_in(hidden)),
        }
    };
    let customers = zoned(&reach(Resource::Customer));
    let mut any = Condition::any();
    if kinds.contains(&Kind::Customer) {
        any =
            any.add(Condition::all().add(T::Contact.eq(false)).add(customers.clone()).add(details(Resource::Customer)));
    }
    if kinds.contains(&Kind::Contact) {
        any = any.add(
            Condition::all()
                .add(T::Contact.eq(true))
                .add(customers)
                .add(zoned(&reach(Resource::Contact)))
                .add(details(Resource::Contact)),
        );
    }
    any
}

/// The matching key rows of one reading: record, kind, zone, last contact, field and
/// points.
fn range(r: &Reading, within: &Condition, pg: bool) -> SelectStatement {
    let mut q = Query::select();
    q.columns([T::Doc, T::Contact, T::Zone, T::ContactedAt, T::Field])
        .expr_as(points_expr(r), Alias::new("points"))
        .from(search_term::Entity)
        .cond_where(within.clone());
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

fn union(readings: &[Reading], within: &Condition, pg: bool) -> SelectStatement {
    let mut all = range(&readings[0], within, pg);
    for r in &readings[1..] {
        all.union(UnionType::All, range(r, within, pg));
    }
    all
}

/// 1 for a key of a customer `me` owns, 0 for others.
fn mine_expr(me: Uuid) -> SimpleExpr {
    let mut mine = Query::select();
    mine.column(search_zone::Column::Zone).from(search_zone::Entity).and_where(search_zone::Column::OwnerId.eq(me));
    CaseStatement::new().case(Expr::col((Alias::new("m"), T::Zone)).in_subquery(mine), 1).finally(0).into()
}

/// One record of the page, as the statement returns it.
struct Found {
    doc: i32,
    contact: bool,
    points: i64,
    /// Each field that matched, with its best points, best first.
    fields: Vec<(Field, i64)>,
}

/// Records matched, merged: best points, whether the caller owns it, last contact.
fn grouped(readings: &[Reading], within: &Condition, me: Uuid, pg: bool) -> SelectStatement {
    let m = Alias::new("m");
    let col = |c: &str| Expr::col((m.clone(), Alias::new(c)));
    let mut q = Query::select();
    q.expr_as(col("doc"), Alias::new("doc"))
        .expr_as(col("contact"), Alias::new("contact"))
        .expr_as(Expr::cust("CAST(MAX(m.points) AS BIGINT)"), Alias::new("points"))
        .expr_as(Expr::cust("CAST(MAX(m.points) / 10 AS BIGINT)"), Alias::new("band"))
        .expr_as(mine_expr(me).max(), Alias::new("mine"))
        .expr_as(col("contacted_at").max(), Alias::new("recent"))
        // Every record matched, counted once the groups are made (before the page is cut).
        .expr_as(Expr::cust("CAST(COUNT(*) OVER () AS BIGINT)"), Alias::new("total"));
    // How each field matched: its best points.
    for f in Field::ALL {
        let n = f as i16;
        q.expr_as(
            Expr::cust(format!("CAST(MAX(CASE WHEN m.field = {n} THEN m.points END) AS BIGINT)")),
            Alias::new(format!("f{n}")),
        );
    }
    q.from_subquery(union(readings, within, pg), m.clone())
        .group_by_col((m.clone(), Alias::new("doc")))
        .group_by_col((m, Alias::new("contact")));
    q
}

/// Searches customers and contacts for `query` (`docs/search.md`).
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
    let within = scope(actor, &kinds);

    let limit = std::cmp::min(first, MAX_DEPTH.saturating_sub(offset));
    let pg = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    let mut ordered = grouped(&readings, &within, actor.id(), pg);
    ordered
        .order_by(Alias::new("band"), Order::Desc)
        .order_by(Alias::new("mine"), Order::Desc)
        .order_by_with_nulls(Alias::new("recent"), Order::Desc, NullOrdering::Last)
        .order_by(Alias::new("points"), Order::Desc)
        .order_by(Alias::new("doc"), Order::Asc)
        .limit(limit + 1)
        .offset(offset);
    let rows = db.query_all(&ordered).await?;
    let mut found: Vec<Found> = Vec::with_capacity(rows.len());
    let mut total: Option<u64> = None;
    for r in &rows {
        total = Some(r.try_get::<i64>("", "total")? as u64);
        let mut fields = Vec::new();
        for f in Field::ALL {
            if let Some(p) = r.try_get::<Option<i64>>("", &format!("f{}", f as i16))? {
                fields.push((f, p));
            }
        }
        fields.sort_by_key(|(f, p)| (-p, *f));
        found.push(Found {
            doc: r.try_get("", "doc")?,
            contact: r.try_get("", "contact")?,
            points: r.try_get("", "points")?,
            fields,
        });
    }
    let has_next_page = found.len() as u64 > limit && offset + limit < MAX_DEPTH;
    found.truncate(limit as usize);
    let docs: HashMap<i32, (Uuid, Uuid)> = search_doc::Entity::find()
        .filter(search_doc::Column::Doc.is_in(found.iter().map(|f| f.doc)))
        .all(db)
        .await?
        .into_iter()
        .map(|d| (d.doc, (d.record_id, d.customer_id)))
        .collect();
    let customer_ids: Vec<Uuid> = docs.values().map(|d| d.1).collect();
    let contact_ids: Vec<Uuid> =
        found.iter().filter(|f| f.contact).filter_map(|f| docs.get(&f.doc)).map(|d| d.0).collect();
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
    for (i, Found { doc, contact: is_contact, points, fields }) in found.into_iter().enumerate() {
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
            matched: fields.into_iter().map(|(field, p)| Matched { field, how: How::of(p) }).collect(),
        };
        edges.push((Cursor::Rank(offset as i64 + i as i64 + 1), hit));
    }

    // The page's rows carry the total; a page past the end has none to carry it.
    let total_count: crate::kernel::pagination::TotalCount = match total {
        Some(n) => Arc::new(move || Box::pin(async move { Ok(n) })),
        None if offset == 0 => Arc::new(|| Box::pin(async { Ok(0) })),
        None => {
            let mut count = Query::select();
            count
                .expr(Expr::cust("COUNT(*)"))
                .from_subquery(grouped(&readings, &within, actor.id(), pg), Alias::new("g"));
            let conn = db.clone();
            Arc::new(move || {
                let (conn, count) = (conn.clone(), count.clone());
                Box::pin(async move {
                    let row = conn.query_one(&count).await?.ok_or_else(|| AppError::Internal("no count".into()))?;
                    Ok(row.try_get_by_index::<i64>(0)? as u64)
                })
            })
        }
    };
    Ok(Page { edges, has_next_page, has_previous_page: offset > 0, total_count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(q: &str) -> Vec<(Vec<Form>, String)> {
        readings(q)
            .unwrap()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.points != Points::Fuzzy)
            .map(|r| (r.forms, r.terms[0].clone()))
            .collect()
    }

    #[test]
    fn a_query_is_read_every_way_it_may_be_meant() {
        let p = prefixes("Zhāng Wěi");
        assert!(p.contains(&(vec![Form::Pinyin], "zhangwei".into())), "{p:?}");
        assert!(p.contains(&(vec![Form::Text], "zhangwei".into())));
        assert!(prefixes("zhang伟").contains(&(vec![Form::Pinyin], "zhangwei".into())));
        assert!(prefixes("张w").contains(&(vec![Form::Initials], "zw".into())));
        assert!(prefixes("曾w").contains(&(vec![Form::Pinyin], "zengw".into())));
        assert!(prefixes("華聯").contains(&(vec![Form::Text], "华联".into())));
        assert!(prefixes("021-6555").contains(&(vec![Form::Digits], "0216555".into())));
        assert!(prefixes("+86 138 0013").contains(&(vec![Form::Digits], "861380013".into())));
        assert!(prefixes("+86 138 0013").contains(&(vec![Form::Digits], "1380013".into())));
        let whole = readings("+8613800138000").unwrap().unwrap();
        assert!(whole.iter().any(|r| r.head_only && r.terms == ["13800138000"]), "{whole:?}");
        assert!(!whole.iter().any(|r| !r.head_only && r.terms == ["13800138000"]));
        assert!(prefixes("００１３８０００").contains(&(vec![Form::Digits], "138000".into())));
        assert!(prefixes("华联商贸有限公司").contains(&(vec![Form::Text], "华联商贸".into())));
        assert!(prefixes("上海华联商贸有限公司").contains(&(vec![Form::Text], "上海华联商贸".into())));
        assert!(!prefixes("北京华联商贸").contains(&(vec![Form::Text], "华联商贸".into())), "a region typed is meant");
        assert!(prefixes("li.na@ex").contains(&(vec![Form::Email], "li.na@ex".into())));
        // Too short to mean anything but everything.
        assert!(readings("z").unwrap().is_none());
        assert!(readings("7").unwrap().is_none());
        // Nothing to search for.
        for bad in ["", "  ", "---", "。，"] {
            assert!(readings(bad).is_err(), "{bad:?}");
        }
        // A digit fragment under four digits is no phone search.
        assert!(!prefixes("138").iter().any(|(f, _)| f == &vec![Form::Digits]));
    }
}
