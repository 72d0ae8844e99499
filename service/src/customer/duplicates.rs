//! Duplicate candidates before entry (seed 004's 客户验证: check before you type a customer
//! in twice): what a front end asks while a person types, ranked by how sure the match is.
//!
//! A candidate the caller may read comes with the customer; one they may not read comes
//! with the department that owns it and nothing else (the ownership rule: the first to
//! enter a customer owns it, the latecomer learns whom to ask, not the record).
use crate::access::Actor;
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::filter::contains;
use crate::kernel::store::{save, write};
use crate::kernel::{new_id, normalize, now};
use entity::enums::{Action, CustomerKind, DuplicateReportStatus, Resource};
use entity::{contact, customer, department, duplicate_report};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Candidates returned at most.
const MAX_CANDIDATES: usize = 10;
/// Rows a near-match query reads at most before scoring.
const NEAR_ROWS: u64 = 200;
/// Least bigram similarity of two organization names to count as similar.
const SIMILAR: f64 = 0.6;

/// Why a record may be the same customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    SamePhone,
    SameEmail,
    SameOrganizationName,
    /// A contact of the candidate has this phone number.
    ContactPhone,
    SimilarOrganizationName,
    SameNameAndRegion,
    SameNameAndPhonePrefix,
}

impl Reason {
    /// How sure this reason alone makes a match, 0 to 1.
    fn weight(self) -> f64 {
        match self {
            Self::SamePhone | Self::SameEmail | Self::SameOrganizationName => 1.0,
            Self::ContactPhone => 0.9,
            Self::SimilarOrganizationName => 0.8,
            Self::SameNameAndRegion => 0.7,
            Self::SameNameAndPhonePrefix => 0.6,
        }
    }
}

/// What is being entered.
#[derive(Default, Clone)]
pub struct Probe {
    pub kind: Option<CustomerKind>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    /// The customer being edited, left out of its own candidates.
    pub exclude: Option<Uuid>,
}

/// One candidate.
pub struct Candidate {
    /// 0 to 1: the strongest reason's weight, raised a little by each further reason.
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// The customer, when the caller may read it.
    pub customer: Option<customer::Model>,
    /// The owning department's name (staff only; a partner system learns only that the
    /// candidate exists).
    pub department: Option<String>,
}

/// Character bigrams of a folded name.
fn bigrams(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.windows(2).map(|w| w.iter().collect()).collect()
}

/// Dice similarity of two folded names over their character bigrams.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (x, y) = (bigrams(a), bigrams(b));
    if x.is_empty() || y.is_empty() {
        return if a == b && !a.is_empty() { 1.0 } else { 0.0 };
    }
    let mut pool: HashMap<&str, usize> = HashMap::new();
    for g in &y {
        *pool.entry(g.as_str()).or_default() += 1;
    }
    let mut shared = 0usize;
    for g in &x {
        if let Some(n) = pool.get_mut(g.as_str())
            && *n > 0
        {
            *n -= 1;
            shared += 1;
        }
    }
    (2 * shared) as f64 / (x.len() + y.len()) as f64
}

/// The first digits of a national mobile number (network and area block): "+86138001".
fn phone_prefix(e164: &str) -> Option<&str> {
    e164.starts_with("+861").then(|| e164.get(..9)).flatten()
}

