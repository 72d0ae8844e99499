//! Care: the care policy, holidays, message templates, follow-up compliance, reminders
//! and the live events `newLead` and `reminderDue`.
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
use entity::{holiday, message_template, reminder};
use service::access::live::Event;
use service::care as svc;
use service::care::CarePolicy as Policy;
use service::records::interaction::NewInteraction;
use std::sync::Arc;

/// How often a role contacts customers of a tier (seed 001's visit table).
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "CareStandardInput")]
pub struct CareStandard {
    pub tier: Tier,
    /// SALES (the owner's level: the owner's contacts count whatever their role), MANAGER or EXECUTIVE.
    pub role: Role,
    pub kind: ContactKind,
    /// Contacts expected per period.
    pub count: i32,
    pub period_days: i32,
}

/// A reminder rule: switch it off, retime it, point it at another template.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ReminderRuleInput")]
pub struct ReminderRuleConfig {
    pub kind: ReminderRule,
    pub enabled: bool,
    /// Days after a won deal (greeting, survey) or ahead (birthday, holiday).
    pub offset_days: i32,
    /// Only customers of these tiers; empty: every tier.
    pub tiers: Vec<Tier>,
    /// Counts against the contact-frequency cap.
    pub promotional: bool,
    /// Key of a message template.
    pub template: String,
    pub assignee: AssigneeRole,
    /// REPEATED_COMPLAINT: the window in days (default 90)...
    pub window_days: Option<i32>,
    /// ...and how many complaints in it (default 2).
    pub min_count: Option<i32>,
}

/// At most `maxTouches` promotional reminders per customer per `days`, outside
/// `holidayWindowDays` of a holiday; the rest are SUPPRESSED with the reason.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "FrequencyCapInput")]
pub struct FrequencyCap {
    pub max_touches: i32,
    pub days: i32,
    pub holiday_window_days: i32,
}

/// The care policy: contact standards, reminder rules, the frequency cap.
pub struct CarePolicy(Policy, i32);

#[Object]
impl CarePolicy {
    /// Send it back with `updateCarePolicy`.
    async fn version(&self) -> i32 {
        self.1
    }
    async fn standards(&self) -> Vec<CareStandard> {
        self.0.standards.iter().map(standard_out).collect()
    }
    async fn rules(&self) -> Vec<ReminderRuleConfig> {
        self.0.rules.iter().map(rule_out).collect()
    }
    async fn frequency_cap(&self) -> FrequencyCap {
        let c = &self.0.frequency_cap;
        FrequencyCap { max_touches: c.max_touches, days: c.days, holiday_window_days: c.holiday_window_days }
    }
    /// Hour of the day (UTC) reminders fall due; 1 is 09:00 in China.
    async fn due_hour_utc(&self) -> i32 {
        self.0.due_hour_utc as i32
    }
    /// How many days back staff may log a contact (`occurredAt`); admins may log any date.
    async fn max_backdate_days(&self) -> i32 {
        self.0.max_backdate_days
    }
    /// How many live customers one holder of a role may own; roles not listed are not
    /// capped. Checked when a customer is created, claimed or assigned to someone.
    async fn holding_caps(&self) -> Vec<HoldingCap> {
        self.0.holding_caps.iter().map(|c| HoldingCap { role: c.role.into(), max: c.max }).collect()
    }
    /// When untended customers return to their department's pool.
    async fn pool_return(&self) -> PoolReturn {
        let p = &self.0.pool_return;
        PoolReturn {
            enabled: p.enabled,
            days: p.days,
            warn_days: p.warn_days,
            by_tier: p.by_tier.iter().map(|t| TierDays { tier: t.tier.into(), days: t.days }).collect(),
            by_category: p
                .by_category
                .iter()
                .map(|c| CategoryDays { category: c.category.clone(), days: c.days })
                .collect(),
        }
    }
}

/// Customers with no contact logged by a person for `days` (from the last contact, or
/// from when the owner got them if later) return to their department's pool, once a day,
/// audited; the owner gets a POOL_RETURN reminder `warnDays` before (0: none). A
/// category's days, else a tier's, else `days`. Default: on, 90 days, warned 7 days before.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "PoolReturnInput")]
pub struct PoolReturn {
    pub enabled: bool,
    pub days: i32,
    pub warn_days: i32,
    #[graphql(default)]
    pub by_tier: Vec<TierDays>,
    #[graphql(default)]
    pub by_category: Vec<CategoryDays>,
}

#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "TierDaysInput")]
pub struct TierDays {
    pub tier: Tier,
    pub days: i32,
}

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "CategoryDaysInput")]
pub struct CategoryDays {
    /// A category key.
    pub category: String,
    pub days: i32,
}

/// At most `max` live customers owned by one user of `role`.
#[derive(SimpleObject, InputObject, Clone, Copy)]
#[graphql(input_name = "HoldingCapInput")]
pub struct HoldingCap {
    pub role: super::enums::Role,
    pub max: i32,
}

