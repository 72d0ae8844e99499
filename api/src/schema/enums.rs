//! GraphQL enums mirroring the stored enums of `entity::enums`.
use async_graphql::Enum;
use entity::enums as e;

/// A staff role; what it may do is data (role permissions).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Role")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// Reads every customer and moves ownership; reads reports.
    Executive,
    /// Everything about customers within the department subtree.
    Manager,
    /// Own customers and the department's public pool.
    Sales,
    /// Reads customers (no deal amounts) and handles feedback.
    Service,
    /// Aggregated reports only, no personal data.
    Analyst,
    /// A partner system: pushes leads, reads what it created.
    Integration,
}

/// Person or organization.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::CustomerKind")]
pub enum CustomerKind {
    /// A person; may share a name with others, phone and e-mail identify them.
    Individual,
    /// A company or institution; its normalized name is unique.
    Organization,
}

/// Lifecycle stage; TARGET and PROSPECT are set by people, the rest follow from deals.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::LifecycleStage")]
pub enum LifecycleStage {
    /// Fits the target profile, no contact yet.
    Target,
    /// Shows intent.
    Prospect,
    /// Has bought.
    Customer,
    /// Repeat buyer or tier A.
    Vip,
    /// No purchase within the churn window.
    Churned,
}

/// Value tier computed from won deals.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Tier")]
pub enum Tier {
    /// Top revenue.
    A,
    /// High revenue.
    B,
    /// Some revenue.
    C,
    /// No revenue in the window.
    D,
}

/// Importance set by a person.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Importance")]
pub enum Importance {
    /// Most important.
    A,
    /// Important.
    B,
    /// Ordinary.
    C,
}

/// Gender.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Gender")]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other or not stated.
    Other,
}

/// Where a customer came from.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::CustomerSource")]
pub enum CustomerSource {
    /// Called us.
    PhoneIn,
    /// We called.
    PhoneOut,
    /// Referred by someone.
    Referral,
    /// Web site or online channel.
    Web,
    /// Advertising.
    Advertising,
    /// Trade show or event.
    Event,
    /// Partner or integration.
    Partner,
    /// Anything else.
    Other,
}

/// A contact's role in buying decisions (seed 004).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::ContactRole")]
pub enum ContactRole {
    /// Makes the decision.
    DecisionMaker,
    /// Our ally inside.
    Insider,
    /// Sways the decision.
    Influencer,
    /// Works against us.
    Opponent,
}

/// Pipeline stage of a deal.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::DealStage")]
pub enum DealStage {
    /// First contact.
    Lead,
    /// Need and budget confirmed.
    Qualified,
    /// Offer sent.
    Proposal,
    /// Terms under discussion.
    Negotiation,
    /// Sold: counts as revenue.
    Won,
    /// Lost; give a lost reason.
    Lost,
}

/// What a piece of feedback is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::FeedbackKind")]
pub enum FeedbackKind {
    /// Something went wrong.
    Complaint,
    /// An idea.
    Suggestion,
    /// A compliment.
    Praise,
    /// An answer to a satisfaction survey.
    Survey,
    /// After-sales service request.
    ServiceRequest,
}

/// Where feedback came in.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::FeedbackChannel")]
pub enum FeedbackChannel {
    Phone,
    Email,
    Visit,
    Sms,
    Wechat,
    OnlineReview,
    Survey,
}

/// Handling state of feedback.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::FeedbackStatus")]
pub enum FeedbackStatus {
    /// Not yet picked up.
    Open,
    /// Being handled.
    InProgress,
    /// Solved; `resolvedAt` is set.
    Resolved,
    /// Closed.
    Closed,
}

/// Kind of logged contact.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::InteractionKind")]
pub enum InteractionKind {
    Visit,
    Call,
    Sms,
    Email,
    Wechat,
    Meeting,
    Gift,
    Event,
}

/// Who started an interaction.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Direction")]
pub enum Direction {
    /// The customer reached us.
    Inbound,
    /// We reached the customer.
    Outbound,
}

/// High or low.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Level")]
pub enum Level {
    High,
    Low,
}

/// Relationship type (seed 001): loyalty x profit contribution.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::RelationshipType")]
pub enum RelationshipType {
    /// Loyal and profitable: the ideal customer.
    Partnership,
    /// Profitable but not loyal: find out why, keep them.
    Functional,
    /// Loyal but little profit: free advocates.
    Emotional,
    /// Neither: the most fragile.
    Drifting,
}

/// Turnover x margin class (seed 001).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::TurnoverMarginClass")]
pub enum TurnoverMarginClass {
    /// High turnover, high margin.
    A,
    /// High turnover, low margin.
    B,
    /// Low turnover, low margin.
    C,
    /// Low turnover, high margin.
    D,
}

