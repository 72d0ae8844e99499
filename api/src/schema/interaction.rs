//! Interaction (activity log) type, filters, list and create.
use super::common::{
    Date, DateFilter, DateTimeFilter, EnumFilter, IdFilter, SortDirection, actor, connection, db, parse_id,
};
use super::contact::Contact;
use super::customer::Customer;
use super::enums::{Direction, InteractionKind};
use super::error::ResultExt;
use super::record::record_queries;
use super::user::User;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use entity::interaction::{self};
use service::kernel::types::Id;
use service::records::interaction as svc;
use service::records::interaction::{NewInteraction, SortField};

/// A logged contact with a customer: visit, call, message, meeting, gift, event.
#[derive(Clone)]
pub struct Interaction(pub interaction::Model);

#[Object]
impl Interaction {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    async fn contact_id(&self) -> Option<ID> {
        self.0.contact_id.map(|c| ID(c.to_string()))
    }
    /// The contact spoken to, if you may read it.
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        match self.0.contact_id {
            Some(id) => super::loaders::contact(ctx, id).await,
            None => Ok(None),
        }
    }
    /// The staff member who made the contact.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::loaders::user(ctx, self.0.user_id).await
    }
    async fn kind(&self) -> InteractionKind {
        self.0.kind.into()
    }
    async fn direction(&self) -> Direction {
        self.0.direction.into()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    async fn outcome(&self) -> Option<&str> {
        self.0.outcome.as_deref()
    }
    /// When to follow up next.
    async fn next_follow_up_on(&self) -> Option<Date> {
        self.0.next_follow_up_on.map(Date)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(InteractionConnection, InteractionEdge, Interaction, "interactions");

/// Filter of the activity log.
#[derive(InputObject, Default)]
pub struct InteractionFilter {
    pub and: Option<Vec<InteractionFilter>>,
    pub or: Option<Vec<InteractionFilter>>,
    pub customer_id: Option<IdFilter>,
    pub contact_id: Option<IdFilter>,
    pub user_id: Option<IdFilter>,
    pub kind: Option<EnumFilter<InteractionKind>>,
    pub occurred_at: Option<DateTimeFilter>,
    pub next_follow_up_on: Option<DateFilter>,
}

/// Sortable interaction fields.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "SortField")]
pub enum InteractionSortField {
    OccurredAt,
    CreatedAt,
}

/// One sort key; ties are ordered by id.
#[derive(InputObject)]
pub struct InteractionOrder {
    pub field: InteractionSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

/// A contact to log; you are recorded as the one who made it.
#[derive(InputObject)]
pub struct CreateInteractionInput {
    pub customer_id: ID,
    /// A contact of the same customer.
    pub contact_id: Option<ID>,
    pub kind: InteractionKind,
    /// Default OUTBOUND.
    pub direction: Option<Direction>,
    /// Default now; not in the future.
    pub occurred_at: Option<DateTime<Utc>>,
    pub summary: String,
    pub outcome: Option<String>,
    pub next_follow_up_on: Option<Date>,
}

record_queries!(
    InteractionQuery,
    interaction,
    interactions,
    Interaction,
    InteractionConnection,
    InteractionFilter,
    InteractionOrder,
    "An interaction you may read (NOT_FOUND otherwise).",
    "The activity log you may read, newest first by default.",
    no_trash
);

#[derive(Default)]
pub struct InteractionMutation;

#[Object]
impl InteractionMutation {
    /// Logs a visit, call, message or other contact with a customer.
    async fn create_interaction(&self, ctx: &Context<'_>, input: CreateInteractionInput) -> Result<Interaction> {
        let actor = actor(ctx)?;
        let new = NewInteraction {
            customer_id: parse_id("customerId", &input.customer_id).map(Id::new).gql()?,
            contact_id: input.contact_id.map(|c| parse_id("contactId", &c).map(Id::new)).transpose().gql()?,
            kind: input.kind.into(),
            direction: input.direction.map(Into::into),
            occurred_at: input.occurred_at,
            summary: input.summary,
            outcome: input.outcome,
            next_follow_up_on: input.next_follow_up_on.map(|d| d.0),
        };
        svc::create(db(ctx), actor, new).await.map(Interaction).gql()
    }
}
