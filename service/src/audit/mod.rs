//! Reading the audit trail: every write adds its row in the write's transaction
//! (`kernel::change`); here the rows are listed and masked for their reader.
use crate::access::{Actor, Placement};
use crate::catalogue::{self, HIDDEN, Visible};
use crate::error::{AppError, AppResult};
use crate::kernel::change::{Subject, Verb};
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::vault::Keyring;
use entity::audit_log::{self, Column};
use entity::customer;
use entity::enums::{Action, Resource, Scope};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// What the audit trail is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub record_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub entity: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// Records that hang off a customer.
const CHILDREN: [Subject; 4] = [Subject::Contact, Subject::Deal, Subject::Feedback, Subject::Interaction];

/// The audit rows an actor may read: everything with an ALL grant; otherwise the rows
/// about customers its AUDIT READ grant reaches, and about their contacts, deals,
/// feedback and interactions (staff and settings rows need ALL).
///
/// # Errors
/// FORBIDDEN without an AUDIT READ grant.
pub fn read_condition(actor: &Actor) -> AppResult<Condition> {
    let grant = actor.require(Resource::Audit, Action::Read)?;
    if grant.scope == Scope::All {
        return Ok(Condition::all());
    }
    let reach = actor.reach(Resource::Audit, Action::Read);
    let customers = || {
        Query::select()
            .column((customer::Entity, customer::Column::Id))
            .from(customer::Entity)
            .cond_where(reach.condition(customer::Column::OwnerId, customer::Column::DepartmentId))
            .to_owned()
    };
    let under = |table: &str| {
        let t = Alias::new(table);
        Query::select()
            .column((t.clone(), Alias::new("id")))
            .from(t.clone())
            .and_where(Expr::col((t, Alias::new("customer_id"))).in_subquery(customers()))
            .to_owned()
    };
    let mut any = Condition::any().add(
        Condition::all()
            .add(Column::Entity.is_in([Subject::Customer.as_str(), Subject::Consent.as_str()]))
            .add(Column::RecordId.in_subquery(customers())),
    );
    for child in CHILDREN {
        let child = child.as_str();
        any = any.add(Condition::all().add(Column::Entity.eq(child)).add(Column::RecordId.in_subquery(under(child))));
    }
    Ok(any)
}

/// A page of the audit trail, newest first, as the actor may read it (values masked
/// per its field grants: see [`mask`]).
///
/// # Errors
/// FORBIDDEN, VALIDATION (paging, an unknown action or entity).
pub async fn list(
    db: &DatabaseConnection,
    vault: &Keyring,
    actor: &Actor,
    filter: &AuditFilter,
    page: &PageArgs,
) -> AppResult<Page<audit_log::Model>> {
    let mut q = audit_log::Entity::find().filter(read_condition(actor)?);
    if let Some(id) = filter.record_id {
        q = q.filter(Column::RecordId.eq(id));
    }
    if let Some(id) = filter.user_id {
        q = q.filter(Column::ActorId.eq(id));
    }
    if let Some(a) = &filter.action {
        let verb = Verb::parse(a.trim()).ok_or_else(|| {
            let known: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
            AppError::invalid("filter.action", format!("unknown action; one of {}", known.join(", ")))
        })?;
        q = q.filter(Column::Action.eq(verb.as_str()));
    }
    if let Some(e) = &filter.entity {
        let subject = Subject::parse(e.trim()).ok_or_else(|| {
            let known: Vec<&str> = Subject::ALL.iter().map(|v| v.as_str()).collect();
            AppError::invalid("filter.entity", format!("unknown entity; one of {}", known.join(", ")))
        })?;
        q = q.filter(Column::Entity.eq(subject.as_str()));
    }
    if let Some(from) = filter.from {
        q = q.filter(Column::At.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(Column::At.lte(to));
    }
    let keys = [SortKey::new("at", Column::At, true, |m: &audit_log::Model| SortValue::Time(m.at))];
    let mut page = paginate(db, q, &keys, Column::Id, |m| m.id, page).await?;
    let placements = placements_of(db, page.edges.iter().map(|(_, m)| m)).await?;
    for (_, row) in &mut page.edges {
        mask(vault, actor, row, &placements);
    }
    Ok(page)
}

/// The first `customer_id` anywhere in a JSON value (a record, or a `{deal, lineItems}`
/// pair).
fn customer_id_in(v: &serde_json::Value) -> Option<Uuid> {
    match v {
        serde_json::Value::Object(map) => map
            .get("customer_id")
            .and_then(|c| c.as_str())
            .and_then(|c| Uuid::parse_str(c).ok())
            .or_else(|| map.values().find_map(customer_id_in)),
        serde_json::Value::Array(items) => items.iter().find_map(customer_id_in),
        _ => None,
    }
}

/// The customer an audit row is about: itself, or the customer its record hangs off
/// (named in the values).
fn customer_of(row: &audit_log::Model) -> Option<Uuid> {
    match Subject::parse(&row.entity)? {
        Subject::Customer | Subject::Consent => Some(row.record_id),
        e if CHILDREN.contains(&e) => [&row.new_values, &row.old_values].into_iter().flatten().find_map(customer_id_in),
        _ => None,
    }
}

/// Where the customers of these rows sit now.
///
/// # Errors
/// Database errors.
pub async fn placements_of<'a>(
    db: &impl ConnectionTrait,
    rows: impl Iterator<Item = &'a audit_log::Model>,
) -> AppResult<HashMap<Uuid, Placement>> {
    let ids: Vec<Uuid> = rows.filter_map(customer_of).collect::<HashSet<_>>().into_iter().collect();
    Ok(crate::customer::placements(db, ids).await?.into_iter().collect())
}

/// Masks a stored record of `subject` (its JSON, as in the audit log or the personal-data
/// export) for `actor`, given where its customer sits: the fields (per the record's
/// catalogue) of each group whose READ grant does not reach that customer read
/// `[hidden]`. Records under a customer follow that customer. (Not relative to what the
/// caller may read, as on the API: audit rows are reached through a grant of their own,
/// possibly wider.)
pub fn mask_record(actor: &Actor, subject: Subject, value: &mut serde_json::Value, placement: Option<Placement>) {
    let Some(catalogue) = catalogue::of(subject) else { return };
    let visible = Visible::of(|group| {
        let reach = actor.reach(group, Action::Read);
        placement.map_or(reach.everything, |p| reach.admits(p))
    });
    catalogue.mask(value, &visible);
}

/// Masks the values of an audit row for `actor` ([`mask_record`], where the record's
/// customer sits now deciding), and opens the sealed addresses it may see.
pub fn mask(vault: &Keyring, actor: &Actor, row: &mut audit_log::Model, placements: &HashMap<Uuid, Placement>) {
    let placement = customer_of(row).and_then(|c| placements.get(&c).copied());
    let Some(subject) = Subject::parse(&row.entity) else { return };
    let sealed_field = match subject {
        Subject::Customer => Some(crate::customer::ADDRESS),
        Subject::Contact => Some(crate::records::contact::ADDRESS),
        _ => None,
    };
    let record = row.record_id;
    for values in [&mut row.old_values, &mut row.new_values].into_iter().flatten() {
        mask_record(actor, subject, values, placement);
        if let (Some(field), Some(address)) = (sealed_field, values.get_mut("address"))
            && let Some(stored) = address.as_str().filter(|s| *s != HIDDEN)
        {
            *address = serde_json::Value::String(vault.open(field, record, stored).unwrap_or_else(|_| HIDDEN.into()));
        }
    }
}
