//! The activity log: visits, calls, messages, meetings, gifts, events.
use crate::access::Actor;
use crate::access::list::Listing;
use crate::choice;
use crate::error::{AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::pagination::{SortKey, SortValue};
use crate::kernel::store::write;
use crate::kernel::types::{ContactId, CustomerId};
use crate::kernel::{new_id, now, optional_text, required_text};
use crate::records::check_parent;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::contact;
use entity::enums::{Action, Direction, InteractionKind, Resource};
use entity::interaction::{self, Column};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// A logged contact with a customer.
#[derive(Clone)]
pub struct NewInteraction {
    pub customer_id: CustomerId,
    pub contact_id: Option<ContactId>,
    pub kind: InteractionKind,
    pub direction: Option<Direction>,
    /// Defaults to now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub summary: String,
    pub outcome: Option<String>,
    pub next_follow_up_on: Option<NaiveDate>,
}

/// Sortable interaction fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    OccurredAt,
    CreatedAt,
}

pub fn sort_key(field: SortField, descending: bool) -> SortKey<interaction::Entity> {
    let (name, column, value): (_, _, fn(&interaction::Model) -> SortValue) = match field {
        SortField::OccurredAt => ("occurredAt", Column::OccurredAt, |m| SortValue::Time(m.occurred_at)),
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
    };
    SortKey::new(name, column, descending, value)
}

impl Listing for interaction::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::INTERACTION;
    type Custom = crate::kernel::filter::NoCustom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::OccurredAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("customerId", Column::CustomerId, Kind::Id),
        Field::new("contactId", Column::ContactId, Kind::Id),
        Field::new("userId", Column::UserId, Kind::Id),
        Field::new("kind", Column::Kind, choice!(entity::enums::InteractionKind)),
        Field::new("occurredAt", Column::OccurredAt, Kind::Time),
        Field::new("nextFollowUpOn", Column::NextFollowUpOn, Kind::Day),
    ];
    const CUSTOMER_COLUMN: Option<Column> = Some(Column::CustomerId);
    fn sort_key(field: &SortField, descending: bool, _: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        Ok(sort_key(*field, descending))
    }
}

/// Logs an interaction made by the caller.
///
/// # Errors
/// NOT_FOUND (customer), FORBIDDEN, VALIDATION (blank summary, future time, contact of
/// another customer).
pub async fn create(db: &DatabaseConnection, actor: &Actor, input: NewInteraction) -> AppResult<interaction::Model> {
    write(db, async |txn| create_in(txn, actor, input).await).await
}

/// Records a contact of the past for a loader of historic data (`crm demo`, an import):
/// as [`create`], without the bound on backdating.
///
/// # Errors
/// As [`create`].
pub async fn record_history(
    db: &DatabaseConnection,
    actor: &Actor,
    input: NewInteraction,
) -> AppResult<interaction::Model> {
    write(db, async |txn| insert(txn, actor, input, false).await).await
}

/// Logs an interaction inside the caller's transaction (completing a reminder).
///
/// # Errors
/// As [`create`].
pub async fn create_in(
    txn: &DatabaseTransaction,
    actor: &Actor,
    input: NewInteraction,
) -> AppResult<interaction::Model> {
    insert(txn, actor, input, true).await
}

async fn insert(
    txn: &DatabaseTransaction,
    actor: &Actor,
    input: NewInteraction,
    bound_backdating: bool,
) -> AppResult<interaction::Model> {
    let mut v = Violations::new();
    let summary = required_text(&mut v, "summary", &input.summary, 4000);
    let outcome = optional_text(&mut v, "outcome", input.outcome, 4000);
    let now = now();
    let occurred_at = input.occurred_at.unwrap_or(now);
    if occurred_at > now + Duration::minutes(5) {
        v.add("occurredAt", "cannot be in the future; plan follow-ups with nextFollowUpOn");
    }
    // Backdated contacts would count toward compliance and appraisals; admins may correct
    // the record.
    if bound_backdating && input.occurred_at.is_some() && actor.require_all(Resource::Settings, Action::Update).is_err()
    {
        let (policy, _) = crate::policy::care::policy(txn).await?;
        if occurred_at < now - Duration::days(i64::from(policy.max_backdate_days)) {
            v.add("occurredAt", format!("may be at most {} days in the past", policy.max_backdate_days));
        }
    }
    if let Some(next) = input.next_follow_up_on {
        if next < occurred_at.date_naive() {
            v.add("nextFollowUpOn", "must not be before the interaction");
        } else if next > now.date_naive() + Duration::days(3 * 366) {
            v.add("nextFollowUpOn", "must be within three years");
        }
    }
    {
        let customer = check_parent::<interaction::Entity>(txn, actor, input.customer_id).await?;
        if let Some(contact_id) = input.contact_id {
            let found = contact::Entity::find_by_id(contact_id)
                .filter(contact::Column::CustomerId.eq(customer.id))
                .filter(contact::Column::DeletedAt.is_null())
                .one(txn)
                .await?;
            if found.is_none() {
                v.add("contactId", "no such contact at this customer");
            }
        }
        v.into_result()?;
        let m = interaction::ActiveModel {
            id: Set(new_id()),
            customer_id: Set(customer.id),
            contact_id: Set(input.contact_id.map(Uuid::from)),
            user_id: Set(actor.id()),
            kind: Set(input.kind),
            direction: Set(input.direction.unwrap_or(Direction::Outbound)),
            occurred_at: Set(occurred_at),
            summary: Set(summary),
            outcome: Set(outcome),
            next_follow_up_on: Set(input.next_follow_up_on),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Interaction, m.id, None, Some(&m)).await?;
        // A contact logged now plans its follow-up (history loaded by `record_history`
        // plans none: its dates are past).
        if bound_backdating {
            crate::records::follow_up::after_interaction(txn, &customer, &m).await?;
        }
        // A person's contact resets the pool's clock: its warning no longer holds.
        if !actor.user.service_account && !matches!(m.kind, InteractionKind::Gift | InteractionKind::Event) {
            crate::customer::close_pool_warnings(txn, customer.id, "contacted").await?;
        }
        Ok(m)
    }
}
