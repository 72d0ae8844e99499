//! Duplicate candidates before entry (`docs/duplicates.md`).
use super::common::{actor, connection, db, page_args, parse_id};
use super::customer::Customer;
use super::enums::CustomerKind;
use super::error::ResultExt;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::duplicate_report;
use service::customer::duplicates as svc;
use service::customer::duplicates::Probe;

/// Why a record may be the customer being entered.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "svc::Reason")]
pub enum DuplicateReason {
    /// The same phone number (E.164): a save would be refused.
    SamePhone,
    /// The same e-mail address: a save would be refused.
    SameEmail,
    /// The same organization name once folded: a save would be refused.
    SameOrganizationName,
    /// A contact of that customer has this phone number.
    ContactPhone,
    /// An organization name sharing most of this one's character pairs.
    SimilarOrganizationName,
    /// A person of the same name in the same region.
    SameNameAndRegion,
    /// A person of the same name with a mobile number of the same block.
    SameNameAndPhonePrefix,
}

/// What is being typed in.
#[derive(InputObject)]
pub struct DuplicateCheckInput {
    pub kind: CustomerKind,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    /// The customer being edited, left out of its own candidates.
    pub exclude_id: Option<ID>,
}

/// A record that may be the customer being entered.
#[derive(SimpleObject)]
pub struct DuplicateCandidate {
    /// 0 to 1: how sure the match is.
    pub score: f64,
    pub reasons: Vec<DuplicateReason>,
    /// The customer, when you may read it; null otherwise (ask its department).
    pub customer: Option<Customer>,
    /// The department that owns it (staff only).
    pub department: Option<String>,
}

/// Where a reported duplicate stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "entity::enums::DuplicateReportStatus")]
pub enum DuplicateReportStatus {
    /// Waiting for a manager.
    Open,
    /// Settled by a merge of either customer.
    Merged,
    /// The two are different customers.
    Dismissed,
}

/// A reported pair of customers that may be one (seed 004's 举报).
pub struct DuplicateReport(duplicate_report::Model);

#[Object]
impl DuplicateReport {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The record reported as wrongly entered.
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    /// The record it duplicates.
    async fn duplicate_of(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.duplicate_of_id).await
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn reported_by(&self, ctx: &Context<'_>) -> Result<Option<super::user::User>> {
        super::loaders::user(ctx, self.0.reported_by).await
    }
    async fn status(&self) -> DuplicateReportStatus {
        self.0.status.into()
    }
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    async fn resolution(&self) -> Option<&str> {
        self.0.resolution.as_deref()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(DuplicateReportConnection, DuplicateReportEdge, DuplicateReport, "reported duplicates");

#[derive(Default)]
pub struct DuplicateQuery;

#[Object]
impl DuplicateQuery {
    /// The reported duplicates you can act on (both customers readable to you, and a role
    /// that may merge), oldest first.
    async fn duplicate_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DuplicateReportStatus::Open")] status: DuplicateReportStatus,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<DuplicateReportConnection> {
        let actor = actor(ctx)?;
        let page = svc::queue(db(ctx), actor, status.into(), &page_args(first, after)).await.gql()?;
        Ok(DuplicateReportConnection(page.map(DuplicateReport)))
    }

    /// Records that may be the customer being entered, best first (at most 10): for a
    /// front end to ask while a person types, before saving. Candidates outside your
    /// scope tell only that they exist and which department owns them.
    async fn duplicate_candidates(
        &self,
        ctx: &Context<'_>,
        input: DuplicateCheckInput,
    ) -> Result<Vec<DuplicateCandidate>> {
        let actor = actor(ctx)?;
        // A match against the whole base: spent from the caller's budget, each alias too.
        super::common::state(ctx).matching.spend(actor, entity::enums::Resource::Customer, 1).gql()?;
        let exclude = input.exclude_id.map(|id| parse_id("input.excludeId", &id)).transpose().gql()?;
        let probe = Probe {
            kind: Some(input.kind.into()),
            name: input.name,
            phone: input.phone,
            email: input.email,
            region: input.region,
            exclude,
        };
        let found = svc::candidates(db(ctx), actor, probe).await.gql()?;
        Ok(found
            .into_iter()
            .map(|c| DuplicateCandidate {
                score: (c.score * 100.0).round() / 100.0,
                reasons: c.reasons.into_iter().map(Into::into).collect(),
                customer: c.customer.map(Customer),
                department: c.department,
            })
            .collect())
    }
}

/// Take this field from that customer (the survivor keeps its own otherwise).
#[derive(InputObject)]
pub struct MergeFieldChoice {
    pub field: super::category::CustomerField,
    /// The survivor or one of the merged customers.
    pub from_id: ID,
}

/// Records that moved (or, on a dry run, would move) to the survivor.
#[derive(SimpleObject)]
pub struct MergeCounts {
    pub contacts: i64,
    pub deals: i64,
    pub feedback: i64,
    pub interactions: i64,
    pub reminders: i64,
    pub classification_history: i64,
    /// Consent records per channel (where both had one, a withdrawal on either side stands).
    pub consents: i64,
}

/// What a merge did, or would do.
#[derive(SimpleObject)]
pub struct MergeResult {
    /// The survivor as merged (on a dry run: as it would be; nothing is written).
    pub customer: Customer,
    pub merged_ids: Vec<ID>,
    pub moved: MergeCounts,
    pub dry_run: bool,
}

#[derive(Default)]
pub struct MergeMutation;

#[Object]
impl MergeMutation {
    /// Reports `customerId` as a wrongly entered duplicate of `duplicateOfId`, for a
    /// manager to merge or dismiss; you must be able to read both. Reporting a pair that is
    /// already open returns that report.
    async fn report_duplicate(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        duplicate_of_id: ID,
        note: Option<String>,
    ) -> Result<DuplicateReport> {
        let actor = actor(ctx)?;
        let customer = parse_id("customerId", &customer_id).gql()?;
        let of = parse_id("duplicateOfId", &duplicate_of_id).gql()?;
        svc::report(db(ctx), actor, customer, of, note).await.map(DuplicateReport).gql()
    }

