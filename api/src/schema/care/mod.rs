//! Care: the care policy, holidays, message templates, follow-up compliance, reminders
//! and the live events `newLead` and `reminderDue`.
mod compliance;
mod live;
mod policy;

use super::common::{Date, actor, connection, db, page_args, parse_id};
use super::customer::Customer;
use super::enums::{AssigneeRole, ContactKind, Direction, InteractionKind, ReminderRule, ReminderStatus, Role, Tier};
use super::error::ResultExt;
use super::interaction::Interaction;
use crate::state::AppState;
use async_graphql::futures_util::StreamExt;
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
pub use compliance::*;
use entity::{holiday, message_template, reminder};
pub use live::*;
pub use policy::*;
use service::access::live::Event;
use service::care as svc;
use service::care::CarePolicy as Policy;
use service::kernel::types::Id;
use service::records::interaction::NewInteraction;
use std::sync::Arc;

/// A holiday of the calendar.
pub struct Holiday(holiday::Model);

#[Object]
impl Holiday {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The date; for a yearly holiday only month and day count.
    async fn date(&self) -> Date {
        Date(self.0.date)
    }
    async fn yearly(&self) -> bool {
        self.0.yearly
    }
    /// Where it falls in `year`, if it does.
    async fn on(&self, year: i32) -> Option<Date> {
        svc::holiday_in(&self.0, year).map(Date)
    }
}

/// A suggested message. Placeholders: {customer} {name} {owner} {product} {holiday}
/// {date} {expected} {last} {kind} {tier} {days} {count}.
pub struct MessageTemplate(message_template::Model);

