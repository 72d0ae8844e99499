//! Domain enums, stored as upper-case strings so SQLite and PostgreSQL agree.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $value)] #[serde(rename = $value)] $variant),+
        }

        impl $name {
            /// The stored string form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value),+ }
            }

            /// Parses the stored string form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($value => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// A staff member's role; its permissions live in `role_permission`.
    Role {
        Admin = "ADMIN", Executive = "EXECUTIVE", Manager = "MANAGER", Sales = "SALES",
        Service = "SERVICE", Analyst = "ANALYST", Integration = "INTEGRATION",
    }
);

impl Role {
    /// Whether the role is held by people of the company (every role but a partner
    /// system's): they may learn which department owns a duplicate (seed 004).
    pub fn is_staff(self) -> bool {
        self != Role::Integration
    }
}

string_enum!(
    /// What a permission row is about.
    Resource {
        Customer = "CUSTOMER", Contact = "CONTACT", Deal = "DEAL",
        /// Field group: amounts (deal amounts, line prices and costs, revenue, margin).
        DealAmount = "DEAL_AMOUNT",
        /// Field group: phone numbers, e-mail and postal addresses.
        ContactDetails = "CONTACT_DETAILS",
        /// Field group: birthday, ID number, hometown, hobbies, soft profile.
        PersonalDetails = "PERSONAL_DETAILS",
        Interaction = "INTERACTION", Feedback = "FEEDBACK", Report = "REPORT", User = "USER",
        Settings = "SETTINGS",
        /// The audit trail (READ), scoped by the customers its records hang off.
        Audit = "AUDIT",
        /// A person's data as a whole: export (READ) and erase (DELETE).
        PersonalData = "PERSONAL_DATA",
    }
);

string_enum!(
    /// What a permission row allows.
    Action { Read = "READ", Create = "CREATE", Update = "UPDATE", Delete = "DELETE", Assign = "ASSIGN" }
);

string_enum!(
    /// How far a permission reaches.
    Scope { NoAccess = "NONE", Own = "OWN", Department = "DEPARTMENT", All = "ALL" }
);

string_enum!(
    /// A channel a customer consents to marketing on.
    ConsentChannel { Sms = "SMS", Phone = "PHONE", Email = "EMAIL", Wechat = "WECHAT", Post = "POST" }
);

string_enum!(
    /// A person or an organization.
    CustomerKind { Individual = "INDIVIDUAL", Organization = "ORGANIZATION" }
);

string_enum!(
    /// Where a customer stands in its life cycle.
    LifecycleStage {
        Target = "TARGET", Prospect = "PROSPECT", Customer = "CUSTOMER", Vip = "VIP", Churned = "CHURNED",
    }
);

string_enum!(
    /// Computed value tier.
    Tier { A = "A", B = "B", C = "C", D = "D" }
);

string_enum!(
    /// Importance set by a person (seed 004).
    Importance { A = "A", B = "B", C = "C" }
);

string_enum!(
    /// Gender of an individual customer or contact.
    Gender { Male = "MALE", Female = "FEMALE", Other = "OTHER" }
);

string_enum!(
    /// How the customer came to us.
    CustomerSource {
        PhoneIn = "PHONE_IN", PhoneOut = "PHONE_OUT", Referral = "REFERRAL", Web = "WEB",
        Advertising = "ADVERTISING", Event = "EVENT", Partner = "PARTNER", Other = "OTHER",
    }
);

string_enum!(
    /// A contact's role in deals (seed 004).
    ContactRole {
        DecisionMaker = "DECISION_MAKER", Insider = "INSIDER", Influencer = "INFLUENCER", Opponent = "OPPONENT",
    }
);

string_enum!(
    /// Sales pipeline stage.
    DealStage {
        Lead = "LEAD", Qualified = "QUALIFIED", Proposal = "PROPOSAL", Negotiation = "NEGOTIATION",
        Won = "WON", Lost = "LOST",
    }
);

string_enum!(
    /// What a feedback record is.
    FeedbackKind {
        Complaint = "COMPLAINT", Suggestion = "SUGGESTION", Praise = "PRAISE", Survey = "SURVEY",
        ServiceRequest = "SERVICE_REQUEST",
    }
);

string_enum!(
    /// Where feedback came in.
    FeedbackChannel {
        Phone = "PHONE", Email = "EMAIL", Visit = "VISIT", Sms = "SMS", Wechat = "WECHAT",
        OnlineReview = "ONLINE_REVIEW", Survey = "SURVEY",
    }
);

string_enum!(
    /// Handling state of feedback.
    FeedbackStatus { Open = "OPEN", InProgress = "IN_PROGRESS", Resolved = "RESOLVED", Closed = "CLOSED" }
);

