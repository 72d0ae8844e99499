//! Merging duplicate customers (`docs/duplicates.md`, "Merge"): one survivor takes the
//! fields chosen from the others and every record that hangs off them, in one
//! transaction; the others are soft-deleted with `merged_into` and keep their audit trail.
use crate::access::Actor;
use crate::catalogue::CUSTOMER;
use crate::category;
use crate::customer::{ADDRESS, load_for_action, may_change_fields};
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::now;
use crate::kernel::store::{save, write};
use crate::kernel::vault::Keyring;
use entity::enums::{Action, ReminderStatus};
use entity::{classification_history, consent, contact, customer, deal, feedback, interaction, reminder};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TryIntoModel,
};
use std::collections::HashSet;
use uuid::Uuid;

/// Customers merged into one survivor at most, per call.
const MAX_MERGED: usize = 10;

/// Records that moved (or would move) to the survivor.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub contacts: u64,
    pub deals: u64,
    pub feedback: u64,
    pub interactions: u64,
    pub reminders: u64,
    pub classification_history: u64,
    pub consents: u64,
}

/// What a merge did, or would do.
pub struct Outcome {
    /// The survivor as merged (as it would be, on a dry run).
    pub customer: customer::Model,
    pub merged: Vec<Uuid>,
    pub moved: Moved,
    pub dry_run: bool,
}

/// Takes `field` of `from` into the survivor `am` (the address is opened under its owner
/// and sealed again under the survivor: sealed values are bound to their record).
fn take(
    vault: &Keyring,
    am: &mut customer::ActiveModel,
    survivor: Uuid,
    from: &customer::Model,
    field: &str,
) -> AppResult<()> {
    match field {
        "name" => {
            // Both are of one kind (checked), so the folded key carries over as it is.
            am.name = Set(from.name.clone());
            am.name_norm = Set(from.name_norm.clone());
        }
        "category" => am.category = Set(from.category.clone()),
        "gender" => am.gender = Set(from.gender),
        "birthday" => am.birthday = Set(from.birthday),
        "phone" => {
            am.phone = Set(from.phone.clone());
            am.phone_norm = Set(from.phone_norm.clone());
        }
        "email" => {
            am.email = Set(from.email.clone());
            am.email_norm = Set(from.email_norm.clone());
        }
        "address" => {
            let plain = crate::customer::address(vault, from)?;
            am.address = Set(plain.map(|a| vault.seal(ADDRESS, survivor, &a)));
        }
        "region" => am.region = Set(from.region.clone()),
        "industry" => am.industry = Set(from.industry.clone()),
        "source" => am.source = Set(from.source),
        "importance" => am.importance = Set(from.importance),
        "creditRating" => am.credit_rating = Set(from.credit_rating.clone()),
        "cooperationStartDate" => am.cooperation_start_date = Set(from.cooperation_start_date),
        "softProfile" => am.soft_profile = Set(from.soft_profile.clone()),
        "customFields" => am.custom_fields = Set(from.custom_fields.clone()),
        _ => {}
    }
    Ok(())
}

/// A merge as asked for.
pub struct Request {
    pub survivor: Uuid,
    pub merged: Vec<Uuid>,
    /// `(field, from)`: take the field from that customer.
    pub choices: Vec<(String, Uuid)>,
    /// The survivor's version the caller saw (its dry run's): CONFLICT if it moved on.
    pub survivor_version: Option<i32>,
    pub dry_run: bool,
}

