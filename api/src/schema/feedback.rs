//! Feedback type, inputs, filters, queries and mutations.
use super::common::{DateTimeFilter, EnumFilter, IdFilter, IntFilter, SortDirection, actor, connection, db, parse_id};
use super::contact::Contact;
use super::customer::{Customer, patch};
use super::enums::{FeedbackChannel, FeedbackKind, FeedbackStatus};
use super::error::ResultExt;
use super::record::{record_queries, record_trash};
use super::user::User;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result};
use chrono::{DateTime, Utc};
use entity::feedback::{self};
use service::kernel::types::Id;
use service::records::feedback as svc;
use service::records::feedback::{FeedbackPatch, NewFeedback, SortField};

/// A complaint, suggestion, praise, survey answer or service request.
#[derive(Clone)]
pub struct Feedback(pub feedback::Model);

#[Object]
impl Feedback {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        match self.0.contact_id {
            Some(id) => super::loaders::contact(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn kind(&self) -> FeedbackKind {
        self.0.kind.into()
    }
    async fn channel(&self) -> FeedbackChannel {
        self.0.channel.into()
    }
    /// Satisfaction 1-5.
    async fn rating(&self) -> Option<i32> {
        self.0.rating
    }
    /// Net promoter score answer 0-10.
    async fn nps(&self) -> Option<i32> {
        self.0.nps
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    async fn status(&self) -> FeedbackStatus {
        self.0.status.into()
    }
    /// Who handles it.
    async fn handler(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.0.handler_id {
            Some(id) => super::loaders::user(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn handler_id(&self) -> Option<ID> {
        self.0.handler_id.map(|h| ID(h.to_string()))
    }
    async fn resolution(&self) -> Option<&str> {
        self.0.resolution.as_deref()
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

connection!(FeedbackConnection, FeedbackEdge, Feedback, "feedback records");

/// Filter of the feedback list.
#[derive(InputObject, Default)]
pub struct FeedbackFilter {
    pub and: Option<Vec<FeedbackFilter>>,
    pub or: Option<Vec<FeedbackFilter>>,
    pub customer_id: Option<IdFilter>,
    pub kind: Option<EnumFilter<FeedbackKind>>,
    pub channel: Option<EnumFilter<FeedbackChannel>>,
    pub status: Option<EnumFilter<FeedbackStatus>>,
    pub handler_id: Option<IdFilter>,
    pub rating: Option<IntFilter>,
    pub nps: Option<IntFilter>,
    pub created_at: Option<DateTimeFilter>,
    pub resolved_at: Option<DateTimeFilter>,
}

/// Sortable feedback fields.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "SortField")]
pub enum FeedbackSortField {
    CreatedAt,
    UpdatedAt,
    Status,
}

/// One sort key; ties are ordered by id.
#[derive(InputObject)]
pub struct FeedbackOrder {
    pub field: FeedbackSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

/// New feedback; it starts OPEN.
#[derive(InputObject)]
pub struct CreateFeedbackInput {
    pub customer_id: ID,
    pub contact_id: Option<ID>,
    pub kind: FeedbackKind,
    pub channel: FeedbackChannel,
    /// 1-5.
    pub rating: Option<i32>,
    /// 0-10.
    pub nps: Option<i32>,
    pub content: String,
    pub handler_id: Option<ID>,
}

/// Changes to feedback; omitted fields stay, `null` clears.
#[derive(InputObject)]
pub struct UpdateFeedbackInput {
    pub id: ID,
    pub version: i32,
    pub kind: Option<FeedbackKind>,
    pub channel: Option<FeedbackChannel>,
    pub rating: MaybeUndefined<i32>,
    pub nps: MaybeUndefined<i32>,
    pub content: Option<String>,
    /// RESOLVED or CLOSED stamps `resolvedAt`.
    pub status: Option<FeedbackStatus>,
    pub handler_id: MaybeUndefined<ID>,
    pub resolution: MaybeUndefined<String>,
}

record_queries!(
    FeedbackQuery,
    feedback,
    feedbacks,
    Feedback,
    FeedbackConnection,
    FeedbackFilter,
    FeedbackOrder,
    "One feedback record you may read (NOT_FOUND otherwise).",
    "Feedback you may read, newest first by default; `deleted: true` lists the trash."
);

#[derive(Default)]
pub struct FeedbackMutation;

#[Object]
impl FeedbackMutation {
    /// Records feedback about a customer.
    async fn create_feedback(&self, ctx: &Context<'_>, input: CreateFeedbackInput) -> Result<Feedback> {
        let actor = actor(ctx)?;
        let new = NewFeedback {
            customer_id: parse_id("customerId", &input.customer_id).map(Id::new).gql()?,
            contact_id: input.contact_id.map(|c| parse_id("contactId", &c).map(Id::new)).transpose().gql()?,
            kind: input.kind.into(),
            channel: input.channel.into(),
            rating: input.rating,
            nps: input.nps,
            content: input.content,
            handler_id: input.handler_id.map(|h| parse_id("handlerId", &h)).transpose().gql()?,
        };
        svc::create(db(ctx), actor, new).await.map(Feedback).gql()
    }

    /// Changes feedback (handling, status, resolution). CONFLICT when `version` is stale.
    async fn update_feedback(&self, ctx: &Context<'_>, input: UpdateFeedbackInput) -> Result<Feedback> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let handler_id = match input.handler_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(h) => Some(Some(parse_id("handlerId", &h).gql()?)),
        };
        let p = FeedbackPatch {
            kind: input.kind.map(Into::into),
            channel: input.channel.map(Into::into),
            rating: patch(input.rating, |r| r),
            nps: patch(input.nps, |n| n),
            content: input.content,
            status: input.status.map(Into::into),
            handler_id,
            resolution: patch(input.resolution, |s| s),
        };
        svc::update(db(ctx), actor, id, input.version, p).await.map(Feedback).gql()
    }
}

record_trash!(
    FeedbackTrash,
    feedback,
    Feedback,
    delete_feedback,
    restore_feedback,
    "Moves feedback to the trash.",
    "Restores feedback from the trash."
);