fn standard_out(s: &svc::Standard) -> CareStandard {
    CareStandard {
        tier: s.tier.into(),
        role: s.role.into(),
        kind: s.kind.into(),
        count: s.count,
        period_days: s.period_days,
    }
}

fn rule_out(r: &svc::Rule) -> ReminderRuleConfig {
    ReminderRuleConfig {
        kind: r.kind.into(),
        enabled: r.enabled,
        offset_days: r.offset_days,
        tiers: r.tiers.iter().map(|t| (*t).into()).collect(),
        promotional: r.promotional,
        template: r.template.clone(),
        assignee: r.assignee.into(),
        window_days: r.window_days,
        min_count: r.min_count,
    }
}

/// A whole care policy to store.
#[derive(InputObject)]
pub struct CarePolicyInput {
    pub standards: Vec<CareStandard>,
    pub rules: Vec<ReminderRuleConfig>,
    pub frequency_cap: FrequencyCap,
    pub due_hour_utc: i32,
    /// How many days back staff may log a contact; omitted: unchanged.
    pub max_backdate_days: Option<i32>,
    /// Holding caps per role; omitted: unchanged.
    pub holding_caps: Option<Vec<HoldingCap>>,
    /// The pool's return rule; omitted: unchanged.
    pub pool_return: Option<PoolReturn>,
}

impl CarePolicyInput {
    fn into_policy(self, current: &Policy) -> Policy {
        Policy {
            standards: self
                .standards
                .into_iter()
                .map(|s| svc::Standard {
                    tier: s.tier.into(),
                    role: s.role.into(),
                    kind: s.kind.into(),
                    count: s.count,
                    period_days: s.period_days,
                })
                .collect(),
            rules: self
                .rules
                .into_iter()
                .map(|r| svc::Rule {
                    kind: r.kind.into(),
                    enabled: r.enabled,
                    offset_days: r.offset_days,
                    tiers: r.tiers.into_iter().map(Into::into).collect(),
                    promotional: r.promotional,
                    template: r.template,
                    assignee: r.assignee.into(),
                    window_days: r.window_days,
                    min_count: r.min_count,
                })
                .collect(),
            frequency_cap: svc::FrequencyCap {
                max_touches: self.frequency_cap.max_touches,
                days: self.frequency_cap.days,
                holiday_window_days: self.frequency_cap.holiday_window_days,
            },
            // Out of range is reported by validation, not wrapped.
            due_hour_utc: u32::try_from(self.due_hour_utc).unwrap_or(u32::MAX),
            max_backdate_days: self.max_backdate_days.unwrap_or(current.max_backdate_days),
            pool_return: match self.pool_return {
                Some(p) => svc::PoolReturn {
                    enabled: p.enabled,
                    days: p.days,
                    warn_days: p.warn_days,
                    by_tier: p
                        .by_tier
                        .into_iter()
                        .map(|t| svc::TierDays { tier: t.tier.into(), days: t.days })
                        .collect(),
                    by_category: p
                        .by_category
                        .into_iter()
                        .map(|c| svc::CategoryDays { category: c.category.trim().to_lowercase(), days: c.days })
                        .collect(),
                },
                None => current.pool_return.clone(),
            },
            holding_caps: match self.holding_caps {
                Some(caps) => caps.into_iter().map(|c| svc::HoldingCap { role: c.role.into(), max: c.max }).collect(),
                None => current.holding_caps.clone(),
            },
        }
    }
}

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

/// What one standard expects of a customer and what was done.
#[derive(SimpleObject, Clone)]
pub struct Expectation {
    pub role: Role,
    pub kind: ContactKind,
    /// Contacts expected per period.
    pub expected: i32,
    pub period_days: i32,
    /// Contacts logged within the period up to `asOf`.
    pub logged: i64,
    pub last_contact_at: Option<DateTime<Utc>>,
    /// By when the next contact is due.
    pub due_by: Date,
    pub overdue: bool,
    /// `logged >= expected`.
    pub met: bool,
}

/// A customer's follow-up compliance.
#[derive(SimpleObject, Clone)]
pub struct CustomerCompliance {
    pub customer: Customer,
    pub expectations: Vec<Expectation>,
    /// Any expectation overdue.
    pub overdue: bool,
}

/// One owner's follow-up summary (seed 000: callback counts feed appraisals).
#[derive(SimpleObject)]
pub struct OwnerCompliance {
    /// None: customers in a public pool.
    pub owner: Option<super::user::User>,
    pub owner_id: Option<ID>,
    pub customers: i64,
    /// Expectations (customer x standard).
    pub expected: i64,
    pub met: i64,
    pub overdue: i64,
    /// Contacts logged that count toward the expectations.
    pub contacts_logged: i64,
    /// met / expected, 0 to 1.
    pub compliance_rate: f64,
}

/// The follow-up compliance report.
pub struct Compliance {
    report: svc::Compliance,
}