/// Merges `merged` into `survivor`, taking each `(field, from)` of `choices` from that
/// customer (the survivor's own value otherwise). A dry run computes the merged record
/// and what would move, and writes nothing.
///
/// # Errors
/// NOT_FOUND (a customer the caller cannot read), FORBIDDEN (no update grant over the
/// survivor or no delete grant over a merged customer; a field of a group the caller does
/// not see), VALIDATION (bad ids or choices; the merged record against its category's
/// template), DUPLICATE (two contacts with the same ID number would meet), CONFLICT.
pub async fn merge(db: &DatabaseConnection, vault: &Keyring, actor: &Actor, request: Request) -> AppResult<Outcome> {
    let Request { survivor, merged, choices, survivor_version, dry_run } = request;
    let mut v = Violations::new();
    let distinct: HashSet<Uuid> = merged.iter().copied().collect();
    if merged.is_empty() || merged.len() > MAX_MERGED {
        v.add("mergedIds", format!("1 to {MAX_MERGED} customers"));
    } else if distinct.len() != merged.len() {
        v.add("mergedIds", "lists a customer twice");
    }
    if distinct.contains(&survivor) {
        v.add("mergedIds", "the survivor cannot be merged into itself");
    }
    let mut fields = HashSet::new();
    for (i, (field, from)) in choices.iter().enumerate() {
        if !CUSTOMER.mergeable(field) {
            let all: Vec<&str> = CUSTOMER.fields.iter().filter(|f| f.merge).map(|f| f.name).collect();
            v.add(format!("fieldChoices[{i}].field"), format!("one of {}", all.join(", ")));
        }
        if !fields.insert(field.as_str()) {
            v.add(format!("fieldChoices[{i}].field"), format!("{field} is chosen twice"));
        }
        if *from != survivor && !distinct.contains(from) {
            v.add(format!("fieldChoices[{i}].fromId"), "must be the survivor or one of the merged customers");
        }
    }
    v.into_result()?;

    write(db, async |txn| {
        // Every record involved is locked first, in id order (PostgreSQL; SQLite's write
        // transactions are serial): two opposite merges wait instead of deadlocking, and
        // writers that lock a customer (regrading) wait for the merge.
        if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let mut all: Vec<Uuid> = merged.iter().copied().chain([survivor]).collect();
            all.sort();
            customer::Entity::find()
                .filter(customer::Column::Id.is_in(all))
                .order_by_asc(customer::Column::Id)
                .lock_exclusive()
                .all(txn)
                .await?;
        }
        let old = load_for_action(txn, actor, survivor, Action::Update).await?;
        crate::kernel::store::check_version::<customer::Entity>(&old, survivor_version)?;
        let mut others = Vec::new();
        for id in &merged {
            others.push(load_for_action(txn, actor, *id, Action::Delete).await?);
        }
        if let Some(held) = std::iter::once(&old).chain(&others).find(|c| c.legal_hold) {
            return Err(AppError::Conflict(format!(
                "customer {} is under a legal hold; its records stay where they are until the hold is lifted",
                held.id
            )));
        }
        if others.iter().any(|o| o.kind != old.kind) {
            return Err(AppError::invalid(
                "mergedIds",
                "a person and an organization cannot be merged: the customers must be of one kind",
            ));
        }
        let mut am: customer::ActiveModel = old.clone().into();
        for (field, from) in &choices {
            let source = if *from == survivor { &old } else { others.iter().find(|o| o.id == *from).unwrap_or(&old) };
            // What one cannot read, one does not copy; what one cannot change, one does not
            // overwrite (the field's group is the catalogue's).
            may_change_fields(actor, &CUSTOMER, source.into(), &[(field, true)])?;
            may_change_fields(actor, &CUSTOMER, (&old).into(), &[(field, true)])?;
            take(vault, &mut am, survivor, source, field)?;
        }
        // The merged record against its category's template, as an update of the survivor.
        let mut v = Violations::new();
        category::check_update(txn, &category::Catalogue::load(txn).await?, &mut v, &old, &am).await?;
        v.into_result()?;

        if dry_run {
            let moved = count(txn, survivor, &merged).await?;
            let customer = am.try_into_model().map_err(|e| AppError::Internal(Box::new(e)))?;
            return Ok(Outcome { customer, merged: merged.clone(), moved, dry_run });
        }
        // The merged records go first: their keys (phone, e-mail, name) are free for the
        // survivor once they are in the trash.
        let at = now();
        for other in &others {
            let mut gone: customer::ActiveModel = other.clone().into();
            gone.deleted_at = Set(Some(at));
            gone.merged_into = Set(Some(survivor));
            save::<customer::Entity>(txn, Some(actor.id()), Verb::Merge, other, gone).await?;
        }
        let customer = save::<customer::Entity>(txn, Some(actor.id()), Verb::Merge, &old, am).await?;
        let moved = move_records(txn, actor.id(), survivor, &merged).await?;
        crate::customer::duplicates::settle(txn, actor.id(), &merged).await?;
        // The survivor is regraded at the end of the write (the classification engine's
        // finisher, on the summary change `move_records` wrote).
        Ok(Outcome { customer, merged: merged.clone(), moved, dry_run })
    })
    .await
}

/// What would move (consents: the channels the survivor has no record of).
async fn count(txn: &DatabaseTransaction, survivor: Uuid, merged: &[Uuid]) -> AppResult<Moved> {
    let ids = merged.to_vec();
    let kept: HashSet<_> = consent::Entity::find()
        .filter(consent::Column::CustomerId.eq(survivor))
        .all(txn)
        .await?
        .into_iter()
        .map(|c| c.channel)
        .collect();
    let arriving: HashSet<_> = consent::Entity::find()
        .filter(consent::Column::CustomerId.is_in(ids.clone()))
        .all(txn)
        .await?
        .into_iter()
        .map(|c| c.channel)
        .filter(|c| !kept.contains(c))
        .collect();
    Ok(Moved {
        contacts: contact::Entity::find().filter(contact::Column::CustomerId.is_in(ids.clone())).count(txn).await?,
        deals: deal::Entity::find().filter(deal::Column::CustomerId.is_in(ids.clone())).count(txn).await?,
        feedback: feedback::Entity::find().filter(feedback::Column::CustomerId.is_in(ids.clone())).count(txn).await?,
        interactions: interaction::Entity::find()
            .filter(interaction::Column::CustomerId.is_in(ids.clone()))
            .count(txn)
            .await?,
        reminders: reminder::Entity::find().filter(reminder::Column::CustomerId.is_in(ids.clone())).count(txn).await?,
        classification_history: classification_history::Entity::find()
            .filter(classification_history::Column::CustomerId.is_in(ids.clone()))
            .count(txn)
            .await?,
        consents: arriving.len() as u64,
    })
}