#[Object]
impl MessageTemplate {
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A due action for you about a customer.
#[derive(Clone)]
pub struct Reminder(pub reminder::Model);

impl Reminder {
    /// Whether the caller may read the reminder's customer (a reminder named to someone
    /// stays theirs after the customer moves out of their reach).
    async fn readable(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(super::loaders::customer(ctx, self.0.customer_id).await?.is_some())
    }
}

#[Object]
impl Reminder {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn rule(&self) -> ReminderRule {
        self.0.rule.into()
    }
    async fn status(&self) -> ReminderStatus {
        self.0.status.into()
    }
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }
    /// Why the reminder exists. It names the customer, so a caller who may no longer
    /// read the customer gets a generic text.
    async fn reason(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(if self.readable(ctx).await? { &self.0.reason } else { "about a customer you may no longer read" })
    }
    /// The suggested message, rendered from the rule's template; empty for a caller who
    /// may no longer read the customer.
    async fn message(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(if self.readable(ctx).await? { &self.0.message } else { "" })
    }
    /// Why it was suppressed (the contact-frequency cap); null for a caller who may no
    /// longer read the customer.
    async fn suppressed_reason(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(if self.readable(ctx).await? { self.0.suppressed_reason.as_deref() } else { None })
    }
    /// Why it was dismissed; null for a caller who may no longer read the customer.
    async fn dismissed_reason(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(if self.readable(ctx).await? { self.0.dismissed_reason.as_deref() } else { None })
    }
    /// Who it goes to: the customer's owner, or the role the policy names.
    async fn assignee_role(&self) -> AssigneeRole {
        self.0.assignee_role.into()
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    /// The customer, as you may read it.
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<super::contact::Contact>> {
        match self.0.contact_id {
            Some(id) => super::loaders::contact(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn deal_id(&self) -> Option<ID> {
        self.0.deal_id.map(|d| ID(d.to_string()))
    }
    /// The interaction that completed it.
    async fn interaction_id(&self) -> Option<ID> {
        self.0.interaction_id.map(|d| ID(d.to_string()))
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(ReminderConnection, ReminderEdge, Reminder, "reminders");

/// The contact made to complete a reminder (customer and contact come from the reminder).
#[derive(InputObject)]
pub struct CompleteReminderInput {
    pub kind: InteractionKind,
    pub direction: Option<Direction>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub summary: String,
    pub outcome: Option<String>,
    /// Another contact of the same customer than the reminder's.
    pub contact_id: Option<ID>,
    pub next_follow_up_on: Option<Date>,
}

/// A completed reminder and the interaction it logged.
#[derive(SimpleObject)]
pub struct CompleteReminderPayload {
    pub reminder: Reminder,
    pub interaction: Interaction,
}

#[derive(Default)]
pub struct CareQuery;

#[Object]
impl CareQuery {
    /// The care policy (any staff member may read it).
    async fn care_policy(&self, ctx: &Context<'_>) -> Result<CarePolicy> {
        actor(ctx)?;
        let (p, v) = svc::policy(db(ctx)).await.gql()?;
        Ok(CarePolicy(p, v))
    }

    /// The holiday calendar.
    async fn holidays(&self, ctx: &Context<'_>) -> Result<Vec<Holiday>> {
        actor(ctx)?;
        Ok(svc::holidays(db(ctx)).await.gql()?.into_iter().map(Holiday).collect())
    }

    /// The message template library.
    async fn message_templates(&self, ctx: &Context<'_>) -> Result<Vec<MessageTemplate>> {
        actor(ctx)?;
        Ok(svc::templates(db(ctx)).await.gql()?.into_iter().map(MessageTemplate).collect())
    }

    /// For each customer in your scope whose tier has contact standards: what the policy
    /// expects, what was logged, what is overdue; summarised per owner. `asOf` defaults to
    /// today (UTC).
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn follow_up_compliance(
        &self,
        ctx: &Context<'_>,
        as_of: Option<Date>,
        department_id: Option<ID>,
        owner_id: Option<ID>,
    ) -> Result<Compliance> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let department = department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        let owner = owner_id.map(|o| parse_id("ownerId", &o)).transpose().gql()?;
        let as_of = as_of.map_or_else(|| Utc::now().date_naive(), |d| d.0);
        let report = svc::compliance(heavy.db(), actor, as_of, department, owner).await.gql()?;
        Ok(Compliance { report })
    }

    /// Your reminders (yours as named assignee, or as the owner of their customer),
    /// soonest due first. `status` defaults to PENDING and SNOOZED.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn my_reminders(
        &self,
        ctx: &Context<'_>,
        status: Option<Vec<ReminderStatus>>,
        due_before: Option<DateTime<Utc>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ReminderConnection> {
        let actor = actor(ctx)?;
        let status = status.map(|s| s.into_iter().map(Into::into).collect());
        let page = svc::my_reminders(db(ctx), actor, status, due_before, &page_args(first, after)).await.gql()?;
        Ok(ReminderConnection(page.map(Reminder)))
    }

    /// Your team's open reminders (pending or snoozed), soonest due first: those about the
    /// live customers you read department-wide (managers; executives and admins: all),
    /// optionally of one department's subtree and one person (named to them, or theirs as
    /// the customer's owner); `overdueOnly`: already due.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn team_reminders(
        &self,
        ctx: &Context<'_>,
        department_id: Option<ID>,
        person_id: Option<ID>,
        #[graphql(default)] overdue_only: bool,
        #[graphql(desc = "Only these kinds (FOLLOW_UP: the planned contacts).")] rules: Option<Vec<ReminderRule>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ReminderConnection> {
        let actor = actor(ctx)?;
        let department = department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        let person = person_id.map(|p| parse_id("personId", &p)).transpose().gql()?;
        let rules = rules.map(|r| r.into_iter().map(Into::into).collect());
        let args = page_args(first, after);
        let page = svc::team_reminders(db(ctx), actor, department, person, overdue_only, rules, &args).await.gql()?;
        Ok(ReminderConnection(page.map(Reminder)))
    }

    /// Your team's open reminders per person, most overdue first: how many, how many
    /// overdue, and of them the follow-ups. A row without a person counts reminders of
    /// customers in the pool.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn team_load(&self, ctx: &Context<'_>, department_id: Option<ID>) -> Result<Vec<PersonLoad>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let department = department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        Ok(svc::team_load(heavy.db(), actor, department).await.gql()?.into_iter().map(PersonLoad).collect())
    }
}

/// One person's open reminders in a team view.
pub struct PersonLoad(svc::PersonLoad);

#[Object]
impl PersonLoad {
    async fn person_id(&self) -> Option<ID> {
        self.0.person.map(|p| ID(p.to_string()))
    }
    async fn person(&self, ctx: &Context<'_>) -> Result<Option<super::user::User>> {
        match self.0.person {
            Some(p) => super::loaders::user(ctx, p).await,
            None => Ok(None),
        }
    }
    async fn open(&self) -> i64 {
        self.0.open
    }
    async fn overdue(&self) -> i64 {
        self.0.overdue
    }
    async fn follow_ups(&self) -> i64 {
        self.0.follow_ups
    }
    async fn follow_ups_overdue(&self) -> i64 {
        self.0.follow_ups_overdue
    }
}

#[derive(Default)]
pub struct CareMutation;

#[Object]
impl CareMutation {
    /// Changes the parts of the care policy given in `input` (admins); the rest stays.
    /// CONFLICT when `version` is stale.
    async fn update_care_policy(&self, ctx: &Context<'_>, input: CarePolicyInput, version: i32) -> Result<CarePolicy> {
        let actor = actor(ctx)?;
        let (p, v) = svc::change_policy(db(ctx), actor, input.into_patch(), version).await.gql()?;
        Ok(CarePolicy(p, v))
    }

    /// Adds a holiday (admins). `yearly`: the same month and day every year.
    async fn add_holiday(
        &self,
        ctx: &Context<'_>,
        name: String,
        date: Date,
        #[graphql(default)] yearly: bool,
    ) -> Result<Holiday> {
        let actor = actor(ctx)?;
        svc::add_holiday(db(ctx), actor, &name, date.0, yearly).await.map(Holiday).gql()
    }

    /// Removes a holiday (admins).
    async fn delete_holiday(&self, ctx: &Context<'_>, id: ID) -> Result<Holiday> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::delete_holiday(db(ctx), actor, id).await.map(Holiday).gql()
    }

    /// Creates a template, or replaces one (send its `version`). Admins.
    async fn save_message_template(
        &self,
        ctx: &Context<'_>,
        key: String,
        body: String,
        version: Option<i32>,
    ) -> Result<MessageTemplate> {
        let actor = actor(ctx)?;
        svc::save_template(db(ctx), actor, &key, &body, version).await.map(MessageTemplate).gql()
    }

    /// Completes one of your reminders by logging the contact made.
    async fn complete_reminder(
        &self,
        ctx: &Context<'_>,
        id: ID,
        interaction: CompleteReminderInput,
    ) -> Result<CompleteReminderPayload> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        let input = NewInteraction {
            customer_id: Id::new(uuid::Uuid::nil()),
            contact_id: interaction
                .contact_id
                .map(|c| parse_id("interaction.contactId", &c).map(Id::new))
                .transpose()
                .gql()?,
            kind: interaction.kind.into(),
            direction: interaction.direction.map(Into::into),
            occurred_at: interaction.occurred_at,
            summary: interaction.summary,
            outcome: interaction.outcome,
            next_follow_up_on: interaction.next_follow_up_on.map(|d| d.0),
        };
        let (r, i) = svc::complete(db(ctx), actor, id, input).await.gql()?;
        Ok(CompleteReminderPayload { reminder: Reminder(r), interaction: Interaction(i) })
    }

    /// Sets yourself a follow-up about a customer you may log contacts for: a FOLLOW_UP
    /// reminder due on `dueOn` (at the care policy's hour), delivered like every reminder.
    async fn create_follow_up(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        due_on: Date,
        note: String,
    ) -> Result<Reminder> {
        let actor = actor(ctx)?;
        let customer = parse_id("customerId", &customer_id).gql()?;
        svc::create_follow_up(db(ctx), actor, customer, due_on.0, &note).await.map(Reminder).gql()
    }

    /// Puts one of your reminders off; it falls due again at `until`.
    async fn snooze_reminder(&self, ctx: &Context<'_>, id: ID, until: DateTime<Utc>) -> Result<Reminder> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::snooze(db(ctx), actor, id, until).await.map(Reminder).gql()
    }

    /// Dismisses one of your reminders, saying why.
    async fn dismiss_reminder(&self, ctx: &Context<'_>, id: ID, reason: String) -> Result<Reminder> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::dismiss(db(ctx), actor, id, &reason).await.map(Reminder).gql()
    }
}
