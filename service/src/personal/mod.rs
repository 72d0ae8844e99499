//! A person's data (`docs/privacy.md`): everything stored about a customer as one document
//! (export), the irreversible anonymisation of its personal fields (erase), the legal hold
//! that stops an erasure, and marketing consent per channel.
mod consents;
pub mod seal;

use crate::access::{Actor, Placement};
use crate::audit;
use crate::customer as customers;
use crate::error::{AppError, AppResult};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::store::write;
use crate::kernel::vault::Keyring;
use crate::kernel::{clean, now};
use crate::records::contact;
pub use consents::*;
use entity::enums::{Action, ConsentChannel, Resource};
use entity::{
    audit_log, classification_history, consent, contact as contact_row, customer, deal, deal_line_item, feedback,
    interaction, reminder,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// What an erased text reads as.
pub const ERASED: &str = "[erased]";

/// The customer `id` (live or in the trash) if `actor`'s grant for `action` on a
/// person's data reaches it: NOT_FOUND when the caller may not even read it, FORBIDDEN
/// when it may read it but not export or erase it.
async fn load_for(db: &impl ConnectionTrait, actor: &Actor, id: Uuid, action: Action) -> AppResult<customer::Model> {
    let c = customer::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("customer"))?;
    let placement = Placement::from(&c);
    if actor.reach(Resource::PersonalData, action).admits(placement) {
        return Ok(c);
    }
    let readable = c.deleted_at.is_none() && actor.reach(Resource::Customer, Action::Read).admits(placement);
    if readable {
        Err(AppError::Forbidden(match action {
            Action::Delete => "you may not erase this person's data".into(),
            _ => "you may not export this person's data".into(),
        }))
    } else {
        Err(AppError::NotFound("customer"))
    }
}

/// Locks the customer row for the rest of the transaction (PostgreSQL; SQLite's write
/// transactions are serial anyway). Every write of a person's data takes it first, so an
/// erasure and a concurrent change run one after the other: the later one sees the
/// erased row, never writes back what it read before.
///
/// # Errors
/// NOT_FOUND.
pub async fn lock_customer(txn: &DatabaseTransaction, id: Uuid) -> AppResult<customer::Model> {
    customer::Entity::find_by_id(id).lock_exclusive().one(txn).await?.ok_or(AppError::NotFound("customer"))
}

/// Ids of a customer's records of one kind (trash included).
async fn ids_of<E: EntityTrait>(
    db: &impl ConnectionTrait,
    customer_col: E::Column,
    id_col: E::Column,
    of: Uuid,
) -> AppResult<Vec<Uuid>>
where
    E::Column: ColumnTrait,
{
    Ok(E::find().select_only().column(id_col).filter(customer_col.eq(of)).into_tuple().all(db).await?)
}

/// The audit rows about a customer and every record under it, oldest first. The rows of
/// earlier exports are left out: each quotes what it exported, so quoting them would make
/// every export carry all the ones before it (a loop of exports grew an answer to 87 MB).
async fn audit_rows(db: &impl ConnectionTrait, of: Uuid, children: &[Uuid]) -> AppResult<Vec<audit_log::Model>> {
    let mut ids = children.to_vec();
    ids.push(of);
    let mut rows = Vec::new();
    for chunk in ids.chunks(1000) {
        rows.extend(
            audit_log::Entity::find()
                .filter(audit_log::Column::RecordId.is_in(chunk.to_vec()))
                .filter(audit_log::Column::Action.ne(Verb::ExportPersonalData.as_str()))
                .order_by_asc(audit_log::Column::At)
                .order_by_asc(audit_log::Column::Id)
                .all(db)
                .await?,
        );
    }
    rows.sort_by_key(|r| (r.at, r.id));
    Ok(rows)
}