#[Object]
impl Compliance {
    async fn as_of(&self) -> Date {
        Date(self.report.as_of)
    }
    async fn owners(&self, ctx: &Context<'_>) -> Result<Vec<OwnerCompliance>> {
        // All owners in one batch of the user loader, not one query per owner.
        let users = async_graphql::futures_util::future::try_join_all(self.report.owners.iter().map(|o| async move {
            match o.owner_id {
                Some(id) => super::loaders::user(ctx, id).await,
                None => Ok(None),
            }
        }))
        .await?;
        Ok(self
            .report
            .owners
            .iter()
            .zip(users)
            .map(|(o, owner)| OwnerCompliance {
                owner,
                owner_id: o.owner_id.map(|id| ID(id.to_string())),
                customers: o.customers,
                expected: o.expected,
                met: o.met,
                overdue: o.overdue,
                contacts_logged: o.contacts_logged,
                compliance_rate: if o.expected == 0 { 1.0 } else { o.met as f64 / o.expected as f64 },
            })
            .collect())
    }
    /// Customers in the report, by id, as a page.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn customers(
        &self,
        first: Option<i32>,
        after: Option<String>,
        #[graphql(default)] overdue_only: bool,
    ) -> Result<CustomerComplianceConnection> {
        let page = self.report.customer_page(overdue_only, &page_args(first, after)).gql()?;
        Ok(CustomerComplianceConnection(page.map(customer_compliance)))
    }
    /// Customers in the report.
    async fn total_customers(&self) -> i64 {
        self.report.customers.len() as i64
    }
}

fn customer_compliance(c: svc::CustomerCompliance) -> CustomerCompliance {
    let expectations: Vec<Expectation> = c
        .expectations
        .iter()
        .map(|e| Expectation {
            role: e.standard.role.into(),
            kind: e.standard.kind.into(),
            expected: e.standard.count,
            period_days: e.standard.period_days,
            logged: e.logged,
            last_contact_at: e.last_contact,
            due_by: Date(e.due_by),
            overdue: e.overdue,
            met: e.met(),
        })
        .collect();
    CustomerCompliance { customer: Customer(c.customer), overdue: expectations.iter().any(|e| e.overdue), expectations }
}

connection!(
    CustomerComplianceConnection,
    CustomerComplianceEdge,
    CustomerCompliance,
    "customer's follow-up compliance"
);

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
        let department = department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        let owner = owner_id.map(|o| parse_id("ownerId", &o)).transpose().gql()?;
        let as_of = as_of.map_or_else(|| Utc::now().date_naive(), |d| d.0);
        let report = svc::compliance(db(ctx), actor, as_of, department, owner).await.gql()?;
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
        let department = department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        Ok(svc::team_load(db(ctx), actor, department).await.gql()?.into_iter().map(PersonLoad).collect())
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
    /// Replaces the care policy (admins). CONFLICT when `version` is stale.
    async fn update_care_policy(&self, ctx: &Context<'_>, input: CarePolicyInput, version: i32) -> Result<CarePolicy> {
        let actor = actor(ctx)?;
        let (current, _) = svc::policy(db(ctx)).await.gql()?;
        let (p, v) = svc::update_policy(db(ctx), actor, input.into_policy(&current), version).await.gql()?;
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
            customer_id: uuid::Uuid::nil(),
            contact_id: interaction.contact_id.map(|c| parse_id("interaction.contactId", &c)).transpose().gql()?,
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

/// Live events over WebSocket (/graphql/ws, graphql-transport-ws).
#[derive(Default)]
pub struct Subscription;

/// The events of this instance, filtered for one subscriber.
fn events<T, F>(ctx: &Context<'_>, pick: F) -> BoxStream<'static, T>
where
    T: Send + 'static,
    F: Fn(&Event) -> Option<T> + Send + Sync + 'static,
{
    let rx = ctx.data_unchecked::<AppState>().events.subscribe();
    async_graphql::futures_util::stream::unfold((rx, pick), |(mut rx, pick)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if let Some(item) = pick(&event) {
                        return Some((item, (rx, pick)));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and skipped events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

#[Subscription]
impl Subscription {
    /// Customers created at TARGET or PROSPECT stage (by anyone, integrations included)
    /// that you may read.
    async fn new_lead(&self, ctx: &Context<'_>) -> Result<BoxStream<'static, Customer>> {
        let actor = Arc::new(actor(ctx)?.clone());
        service::access::live::authorize(&actor, service::access::live::Topic::NewLead).gql()?;
        Ok(events(ctx, move |e| match e {
            Event::NewLead(c) if e.visible_to(&actor) => Some(Customer(c.clone())),
            _ => None,
        }))
    }

    /// Your reminders as they fall due.
    async fn reminder_due(&self, ctx: &Context<'_>) -> Result<BoxStream<'static, Reminder>> {
        let actor = Arc::new(actor(ctx)?.clone());
        service::access::live::authorize(&actor, service::access::live::Topic::ReminderDue).gql()?;
        Ok(events(ctx, move |e| match e {
            Event::ReminderDue { reminder, .. } if e.visible_to(&actor) => Some(Reminder(reminder.clone())),
            _ => None,
        }))
    }
}
