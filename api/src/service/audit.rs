//! The audit trail: every write adds a row in the same transaction as the write.
use super::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::auth::{Actor, FieldAccess, Placement};
use crate::error::AppResult;
use crate::vault::Keyring;
use entity::audit_log::{self, Column};
use entity::customer;
use entity::enums::{Action, Resource, Scope};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Appends one audit row. `old`/`new` are the record before and after.
pub async fn record<T: Serialize>(
    db: &impl ConnectionTrait,
    actor_id: Option<Uuid>,
    action: &str,
    entity: &str,
    record_id: Uuid,
    old: Option<&T>,
    new: Option<&T>,
) -> AppResult<()> {
    let to_json = |v: Option<&T>| v.and_then(|v| serde_json::to_value(v).ok());
    audit_log::ActiveModel {
        id: Set(super::new_id()),
        actor_id: Set(actor_id),
        action: Set(action.to_string()),
        entity: Set(entity.to_string()),
        record_id: Set(record_id),
        old_values: Set(to_json(old)),
        new_values: Set(to_json(new)),
        at: Set(super::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

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

/// Records that hang off a customer, by the audit's entity name.
const CHILDREN: [&str; 4] = ["contact", "deal", "feedback", "interaction"];

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
            .add(Column::Entity.is_in(["customer", "consent"]))
            .add(Column::RecordId.in_subquery(customers())),
    );
    for child in CHILDREN {
        any = any.add(Condition::all().add(Column::Entity.eq(child)).add(Column::RecordId.in_subquery(under(child))));
    }
    Ok(any)
}

/// A page of the audit trail, newest first, as the actor may read it (values masked
/// per its field grants: see [`mask`]).
///
/// # Errors
/// FORBIDDEN, VALIDATION (paging).
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
        q = q.filter(Column::Action.eq(a.trim()));
    }
    if let Some(e) = &filter.entity {
        q = q.filter(Column::Entity.eq(e.trim()));
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

/// The customer an audit row is about: itself, or the customer its record hangs off
/// (named in the values).
fn customer_of(row: &audit_log::Model) -> Option<Uuid> {
    match row.entity.as_str() {
        "customer" | "consent" => Some(row.record_id),
        e if CHILDREN.contains(&e) => [&row.new_values, &row.old_values]
            .into_iter()
            .flatten()
            .find_map(|v| v.get("customer_id").and_then(|c| c.as_str()).and_then(|c| Uuid::parse_str(c).ok())),
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
    Ok(super::customer::placements(db, ids).await?.into_iter().collect())
}

/// Fields of an audited record by field group (names as stored in the values).
fn groups_of(entity: &str) -> &'static [(Resource, &'static [&'static str])] {
    const CUSTOMER: &[(Resource, &[&str])] = &[
        (Resource::ContactDetails, &["phone", "phone_norm", "email", "email_norm", "address"]),
        (Resource::PersonalDetails, &["birthday", "soft_profile", "gender"]),
        (Resource::DealAmount, &["revenue_minor", "margin_minor"]),
    ];
    const CONTACT: &[(Resource, &[&str])] = &[
        (Resource::ContactDetails, &["mobile", "office_phone", "email", "address"]),
        (Resource::PersonalDetails, &["birthday", "hometown", "hobbies", "id_number"]),
    ];
    const DEAL: &[(Resource, &[&str])] =
        &[(Resource::DealAmount, &["amount_minor", "unit_price_minor", "unit_cost_minor"])];
    match entity {
        "customer" => CUSTOMER,
        "contact" => CONTACT,
        "deal" => DEAL,
        _ => &[],
    }
}

/// What a hidden value reads as.
pub const HIDDEN: &str = "[hidden]";

/// Masks the values of an audit row for `actor`: fields of a group it does not see on
/// the record's customer read `[hidden]` (where that customer sits now decides); sealed
/// addresses it may see are opened. Line-item lists are masked item by item.
pub fn mask(vault: &Keyring, actor: &Actor, row: &mut audit_log::Model, placements: &HashMap<Uuid, Placement>) {
    let placement = customer_of(row).and_then(|c| placements.get(&c).copied());
    let over = if row.entity == "customer" { Resource::Customer } else { Resource::Contact };
    let sealed_field = match row.entity.as_str() {
        "customer" => Some(super::customer::ADDRESS),
        "contact" => Some(super::contact::ADDRESS),
        _ => None,
    };
    for (group, fields) in groups_of(&row.entity) {
        let access = actor.field_access(*group, over);
        let shown = placement.map_or(access == FieldAccess::Every, |p| access.admits(p));
        for values in [&mut row.old_values, &mut row.new_values].into_iter().flatten() {
            let objects: Vec<&mut serde_json::Value> = match values {
                serde_json::Value::Array(items) => items.iter_mut().collect(),
                v => vec![v],
            };
            for object in objects {
                let Some(map) = object.as_object_mut() else { continue };
                for field in *fields {
                    let Some(value) = map.get_mut(*field) else { continue };
                    if serde_json::Value::is_null(value) {
                        continue;
                    }
                    if !shown {
                        *value = serde_json::Value::String(HIDDEN.into());
                    } else if *field == "address"
                        && let (Some(name), Some(stored)) = (sealed_field, value.as_str())
                    {
                        *value = match vault.open(name, row.record_id, stored) {
                            Ok(plain) => serde_json::Value::String(plain),
                            Err(_) => serde_json::Value::String(HIDDEN.into()),
                        };
                    }
                }
            }
        }
    }
}