/// The records merged into customer `id` (`mergeCustomers`), followed back through
/// chains (a record merged into one that was merged into `id` later).
///
/// # Errors
/// Database errors.
async fn merged_into(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Vec<Uuid>> {
    let mut found: Vec<Uuid> = Vec::new();
    let mut frontier = vec![id];
    while !frontier.is_empty() {
        let next: Vec<Uuid> = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .filter(customer::Column::MergedInto.is_in(frontier))
            .into_tuple()
            .all(db)
            .await?;
        frontier = next.into_iter().filter(|n| *n != id && !found.contains(n)).collect();
        found.extend(&frontier);
    }
    Ok(found)
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Everything stored about the person `id`, as one JSON document: the customer, the
/// records merged into it, its consents, contacts (ID numbers and addresses opened), deals with their line items,
/// interactions, feedback, reminders, classification history and every audit row about
/// them; records in the trash included. The export itself is audited.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN (PERSONAL_DATA READ must reach the customer).
pub async fn export(db: &DatabaseConnection, vault: &Keyring, actor: &Actor, id: Uuid) -> AppResult<Value> {
    let c = load_for(db, actor, id, Action::Read).await?;
    let placement = Some(Placement::from(&c));
    let mut person = to_json(&c);
    person["address"] = json!(customers::address(vault, &c)?);
    // The exporter's field groups apply as everywhere else.
    audit::mask_record(actor, Subject::Customer, &mut person, placement);
    // Records merged into this one hold the same person's data as entered then (their
    // contacts, deals and history moved here).
    let merged_ids = merged_into(db, id).await?;
    let mut merged = Vec::new();
    for m in customer::Entity::find().filter(customer::Column::Id.is_in(merged_ids.clone())).all(db).await? {
        let mut v = to_json(&m);
        v["address"] = json!(customers::address(vault, &m)?);
        audit::mask_record(actor, Subject::Customer, &mut v, placement);
        merged.push(v);
    }
    let consents = consent::Entity::find().filter(consent::Column::CustomerId.eq(id)).all(db).await?;
    let mut contacts = Vec::new();
    let mut children: Vec<Uuid> = Vec::new();
    for k in contact_row::Entity::find().filter(contact_row::Column::CustomerId.eq(id)).all(db).await? {
        children.push(k.id);
        let mut v = to_json(&k);
        v["address"] = json!(contact::address(vault, &k)?);
        v["id_number"] = json!(contact::id_number(vault, &k)?);
        audit::mask_record(actor, Subject::Contact, &mut v, placement);
        contacts.push(v);
    }
    let deals = deal::Entity::find().filter(deal::Column::CustomerId.eq(id)).all(db).await?;
    let deal_ids: Vec<Uuid> = deals.iter().map(|d| d.id).collect();
    let mut items: HashMap<Uuid, Vec<Value>> = HashMap::new();
    for chunk in deal_ids.chunks(1000) {
        for item in
            deal_line_item::Entity::find().filter(deal_line_item::Column::DealId.is_in(chunk.to_vec())).all(db).await?
        {
            items.entry(item.deal_id).or_default().push(to_json(&item));
        }
    }
    let deals: Vec<Value> = deals
        .iter()
        .map(|d| {
            let mut v = to_json(d);
            v["line_items"] = Value::Array(items.remove(&d.id).unwrap_or_default());
            audit::mask_record(actor, Subject::Deal, &mut v, placement);
            v
        })
        .collect();
    let interactions = interaction::Entity::find().filter(interaction::Column::CustomerId.eq(id)).all(db).await?;
    let feedback = feedback::Entity::find().filter(feedback::Column::CustomerId.eq(id)).all(db).await?;
    let reminders = reminder::Entity::find().filter(reminder::Column::CustomerId.eq(id)).all(db).await?;
    let history = classification_history::Entity::find()
        .filter(classification_history::Column::CustomerId.eq(id))
        .order_by_asc(classification_history::Column::At)
        .all(db)
        .await?;
    children.extend(&deal_ids);
    children.extend(interactions.iter().map(|i| i.id));
    children.extend(feedback.iter().map(|f| f.id));
    children.extend(&merged_ids);
    let mut trail = audit_rows(db, id, &children).await?;
    let placements = audit::placements_of(db, trail.iter()).await?;
    for row in &mut trail {
        audit::mask(vault, actor, row, &placements);
    }
    let trail: Vec<Value> = trail
        .iter()
        .map(|r| {
            json!({"id": r.id, "at": r.at, "actor_id": r.actor_id, "action": r.action, "entity": r.entity,
                   "record_id": r.record_id, "old_values": r.old_values, "new_values": r.new_values})
        })
        .collect();
    let exported_at = now();
    write(db, async |txn| {
        let what = json!({"exported_at": exported_at});
        change::record(txn, Some(actor.id()), Verb::ExportPersonalData, Subject::Customer, id, None, Some(&what)).await
    })
    .await?;
    Ok(json!({
        "format": "crm-personal-data/1",
        "exported_at": exported_at,
        "exported_by": actor.id(),
        "customer": person,
        "merged_customers": merged,
        "consents": consents.iter().map(to_json).collect::<Vec<_>>(),
        "contacts": contacts,
        "deals": deals,
        "interactions": interactions.iter().map(to_json).collect::<Vec<_>>(),
        "feedback": feedback.iter().map(to_json).collect::<Vec<_>>(),
        "reminders": reminders.iter().map(to_json).collect::<Vec<_>>(),
        "classification_history": history.iter().map(to_json).collect::<Vec<_>>(),
        "audit": trail,
    }))
}

/// The personal fields of each audited kind of record, as named in audit values: a
/// record's are its catalogue's (`erase`); reminders and consents have none.
fn personal_fields(entity: &str) -> Vec<String> {
    let Some(subject) = Subject::parse(entity) else { return Vec::new() };
    if let Some(catalogue) = crate::catalogue::of(subject) {
        return catalogue.erased_keys();
    }
    let keys: &[&str] = match subject {
        // A birthday greeting's occasion and due time tell the birthday.
        Subject::Reminder => &["reason", "message", "dismissed_reason", "occasion", "due_at"],
        Subject::Consent => &["source"],
        _ => &[],
    };
    keys.iter().map(|k| k.to_string()).collect()
}

/// Overwrites the personal fields of a JSON record at any depth (a record, a list of
/// them, a `{deal, lineItems}` pair).
fn scrub(values: &mut Value, fields: &[&str]) {
    match values {
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, fields)),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if fields.contains(&k.as_str()) && !Value::is_null(v) {
                    *v = Value::String(ERASED.into());
                } else {
                    scrub(v, fields);
                }
            }
        }
        _ => {}
    }
}