    /// Closes an open report: the two are different customers.
    async fn dismiss_duplicate_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        resolution: Option<String>,
    ) -> Result<DuplicateReport> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::dismiss(db(ctx), actor, id, resolution).await.map(DuplicateReport).gql()
    }

    /// Merges duplicates into one survivor in one transaction: the survivor takes the
    /// chosen fields and every contact, deal, feedback, interaction, reminder,
    /// classification history entry and consent of the others; the others go to the trash
    /// with `mergedInto` set (they cannot be restored) and keep their audit trail; the
    /// survivor is regraded. Needs the update grant over the survivor and the delete grant
    /// over each merged customer. `dryRun: true` shows the result and writes nothing.
    async fn merge_customers(
        &self,
        ctx: &Context<'_>,
        survivor_id: ID,
        merged_ids: Vec<ID>,
        #[graphql(default)] field_choices: Vec<MergeFieldChoice>,
        #[graphql(default)] dry_run: bool,
        #[graphql(desc = "The survivor's version you saw (e.g. in the dry run's answer): the merge is refused \
                          with CONFLICT if the survivor changed since.")]
        survivor_version: Option<i32>,
    ) -> Result<MergeResult> {
        let actor = actor(ctx)?;
        let survivor = parse_id("survivorId", &survivor_id).gql()?;
        let merged = merged_ids.iter().map(|id| parse_id("mergedIds", id)).collect::<Result<Vec<_>, _>>().gql()?;
        let choices = field_choices
            .iter()
            .map(|c| parse_id("fieldChoices.fromId", &c.from_id).map(|id| (c.field.name().to_string(), id)))
            .collect::<Result<Vec<_>, _>>()
            .gql()?;
        let vault = &super::common::state(ctx).privacy.keys;
        let request = service::customer::merge::Request { survivor, merged, choices, survivor_version, dry_run };
        let outcome = service::customer::merge::merge(db(ctx), vault, actor, request).await.gql()?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let m = outcome.moved;
        Ok(MergeResult {
            customer: Customer(outcome.customer),
            merged_ids: outcome.merged.iter().map(|id| ID(id.to_string())).collect(),
            moved: MergeCounts {
                contacts: n(m.contacts),
                deals: n(m.deals),
                feedback: n(m.feedback),
                interactions: n(m.interactions),
                reminders: n(m.reminders),
                classification_history: n(m.classification_history),
                consents: n(m.consents),
            },
            dry_run: outcome.dry_run,
        })
    }
}