/// What a contact standard counts: VISIT (visits and meetings), CALL, MESSAGE (SMS, e-mail, WeChat).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::ContactKind")]
pub enum ContactKind {
    Visit,
    Call,
    Message,
}

/// A reminder rule of the care policy.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::ReminderRule")]
pub enum ReminderRule {
    /// A greeting N days (default 2) after a won deal.
    DealGreeting,
    /// A satisfaction survey N days (default 7) after a won deal.
    SatisfactionSurvey,
    /// A customer's or contact's birthday, N days ahead (default 3).
    Birthday,
    /// A holiday of the calendar, N days ahead (default 1).
    Holiday,
    /// A contact standard of the care policy not kept.
    OverdueContact,
    /// A tier A/B customer complained repeatedly.
    RepeatedComplaint,
    /// A planned contact: an interaction's `nextFollowUpOn` (for the customer's owner) or
    /// `createFollowUp` (for whoever set it). Not a rule of the policy.
    FollowUp,
    /// An untended customer returns to its department's pool soon (the care policy's
    /// `poolReturn`); to the owner.
    PoolReturn,
}

/// Where a reminder stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::ReminderStatus")]
pub enum ReminderStatus {
    /// To do.
    Pending,
    /// Put off until its new due time.
    Snoozed,
    /// Done: the interaction was logged.
    Done,
    /// Dismissed with a reason.
    Dismissed,
    /// Not to be acted on: the contact-frequency cap would be exceeded (see suppressedReason).
    Suppressed,
}

/// Who a rule's reminders go to.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::AssigneeRole")]
pub enum AssigneeRole {
    /// The customer's owner at the time (a reminder follows its customer).
    Owner,
    /// The nearest manager up the customer's department tree.
    Manager,
    /// An executive.
    Executive,
}

/// What a permission is about: a resource, or a field group (amounts, contact details,
/// personal details) whose READ grant decides, record by record, whether those fields show.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Resource")]
pub enum PermissionResource {
    Customer,
    Contact,
    Deal,
    /// Field group: deal amounts, line prices and costs, revenue, margin.
    DealAmount,
    /// Field group: phone numbers, e-mail and postal addresses.
    ContactDetails,
    /// Field group: birthday, ID number, hometown, hobbies, soft profile.
    PersonalDetails,
    Interaction,
    Feedback,
    Report,
    User,
    Settings,
    /// The audit trail (READ), scoped by the customers its records hang off.
    Audit,
    /// A person's data as a whole: export (READ) and erase (DELETE).
    PersonalData,
}

/// What a permission allows.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Action")]
pub enum PermissionAction {
    Read,
    Create,
    Update,
    Delete,
    Assign,
}

/// How far a permission reaches.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::Scope")]
pub enum PermissionScope {
    /// Nothing.
    #[graphql(name = "NONE")]
    NoAccess,
    /// The caller's own records.
    Own,
    /// The records of the caller's department and every department below it.
    Department,
    /// Every record.
    All,
}

/// A channel a customer consents to marketing on.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::ConsentChannel")]
pub enum ConsentChannel {
    Sms,
    Phone,
    Email,
    Wechat,
    /// Letters.
    Post,
}

/// A domain event a webhook may subscribe to; receivers see it as the payload's `type`
/// (`customer.created`, …, `docs/webhooks.md`).
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::WebhookEventKind")]
pub enum WebhookEventKind {
    /// `customer.created`: a customer was made (by hand, an import, a bulk call).
    CustomerCreated,
    /// `customer.updated`: a customer's record changed (an edit, a restore, an upsert, a
    /// tier override, a merge into it).
    CustomerUpdated,
    /// `customer.assigned`: a customer's owner changed (assignment, claim, hand-over,
    /// return to the pool).
    CustomerAssigned,
    /// `customer.merged`: a customer was merged into another.
    CustomerMerged,
    /// `customer.deleted`: a customer went to the trash.
    CustomerDeleted,
    /// `deal.won`: a deal reached WON.
    DealWon,
    /// `deal.lost`: a deal reached LOST.
    DealLost,
    /// `feedback.received`: feedback was recorded.
    FeedbackReceived,
    /// `reminder.due`: a care reminder fell due.
    ReminderDue,
}

/// Where a webhook delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "e::DeliveryStatus")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt, or in flight.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: every attempt failed, or the receiver answered 410.
    Failed,
    /// Not sent: the webhook's account may no longer read the record, or its personal
    /// data was erased.
    Skipped,
}
