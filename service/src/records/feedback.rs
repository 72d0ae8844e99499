//! Feedback: complaints, suggestions, praise, survey answers and service requests.
use crate::access::Actor;
use crate::access::list::Listing;
use crate::choice;
use crate::error::{AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::filter::{Field, Kind};
use crate::kernel::pagination::{SortKey, SortValue};
use crate::kernel::store::{save, write};
use crate::kernel::types::{ContactId, CustomerId};
use crate::kernel::{Patch, new_id, now, optional_text, required_text};
use crate::records::{check_parent, load_for};
use entity::enums::{Action, FeedbackChannel, FeedbackKind, FeedbackStatus};
use entity::feedback::{self, Column};
use entity::{contact, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// New feedback.
#[derive(Clone)]
pub struct NewFeedback {
    pub customer_id: CustomerId,
    pub contact_id: Option<ContactId>,
    pub kind: FeedbackKind,
    pub channel: FeedbackChannel,
    pub rating: Option<i32>,
    pub nps: Option<i32>,
    pub content: String,
    pub handler_id: Option<Uuid>,
}

/// Changes to feedback; `None` leaves a field, `Some(None)` clears it.
#[derive(Default, Clone)]
pub struct FeedbackPatch {
    pub kind: Option<FeedbackKind>,
    pub channel: Option<FeedbackChannel>,
    pub rating: Patch<i32>,
    pub nps: Patch<i32>,
    pub content: Option<String>,
    pub status: Option<FeedbackStatus>,
    pub handler_id: Patch<Uuid>,
    pub resolution: Patch<String>,
}

/// Sortable feedback fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    Status,
}

pub fn sort_key(field: SortField, descending: bool) -> SortKey<feedback::Entity> {
    let (name, column, value): (_, _, fn(&feedback::Model) -> SortValue) = match field {
        SortField::CreatedAt => ("createdAt", Column::CreatedAt, |m| SortValue::Time(m.created_at)),
        SortField::UpdatedAt => ("updatedAt", Column::UpdatedAt, |m| SortValue::Time(m.updated_at)),
        SortField::Status => ("status", Column::Status, |m| SortValue::Text(m.status.to_string())),
    };
    SortKey::new(name, column, descending, value)
}

impl Listing for feedback::Entity {
    const CATALOGUE: &'static crate::catalogue::RecordCatalogue = &crate::catalogue::FEEDBACK;
    type Custom = crate::kernel::filter::NoCustom;
    type SortField = SortField;
    const DEFAULT_SORT: (SortField, bool) = (SortField::CreatedAt, true);
    const FILTER: &'static [Field<Column>] = &[
        Field::new("customerId", Column::CustomerId, Kind::Id),
        Field::new("kind", Column::Kind, choice!(entity::enums::FeedbackKind)),
        Field::new("channel", Column::Channel, choice!(entity::enums::FeedbackChannel)),
        Field::new("status", Column::Status, choice!(entity::enums::FeedbackStatus)),
        Field::new("handlerId", Column::HandlerId, Kind::Id),
        Field::new("rating", Column::Rating, Kind::Int),
        Field::new("nps", Column::Nps, Kind::Int),
        Field::new("createdAt", Column::CreatedAt, Kind::Time),
        Field::new("resolvedAt", Column::ResolvedAt, Kind::Time),
    ];
    const CUSTOMER_COLUMN: Option<Column> = Some(Column::CustomerId);
    fn sort_key(field: &SortField, descending: bool, _: Option<&Self::Custom>) -> AppResult<SortKey<Self>> {
        Ok(sort_key(*field, descending))
    }
}

fn check_scores(v: &mut Violations, rating: Option<i32>, nps: Option<i32>) {
    if rating.is_some_and(|r| !(1..=5).contains(&r)) {
        v.add("rating", "must be between 1 and 5");
    }
    if nps.is_some_and(|n| !(0..=10).contains(&n)) {
        v.add("nps", "must be between 0 and 10");
    }
}

async fn check_handler(db: &impl ConnectionTrait, v: &mut Violations, handler: Option<Uuid>) -> AppResult<()> {
    if let Some(h) = handler
        && !user::Entity::find_by_id(h).one(db).await?.is_some_and(|u| u.active && !u.service_account)
    {
        v.add("handlerId", "must be an active staff member");
    }
    Ok(())
}

/// Records feedback about a customer, OPEN.
///
/// # Errors
/// NOT_FOUND (customer), FORBIDDEN, VALIDATION.
pub async fn create(db: &DatabaseConnection, actor: &Actor, input: NewFeedback) -> AppResult<feedback::Model> {
    let mut v = Violations::new();
    let content = required_text(&mut v, "content", &input.content, 8000);
    check_scores(&mut v, input.rating, input.nps);
    write(db, async |txn| {
        let customer = check_parent::<feedback::Entity>(txn, actor, input.customer_id).await?;
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
        check_handler(txn, &mut v, input.handler_id).await?;
        v.into_result()?;
        let now = now();
        let m = feedback::ActiveModel {
            id: Set(new_id()),
            customer_id: Set(customer.id),
            contact_id: Set(input.contact_id.map(Uuid::from)),
            kind: Set(input.kind),
            channel: Set(input.channel),
            rating: Set(input.rating),
            nps: Set(input.nps),
            content: Set(content),
            status: Set(FeedbackStatus::Open),
            handler_id: Set(input.handler_id),
            resolution: Set(None),
            resolved_at: Set(None),
            created_by: Set(Some(actor.id())),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(txn)
        .await?;
        change::record(txn, Some(actor.id()), Verb::Create, Subject::Feedback, m.id, None, Some(&m)).await?;
        Ok(m)
    })
    .await
}

/// Changes feedback. Moving to RESOLVED or CLOSED stamps `resolvedAt` (once); reopening clears it.
///
/// # Errors
/// NOT_FOUND, FORBIDDEN, VALIDATION, CONFLICT.
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    version: i32,
    p: FeedbackPatch,
) -> AppResult<feedback::Model> {
    write(db, async |txn| {
        let old = load_for::<feedback::Entity>(txn, actor, id, Action::Update, false, Some(version)).await?;
        let mut v = Violations::new();
        let mut am: feedback::ActiveModel = old.clone().into();
        if let Some(k) = p.kind {
            am.kind = Set(k);
        }
        if let Some(c) = p.channel {
            am.channel = Set(c);
        }
        check_scores(&mut v, p.rating.flatten(), p.nps.flatten());
        if let Some(r) = p.rating {
            am.rating = Set(r);
        }
        if let Some(n) = p.nps {
            am.nps = Set(n);
        }
        if let Some(c) = p.content {
            am.content = Set(required_text(&mut v, "content", &c, 8000));
        }
        if let Some(h) = p.handler_id {
            check_handler(txn, &mut v, h).await?;
            am.handler_id = Set(h);
        }
        if let Some(r) = p.resolution {
            am.resolution = Set(optional_text(&mut v, "resolution", r, 8000));
        }
        if let Some(status) = p.status {
            let done = matches!(status, FeedbackStatus::Resolved | FeedbackStatus::Closed);
            if done && old.resolved_at.is_none() {
                am.resolved_at = Set(Some(now()));
            } else if !done {
                am.resolved_at = Set(None);
            }
            am.status = Set(status);
        }
        v.into_result()?;
        save::<feedback::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await
    })
    .await
}