/// Irreversibly anonymises the person `id`: the personal fields of the customer and of
/// its contacts become empty (names read "[erased]"), the free texts of its interactions,
/// feedback and reminders are overwritten, and so are the same fields in every audit row
/// about them. Deals, amounts, line items, grades, dates and the classification history
/// stay, so reports stay true. The erasure is audited with its reason.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN (PERSONAL_DATA DELETE must reach the customer), VALIDATION (a
/// reason is required), CONFLICT while a legal hold is set.
pub async fn erase(db: &DatabaseConnection, actor: &Actor, id: Uuid, reason: &str) -> AppResult<customer::Model> {
    let reason = clean(Some(reason.to_string()))
        .ok_or_else(|| AppError::invalid("reason", "say why (the request, its date)"))?;
    if reason.chars().count() > 500 {
        return Err(AppError::invalid("reason", "at most 500 characters"));
    }
    write(db, async |txn| {
        lock_customer(txn, id).await.map_err(|_| AppError::NotFound("customer"))?;
        let c = load_for(txn, actor, id, Action::Delete).await?;
        // Answers kept for idempotent retries may quote the person.
        crate::kernel::idempotency::forget_answers(txn).await?;
        // So may webhook payloads about this customer, kept for retries.
        crate::webhook::outbox::forget_customer(txn, id).await?;
        if c.legal_hold {
            return Err(AppError::Conflict(format!(
                "this person's data is under a legal hold ({}); lift it first",
                c.legal_hold_reason.clone().unwrap_or_default()
            )));
        }
        // The records merged into this one are the same person's: they sit in the trash
        // with their fields, and go too.
        let mut people = vec![id];
        people.extend(merged_into(txn, id).await?);
        let at = now();
        customer::Entity::update_many()
            .col_expr(customer::Column::Name, Expr::value(ERASED))
            .col_expr(customer::Column::NameNorm, Expr::value(None::<String>))
            .col_expr(customer::Column::Gender, Expr::value(None::<String>))
            .col_expr(customer::Column::Birthday, Expr::value(None::<chrono::NaiveDate>))
            .col_expr(customer::Column::Phone, Expr::value(None::<String>))
            .col_expr(customer::Column::PhoneNorm, Expr::value(None::<String>))
            .col_expr(customer::Column::Email, Expr::value(None::<String>))
            .col_expr(customer::Column::EmailNorm, Expr::value(None::<String>))
            .col_expr(customer::Column::Address, Expr::value(None::<String>))
            .col_expr(customer::Column::SoftProfile, Expr::value(None::<Value>))
            .col_expr(customer::Column::CustomFields, Expr::value(None::<Value>))
            .col_expr(
                customer::Column::TierOverrideReason,
                Expr::value(c.tier_override_reason.as_ref().map(|_| ERASED.to_string())),
            )
            .col_expr(customer::Column::ErasedAt, Expr::value(at))
            .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
            .col_expr(customer::Column::UpdatedAt, Expr::value(at))
            .filter(customer::Column::Id.is_in(people.clone()))
            .exec(txn)
            .await?;
        contact_row::Entity::update_many()
            .col_expr(contact_row::Column::Name, Expr::value(ERASED))
            .col_expr(contact_row::Column::Gender, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Title, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Birthday, Expr::value(None::<chrono::NaiveDate>))
            .col_expr(contact_row::Column::Mobile, Expr::value(None::<String>))
            .col_expr(contact_row::Column::OfficePhone, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Email, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Address, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Hometown, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Hobbies, Expr::value(None::<String>))
            .col_expr(contact_row::Column::IdNumber, Expr::value(None::<String>))
            .col_expr(contact_row::Column::IdNumberIndex, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Notes, Expr::value(None::<String>))
            .col_expr(contact_row::Column::Version, Expr::col(contact_row::Column::Version).add(1))
            .col_expr(contact_row::Column::UpdatedAt, Expr::value(at))
            .filter(contact_row::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        interaction::Entity::update_many()
            .col_expr(interaction::Column::Summary, Expr::value(ERASED))
            .col_expr(interaction::Column::Outcome, Expr::value(None::<String>))
            .col_expr(interaction::Column::Version, Expr::col(interaction::Column::Version).add(1))
            .col_expr(interaction::Column::UpdatedAt, Expr::value(at))
            .filter(interaction::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        feedback::Entity::update_many()
            .col_expr(feedback::Column::Content, Expr::value(ERASED))
            .col_expr(feedback::Column::Version, Expr::col(feedback::Column::Version).add(1))
            .col_expr(feedback::Column::UpdatedAt, Expr::value(at))
            .filter(feedback::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        feedback::Entity::update_many()
            .col_expr(feedback::Column::Resolution, Expr::value(ERASED))
            .filter(feedback::Column::CustomerId.eq(id))
            .filter(feedback::Column::Resolution.is_not_null())
            .exec(txn)
            .await?;
        reminder::Entity::update_many()
            .col_expr(reminder::Column::Reason, Expr::value(ERASED))
            .col_expr(reminder::Column::Message, Expr::value(""))
            .filter(reminder::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        reminder::Entity::update_many()
            .col_expr(reminder::Column::DismissedReason, Expr::value(ERASED))
            .filter(reminder::Column::CustomerId.eq(id))
            .filter(reminder::Column::DismissedReason.is_not_null())
            .exec(txn)
            .await?;
        deal::Entity::update_many()
            .col_expr(deal::Column::Title, Expr::value(ERASED))
            .col_expr(deal::Column::Version, Expr::col(deal::Column::Version).add(1))
            .col_expr(deal::Column::UpdatedAt, Expr::value(at))
            .filter(deal::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        deal::Entity::update_many()
            .col_expr(deal::Column::LostReason, Expr::value(ERASED))
            .filter(deal::Column::CustomerId.eq(id))
            .filter(deal::Column::LostReason.is_not_null())
            .exec(txn)
            .await?;
        consent::Entity::update_many()
            .col_expr(consent::Column::Source, Expr::value(None::<String>))
            .filter(consent::Column::CustomerId.eq(id))
            .exec(txn)
            .await?;
        for person in &people {
            scrub_audit(txn, *person).await?;
        }
        // Birthday greetings tell the birthday (their occasion is its date): gone with it.
        reminder::Entity::delete_many()
            .filter(reminder::Column::CustomerId.eq(id))
            .filter(reminder::Column::Rule.eq(entity::enums::ReminderRule::Birthday))
            .exec(txn)
            .await?;

        let after = customer::Entity::find_by_id(id).one(txn).await?.ok_or(AppError::NotFound("customer"))?;
        let what = json!({"reason": reason});
        change::record(txn, Some(actor.id()), Verb::ErasePersonalData, Subject::Customer, id, None, Some(&what))
            .await?;
        Ok(after)
    })
    .await
}

/// Overwrites the personal fields in every audit row about the customer and the records
/// under it (rendered reminder texts included).
async fn scrub_audit(txn: &DatabaseTransaction, id: Uuid) -> AppResult<()> {
    let mut children =
        ids_of::<contact_row::Entity>(txn, contact_row::Column::CustomerId, contact_row::Column::Id, id).await?;
    children.extend(
        ids_of::<interaction::Entity>(txn, interaction::Column::CustomerId, interaction::Column::Id, id).await?,
    );
    children.extend(ids_of::<feedback::Entity>(txn, feedback::Column::CustomerId, feedback::Column::Id, id).await?);
    children.extend(ids_of::<reminder::Entity>(txn, reminder::Column::CustomerId, reminder::Column::Id, id).await?);
    children.extend(ids_of::<deal::Entity>(txn, deal::Column::CustomerId, deal::Column::Id, id).await?);
    for row in audit_rows(txn, id, &children).await? {
        let fields = personal_fields(&row.entity);
        if fields.is_empty() {
            continue;
        }
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let (mut old, mut new) = (row.old_values.clone(), row.new_values.clone());
        for v in [&mut old, &mut new].into_iter().flatten() {
            scrub(v, &fields);
        }
        if (&old, &new) != (&row.old_values, &row.new_values) {
            audit_log::Entity::update_many()
                .col_expr(audit_log::Column::OldValues, Expr::value(old))
                .col_expr(audit_log::Column::NewValues, Expr::value(new))
                .filter(audit_log::Column::Id.eq(row.id))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_overwrites_the_fields_the_catalogues_mark() {
        let sorted = |entity: &str| {
            let mut keys = personal_fields(entity);
            keys.sort();
            keys
        };
        let list = |keys: &[&str]| {
            let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            keys.sort();
            keys
        };
        assert_eq!(
            sorted("customer"),
            list(&[
                "name",
                "name_norm",
                "gender",
                "birthday",
                "phone",
                "phone_norm",
                "email",
                "email_norm",
                "address",
                "soft_profile",
                "custom_fields",
                "tier_override_reason"
            ])
        );
        assert_eq!(
            sorted("contact"),
            list(&[
                "name",
                "gender",
                "title",
                "birthday",
                "mobile",
                "office_phone",
                "email",
                "address",
                "hometown",
                "hobbies",
                "notes"
            ])
        );
        assert_eq!(sorted("interaction"), list(&["summary", "outcome"]));
        assert_eq!(sorted("feedback"), list(&["content", "resolution"]));
        assert_eq!(sorted("deal"), list(&["title", "lost_reason"]));
        assert_eq!(sorted("reminder"), list(&["reason", "message", "dismissed_reason", "occasion", "due_at"]));
        assert_eq!(sorted("consent"), list(&["source"]));
        assert!(sorted("user").is_empty());
    }
}