string_enum!(
    /// Kind of logged contact.
    InteractionKind {
        Visit = "VISIT", Call = "CALL", Sms = "SMS", Email = "EMAIL", Wechat = "WECHAT",
        Meeting = "MEETING", Gift = "GIFT", Event = "EVENT",
    }
);

string_enum!(
    /// Who started an interaction.
    Direction { Inbound = "INBOUND", Outbound = "OUTBOUND" }
);

string_enum!(
    /// High or low (purchase frequency, value).
    Level { High = "HIGH", Low = "LOW" }
);

string_enum!(
    /// Loyalty x profit contribution (seed 001).
    RelationshipType {
        Partnership = "PARTNERSHIP", Functional = "FUNCTIONAL", Emotional = "EMOTIONAL", Drifting = "DRIFTING",
    }
);

string_enum!(
    /// Turnover x margin (seed 001): A high/high, B high/low, C low/low, D low/high.
    TurnoverMarginClass { A = "A", B = "B", C = "C", D = "D" }
);

string_enum!(
    /// How a contact standard counts interactions: VISIT (visits, meetings), CALL, MESSAGE
    /// (SMS, e-mail, WeChat).
    ContactKind { Visit = "VISIT", Call = "CALL", Message = "MESSAGE" }
);

string_enum!(
    /// The reminder rules of the care policy.
    ReminderRule {
        DealGreeting = "DEAL_GREETING", SatisfactionSurvey = "SATISFACTION_SURVEY", Birthday = "BIRTHDAY",
        Holiday = "HOLIDAY", OverdueContact = "OVERDUE_CONTACT", RepeatedComplaint = "REPEATED_COMPLAINT",
        /// A planned contact (`nextFollowUpOn`, `createFollowUp`); not a rule of the policy.
        FollowUp = "FOLLOW_UP",
        /// The owner's warning that an untended customer returns to the pool (`poolReturn`).
        PoolReturn = "POOL_RETURN",
    }
);

string_enum!(
    ReminderStatus {
        Pending = "PENDING", Snoozed = "SNOOZED", Done = "DONE", Dismissed = "DISMISSED", Suppressed = "SUPPRESSED",
    }
);

string_enum!(
    /// Who a reminder goes to: the customer's owner (whoever it is at the time), or the
    /// customer department's manager, or an executive.
    AssigneeRole { Owner = "OWNER", Manager = "MANAGER", Executive = "EXECUTIVE" }
);

string_enum!(
    /// Why a customer's grades changed, or why a full pass ran.
    ClassificationReason {
        DealWon = "DEAL_WON", DealLost = "DEAL_LOST", DealChanged = "DEAL_CHANGED", Override = "OVERRIDE",
        PolicyChange = "POLICY_CHANGE", TimePassed = "TIME_PASSED", Reclassify = "RECLASSIFY",
        Merge = "MERGE",
    }
);

string_enum!(
    /// Where a full reclassification pass stands.
    RunStatus { Running = "RUNNING", Done = "DONE", Failed = "FAILED" }
);

string_enum!(
    /// Where a reported duplicate stands.
    DuplicateReportStatus { Open = "OPEN", Merged = "MERGED", Dismissed = "DISMISSED" }
);

string_enum!(
    /// What an import loads.
    ImportKind { Customers = "CUSTOMERS", Contacts = "CONTACTS", Deals = "DEALS" }
);

string_enum!(
    /// Where an import stands.
    ImportStatus { Running = "RUNNING", Done = "DONE", Failed = "FAILED", Interrupted = "INTERRUPTED" }
);

string_enum!(
    /// What became of one line of an import.
    ImportOutcome {
        Created = "CREATED", Updated = "UPDATED", Unchanged = "UNCHANGED", Duplicate = "DUPLICATE",
        Invalid = "INVALID", Failed = "FAILED", Skipped = "SKIPPED",
    }
);

string_enum!(
    /// A domain event a webhook may subscribe to (`docs/webhooks.md`); the stored form is
    /// the type receivers see.
    WebhookEventKind {
        CustomerCreated = "customer.created", CustomerUpdated = "customer.updated",
        CustomerAssigned = "customer.assigned", CustomerMerged = "customer.merged",
        CustomerDeleted = "customer.deleted", DealWon = "deal.won", DealLost = "deal.lost",
        FeedbackReceived = "feedback.received", ReminderDue = "reminder.due",
    }
);

string_enum!(
    /// Where a webhook delivery stands.
    DeliveryStatus {
        /// Waiting for its first or next attempt (or in flight).
        Pending = "PENDING",
        /// The receiver answered 2xx.
        Delivered = "DELIVERED",
        /// Given up: attempts exhausted, or the receiver answered 410.
        Failed = "FAILED",
        /// Not sent: the subscriber may no longer read the record, or it was erased.
        Skipped = "SKIPPED",
    }
);