/// Duplicate candidates of `probe`, best first, at most ten.
///
/// # Errors
/// FORBIDDEN for a role that may neither create nor read customers.
pub async fn candidates(db: &DatabaseConnection, actor: &Actor, probe: Probe) -> AppResult<Vec<Candidate>> {
    if !actor.grant(Resource::Customer, Action::Create).allowed()
        && !actor.grant(Resource::Customer, Action::Read).allowed()
    {
        return Err(AppError::Forbidden("your role may not enter or read customers".into()));
    }
    let name = probe.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let phone = probe.phone.as_deref().and_then(|p| normalize::phone_e164(p).ok());
    let email = probe.email.as_deref().and_then(|e| normalize::email(e).ok());
    let region = probe.region.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let organization = probe.kind == Some(CustomerKind::Organization);
    let org_key = name.filter(|_| organization).map(normalize::org_name).filter(|n| !n.is_empty());
    // Only a record the caller may read can be left out: leaving out any id would confirm
    // which customer an unreadable id is (its candidates vanish).
    let exclude = match probe.exclude {
        Some(id) => crate::customer::get(db, actor, id).await.ok().map(|c| c.id),
        None => None,
    };

    let mut found: HashMap<Uuid, (HashSet<Reason>, Option<customer::Model>)> = HashMap::new();
    let live = |q: sea_orm::Select<customer::Entity>| {
        let q = q.filter(customer::Column::DeletedAt.is_null());
        match exclude {
            Some(id) => q.filter(customer::Column::Id.ne(id)),
            None => q,
        }
    };
    let mut note = |c: customer::Model, reason: Reason| {
        found.entry(c.id).or_insert_with(|| (HashSet::new(), Some(c))).0.insert(reason);
    };

    // The keys a save would refuse.
    let mut exact = Condition::any();
    if let Some(p) = &phone {
        exact = exact.add(customer::Column::PhoneNorm.eq(p.clone()));
    }
    if let Some(e) = &email {
        exact = exact.add(customer::Column::EmailNorm.eq(e.clone()));
    }
    if let Some(n) = &org_key {
        exact = exact.add(customer::Column::NameNorm.eq(n.clone()));
    }
    if !exact.is_empty() {
        for c in live(customer::Entity::find()).filter(exact).limit(NEAR_ROWS).all(db).await? {
            if phone.is_some() && c.phone_norm.as_deref() == phone.as_deref() {
                note(c.clone(), Reason::SamePhone);
            }
            if email.is_some() && c.email_norm.as_deref() == email.as_deref() {
                note(c.clone(), Reason::SameEmail);
            }
            if org_key.is_some() && c.name_norm == org_key {
                note(c, Reason::SameOrganizationName);
            }
        }
    }

    // Organizations whose folded names share enough of this one's bigrams. The query reads
    // those holding one of three of its bigrams (start, middle, end); scoring is here.
    if let Some(key) = &org_key {
        let grams = bigrams(key);
        if !grams.is_empty() {
            let mut picks: Vec<&String> = vec![&grams[0], &grams[grams.len() / 2], &grams[grams.len() - 1]];
            picks.dedup();
            let mut any = Condition::any();
            for g in picks {
                any = any.add(contains(customer::Column::NameNorm, g));
            }
            let rows = live(customer::Entity::find())
                .filter(customer::Column::Kind.eq(CustomerKind::Organization))
                .filter(any)
                .limit(NEAR_ROWS)
                .all(db)
                .await?;
            for c in rows {
                let near = c.name_norm.as_deref().is_some_and(|n| n != key && similarity(n, key) >= SIMILAR);
                if near {
                    note(c, Reason::SimilarOrganizationName);
                }
            }
        }
    }

    // People may share a name: the same name (as search folds it: 張偉 is 张伟) counts
    // with the same region or the same mobile number block.
    if let (Some(n), false) = (name, organization) {
        let mut with = Condition::any();
        if let Some(r) = region {
            with = with.add(customer::Column::Region.eq(r));
        }
        if let Some(prefix) = phone.as_deref().and_then(phone_prefix) {
            with = with.add(customer::Column::PhoneNorm.starts_with(prefix));
        }
        if !with.is_empty() {
            let rows = live(customer::Entity::find())
                .filter(customer::Column::Kind.eq(CustomerKind::Individual))
                .filter(
                    Condition::any()
                        .add(customer::Column::Name.eq(n))
                        .add(customer::Column::Id.in_subquery(crate::search::index::named(n))),
                )
                .filter(with)
                .limit(NEAR_ROWS)
                .all(db)
                .await?;
            for c in rows {
                if region.is_some() && c.region.as_deref() == region {
                    note(c.clone(), Reason::SameNameAndRegion);
                }
                let block = phone.as_deref().and_then(phone_prefix);
                if block.is_some()
                    && c.phone_norm.as_deref().and_then(phone_prefix) == block
                    && c.phone_norm.as_deref() != phone.as_deref()
                {
                    note(c, Reason::SameNameAndPhonePrefix);
                }
            }
        }
    }

    // The phone of a contact of another customer: contacts keep numbers as entered, so the
    // query narrows by the last four digits and the comparison is on the E.164 form.
    let mut via_contact: Vec<Uuid> = Vec::new();
    if let Some(p) = &phone {
        let tail = &p[p.len().saturating_sub(4)..];
        let rows: Vec<(Uuid, Option<String>, Option<String>)> = contact::Entity::find()
            .select_only()
            .columns([contact::Column::CustomerId, contact::Column::Mobile, contact::Column::OfficePhone])
            .filter(contact::Column::DeletedAt.is_null())
            .filter(
                Condition::any()
                    .add(contains(contact::Column::Mobile, tail))
                    .add(contains(contact::Column::OfficePhone, tail)),
            )
            .limit(NEAR_ROWS)
            .into_tuple()
            .all(db)
            .await?;
        for (customer_id, mobile, office) in rows {
            let same =
                |v: &Option<String>| v.as_deref().and_then(|v| normalize::phone_e164(v).ok()).as_ref() == Some(p);
            if (same(&mobile) || same(&office)) && exclude != Some(customer_id) {
                via_contact.push(customer_id);
            }
        }
    }
    if !via_contact.is_empty() {
        for c in live(customer::Entity::find()).filter(customer::Column::Id.is_in(via_contact)).all(db).await? {
            note(c, Reason::ContactPhone);
        }
    }

    // Rank, then tell each candidate as much as the caller may know.
    let mut ranked: Vec<(f64, Vec<Reason>, customer::Model)> = found
        .into_values()
        .filter_map(|(reasons, c)| {
            let mut reasons: Vec<Reason> = reasons.into_iter().collect();
            reasons.sort();
            let best = reasons.iter().map(|r| r.weight()).fold(0.0, f64::max);
            let score = (best + 0.05 * (reasons.len().saturating_sub(1)) as f64).min(1.0);
            c.map(|c| (score, reasons, c))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.created_at.cmp(&b.2.created_at)));
    ranked.truncate(MAX_CANDIDATES);
    let departments: HashMap<Uuid, String> = if actor.is_staff() {
        let ids: Vec<Uuid> = ranked.iter().map(|r| r.2.department_id).collect();
        department::Entity::find()
            .filter(department::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(ranked
        .into_iter()
        .map(|(score, reasons, c)| Candidate {
            score,
            reasons,
            department: departments.get(&c.department_id).cloned(),
            customer: actor.may(Resource::Customer, Action::Read, &c).then_some(c),
        })
        .collect())
}

/// Reports `customer` as a wrongly entered duplicate of `duplicate_of` (seed 004's 举报),
/// for a manager to merge or dismiss. Reporting a pair that is already open returns that
/// report.
///
/// # Errors
/// NOT_FOUND (either customer unreadable to the reporter), VALIDATION (the same customer
/// twice; a note over 1,000 characters).
pub async fn report(
    db: &DatabaseConnection,
    actor: &Actor,
    customer: Uuid,
    duplicate_of: Uuid,
    note: Option<String>,
) -> AppResult<duplicate_report::Model> {
    use duplicate_report::Column as R;
    let mut v = crate::error::Violations::new();
    if customer == duplicate_of {
        v.add("duplicateOfId", "a customer is not a duplicate of itself");
    }
    let note = crate::kernel::optional_text(&mut v, "note", note, 1000);
    v.into_result()?;
    write(db, async |txn| {
        crate::customer::get(txn, actor, customer).await?;
        crate::customer::get(txn, actor, duplicate_of).await?;
        let pair = Condition::any()
            .add(Condition::all().add(R::CustomerId.eq(customer)).add(R::DuplicateOfId.eq(duplicate_of)))
            .add(Condition::all().add(R::CustomerId.eq(duplicate_of)).add(R::DuplicateOfId.eq(customer)));
        if let Some(open) = duplicate_report::Entity::find()
            .filter(R::Status.eq(DuplicateReportStatus::Open))
            .filter(pair)
            .one(txn)
            .await?
        {
            return Ok(open);
        }
        let at = now();
        let m = duplicate_report::ActiveModel {
            id: Set(new_id()),
            customer_id: Set(customer),
            duplicate_of_id: Set(duplicate_of),
            note: Set(note),
            reported_by: Set(actor.id()),
            status: Set(DuplicateReportStatus::Open),
            resolved_by: Set(None),
            resolved_at: Set(None),
            resolution: Set(None),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::DuplicateReport, m.id, None, Some(&m)).await?;
        Ok(m)
    })
    .await
}

/// The reports a caller may work on: both customers readable to them, and a role that may
/// delete customers (merging needs it). Oldest first.
fn queue_condition(actor: &Actor) -> AppResult<Condition> {
    use duplicate_report::Column as R;
    if !actor.grant(Resource::Customer, Action::Delete).allowed() {
        return Err(AppError::Forbidden("your role may not merge customers, so has no duplicate queue".into()));
    }
    let readable = || {
        let mut q = sea_orm::sea_query::Query::select();
        q.column(customer::Column::Id)
            .from(customer::Entity)
            .cond_where(actor.customer_condition(Resource::Customer, Action::Read));
        q
    };
    Ok(Condition::all().add(R::CustomerId.in_subquery(readable())).add(R::DuplicateOfId.in_subquery(readable())))
}

/// The duplicate queue (see `queue_condition`), of one status, oldest first.
///
/// # Errors
/// FORBIDDEN for roles that may not delete customers.
pub async fn queue(
    db: &DatabaseConnection,
    actor: &Actor,
    status: DuplicateReportStatus,
    page: &crate::kernel::pagination::PageArgs,
) -> AppResult<crate::kernel::pagination::Page<duplicate_report::Model>> {
    use crate::kernel::pagination::{SortKey, SortValue, paginate};
    use duplicate_report::Column as R;
    let select = duplicate_report::Entity::find().filter(R::Status.eq(status)).filter(queue_condition(actor)?);
    let keys =
        [SortKey::new("createdAt", R::CreatedAt, false, |m: &duplicate_report::Model| SortValue::Time(m.created_at))];
    paginate(db, select, &keys, R::Id, |m| m.id, page).await
}

/// Dismisses an open report (the two are different customers).
///
/// # Errors
/// NOT_FOUND (not in the caller's queue), CONFLICT (no longer open).
pub async fn dismiss(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    resolution: Option<String>,
) -> AppResult<duplicate_report::Model> {
    let mut v = crate::error::Violations::new();
    let resolution = crate::kernel::optional_text(&mut v, "resolution", resolution, 1000);
    v.into_result()?;
    write(db, async |txn| {
        let old = duplicate_report::Entity::find_by_id(id)
            .filter(queue_condition(actor)?)
            .one(txn)
            .await?
            .ok_or(AppError::NotFound("duplicate report"))?;
        if old.status != DuplicateReportStatus::Open {
            return Err(AppError::Conflict(format!("the report is {} already", old.status.as_str().to_lowercase())));
        }
        let mut am: duplicate_report::ActiveModel = old.clone().into();
        am.status = Set(DuplicateReportStatus::Dismissed);
        am.resolved_by = Set(Some(actor.id()));
        am.resolved_at = Set(Some(now()));
        am.resolution = Set(resolution);
        save::<duplicate_report::Entity>(txn, Some(actor.id()), Verb::Dismiss, &old, am).await
    })
    .await
}

/// Closes the open reports a merge settled: those naming a merged customer (`mergeCustomers`).
pub async fn settle(txn: &impl sea_orm::ConnectionTrait, by: Uuid, merged: &[Uuid]) -> AppResult<u64> {
    use duplicate_report::Column as R;
    let at = now();
    Ok(duplicate_report::Entity::update_many()
        .col_expr(R::Status, sea_orm::sea_query::Expr::value(DuplicateReportStatus::Merged.as_str()))
        .col_expr(R::ResolvedBy, sea_orm::sea_query::Expr::value(by))
        .col_expr(R::ResolvedAt, sea_orm::sea_query::Expr::value(at))
        .col_expr(R::Version, sea_orm::sea_query::ExprTrait::add(sea_orm::sea_query::Expr::col(R::Version), 1))
        .col_expr(R::UpdatedAt, sea_orm::sea_query::Expr::value(at))
        .filter(R::Status.eq(DuplicateReportStatus::Open))
        .filter(Condition::any().add(R::CustomerId.is_in(merged.to_vec())).add(R::DuplicateOfId.is_in(merged.to_vec())))
        .exec(txn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names_share_most_bigrams() {
        let a = normalize::org_name("上海恒达贸易有限公司");
        let b = normalize::org_name("恒达贸易(上海)有限公司");
        assert!(similarity(&a, &b) >= SIMILAR, "{a} {b} {}", similarity(&a, &b));
        assert!(similarity(&a, &normalize::org_name("北京华联商厦")) < 0.2);
        assert_eq!(similarity("ab", "ab"), 1.0);
        assert_eq!(phone_prefix("+8613800001111"), Some("+86138000"));
        assert_eq!(phone_prefix("+12025550123"), None);
    }
}