/// Moves every record of the merged customers to the survivor. Consents are per channel:
/// a channel the survivor has no record of moves; where both have one, a withdrawal on
/// either side stands (the later one), and the merged record's row goes.
async fn move_records(txn: &DatabaseTransaction, by: Uuid, survivor: Uuid, merged: &[Uuid]) -> AppResult<Moved> {
    let ids = merged.to_vec();
    macro_rules! repoint {
        ($module:ident) => {
            $module::Entity::update_many()
                .col_expr($module::Column::CustomerId, Expr::value(survivor))
                .filter($module::Column::CustomerId.is_in(ids.clone()))
                .exec(txn)
                .await?
                .rows_affected
        };
    }
    // Reminders about a merged customer itself (target = the customer) follow it, unless the
    // survivor already has one for the same rule and occasion: then the duplicate is
    // dismissed, so that nobody is greeted twice. (Done before the bulk move: the unique
    // key is rule, target, occasion.)
    // A merged record's pool warning was about its own clock, not the survivor's.
    for id in &ids {
        crate::customer::close_pool_warnings(txn, *id, "merged into another customer").await?;
    }
    let theirs = reminder::Entity::find().filter(reminder::Column::TargetId.is_in(ids.clone())).all(txn).await?;
    for r in theirs {
        let taken = reminder::Entity::find()
            .filter(reminder::Column::Rule.eq(r.rule))
            .filter(reminder::Column::TargetId.eq(survivor))
            .filter(reminder::Column::Occasion.eq(r.occasion.clone()))
            .one(txn)
            .await?
            .is_some();
        let mut am: reminder::ActiveModel = r.clone().into();
        if taken {
            if r.status == ReminderStatus::Pending {
                am.status = Set(ReminderStatus::Dismissed);
                am.dismissed_reason = Set(Some("merged into another customer that has this reminder".into()));
            }
        } else {
            am.target_id = Set(survivor);
        }
        am.updated_at = Set(now());
        am.update(txn).await?;
    }
    let mut moved = Moved {
        contacts: repoint!(contact),
        deals: repoint!(deal),
        feedback: repoint!(feedback),
        interactions: repoint!(interaction),
        reminders: repoint!(reminder),
        classification_history: repoint!(classification_history),
        consents: 0,
    };
    // The survivor's consents as they become, channel by channel (two merged customers may
    // both have one for a channel the survivor lacks).
    let mut kept = consent::Entity::find().filter(consent::Column::CustomerId.eq(survivor)).all(txn).await?;
    for row in consent::Entity::find().filter(consent::Column::CustomerId.is_in(ids)).all(txn).await? {
        match kept.iter_mut().find(|k| k.channel == row.channel) {
            None => {
                let mut am: consent::ActiveModel = row.clone().into();
                am.customer_id = Set(survivor);
                consent::Entity::delete_many()
                    .filter(consent::Column::CustomerId.eq(row.customer_id))
                    .filter(consent::Column::Channel.eq(row.channel))
                    .exec(txn)
                    .await?;
                kept.push(am.insert(txn).await?);
                moved.consents += 1;
            }
            Some(k) => {
                if row.withdrawn_at.is_some() && k.withdrawn_at.is_none_or(|w| row.withdrawn_at > Some(w)) {
                    let mut am: consent::ActiveModel = k.clone().into();
                    am.withdrawn_at = Set(row.withdrawn_at);
                    am.updated_at = Set(now());
                    *k = am.update(txn).await?;
                }
                consent::Entity::delete_many()
                    .filter(consent::Column::CustomerId.eq(row.customer_id))
                    .filter(consent::Column::Channel.eq(row.channel))
                    .exec(txn)
                    .await?;
            }
        }
    }
    change::record(
        txn,
        Some(by),
        Verb::Merge,
        Subject::Customer,
        survivor,
        None,
        Some(&serde_json::json!({
            "merged": merged,
            "moved": {
                "contacts": moved.contacts, "deals": moved.deals, "feedback": moved.feedback,
                "interactions": moved.interactions, "reminders": moved.reminders,
                "classificationHistory": moved.classification_history, "consents": moved.consents,
            }
        })),
    )
    .await?;
    Ok(moved)
}
