//! Reports for BI tools: aggregates only, within the caller's report scope.
use super::common::{Date, EnumFilter, IdFilter, LabelFilter, Money, actor};
use super::enums::{
    CustomerKind, CustomerSource, Importance, Level, LifecycleStage, RelationshipType, Tier, TurnoverMarginClass,
};
use super::error::ResultExt;
use super::user::User;
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use service::reports as svc;
use service::reports::{Dimension, FeedbackDimension as FDim};

/// What a report may be narrowed by: attributes many customers share. No identifying or
/// free-text field (id, name, phone, e-mail, address, amounts) and no substring match, so
/// a report cannot single out a person.
#[derive(InputObject, Default)]
pub struct ReportFilter {
    pub and: Option<Vec<ReportFilter>>,
    pub or: Option<Vec<ReportFilter>>,
    pub kind: Option<EnumFilter<CustomerKind>>,
    pub category: Option<LabelFilter>,
    pub region: Option<LabelFilter>,
    pub industry: Option<LabelFilter>,
    pub source: Option<EnumFilter<CustomerSource>>,
    pub importance: Option<EnumFilter<Importance>>,
    pub lifecycle_stage: Option<EnumFilter<LifecycleStage>>,
    pub tier: Option<EnumFilter<Tier>>,
    pub owner_id: Option<IdFilter>,
    pub department_id: Option<IdFilter>,
    pub frequency_class: Option<EnumFilter<Level>>,
    pub value_class: Option<EnumFilter<Level>>,
    pub relationship_type: Option<EnumFilter<RelationshipType>>,
    pub turnover_margin_class: Option<EnumFilter<TurnoverMarginClass>>,
}

/// A dimension of the classification report.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "Dimension")]
pub enum ReportDimension {
    Tier,
    Lifecycle,
    Category,
    /// Key: department id; label: its name.
    Department,
    Region,
    /// Key: owner id (empty: public pool); label: the owner's name.
    Owner,
}

/// A dimension of the feedback summary.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "FDim")]
pub enum FeedbackDimension {
    Kind,
    Channel,
    Status,
}

/// The value of one dimension in a report row.
#[derive(SimpleObject, Clone)]
pub struct ReportKey {
    pub dimension: String,
    /// Null when the customers have no value (no region, no owner).
    pub value: Option<String>,
    /// Name of a department or owner.
    pub label: Option<String>,
}

/// One group of customers.
#[derive(SimpleObject)]
pub struct ClassificationReportRow {
    /// In `groupBy` order; values null on the suppressed row.
    pub keys: Vec<ReportKey>,
    /// True on the one row that pools the groups too small to show to you (fewer
    /// customers than the server's minimum group size, some of which you may not read).
    /// It appears only when the pool itself reaches that size.
    pub suppressed: bool,
    pub customer_count: i64,
    /// Won revenue in the trailing window, base currency.
    pub revenue: Money,
    /// Percent of the report's revenue, two decimals ("12.50").
    pub revenue_share: String,
}

/// Customers moving from one tier to another between two dates.
#[derive(SimpleObject)]
pub struct TierMigrationCell {
    pub from: Tier,
    pub to: Tier,
    pub count: i64,
}

/// A staff member's activity in a period.
pub struct StaffActivityRow(svc::StaffRow, String);

#[Object]
impl StaffActivityRow {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::loaders::user(ctx, self.0.user_id).await
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn department_id(&self) -> ID {
        ID(self.0.department_id.to_string())
    }
    async fn calls(&self) -> i64 {
        self.0.calls
    }
    async fn visits(&self) -> i64 {
        self.0.visits
    }
    /// SMS, WeChat and e-mail.
    async fn messages(&self) -> i64 {
        self.0.messages
    }
    /// Outbound calls to customers who had bought before: after-sale follow-ups.
    async fn callbacks(&self) -> i64 {
        self.0.callbacks
    }
    async fn deals_won(&self) -> i64 {
        self.0.deals_won
    }
    async fn revenue_won(&self) -> Money {
        Money::new(self.0.revenue_won, &self.1)
    }
}

/// Feedback of one group.
#[derive(SimpleObject)]
pub struct FeedbackSummaryRow {
    pub keys: Vec<ReportKey>,
    pub count: i64,
    pub rated_count: i64,
    /// Average rating (1-5), two decimals.
    pub average_rating: Option<String>,
    /// Net promoter score, -100 to 100.
    pub nps: Option<i64>,
    pub nps_answers: i64,
    pub median_resolution_minutes: Option<i64>,
}

#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// Customers and revenue grouped by the given dimensions. `asOf` reports tiers and
    /// lifecycle stages as they were at the end of that day. Groups smaller than the
    /// server's minimum group size are pooled for roles that may not read their customers
    /// (see `suppressed`). Also as CSV:
    /// `GET /reports/classification.csv?groupBy=TIER,REGION&asOf=2026-06-30`.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn classification_report(
        &self,
        ctx: &Context<'_>,
        group_by: Vec<ReportDimension>,
        filter: Option<ReportFilter>,
        as_of: Option<Date>,
    ) -> Result<Vec<ClassificationReportRow>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let filter = super::common::to_json(filter).gql()?;
        let dims: Vec<Dimension> = group_by.into_iter().map(Into::into).collect();
        let k = super::common::state(ctx).privacy.min_group;
        let rows =
            svc::classification_report(heavy.db(), actor, &dims, filter.as_ref(), as_of.map(|d| d.0), k).await.gql()?;
        let (policy, _) = super::loaders::policy(ctx).await?;
        Ok(rows
            .into_iter()
            .map(|r| ClassificationReportRow {
                keys: dims
                    .iter()
                    .zip(r.keys)
                    .zip(r.labels)
                    .map(|((d, value), label)| ReportKey { dimension: d.name().to_uppercase(), value, label })
                    .collect(),
                suppressed: r.suppressed,
                customer_count: r.customers,
                revenue: Money::new(r.revenue, &policy.base_currency),
                revenue_share: service::reports::two_decimals(r.share_bp),
            })
            .collect())
    }

    /// Tier at `from` x tier at `to` for customers that existed at `from`: all sixteen cells.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn tier_migration(&self, ctx: &Context<'_>, from: Date, to: Date) -> Result<Vec<TierMigrationCell>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let k = super::common::state(ctx).privacy.min_group;
        let cells = svc::tier_migration(heavy.db(), actor, from.0, to.0, k).await.gql()?;
        Ok(cells
            .into_iter()
            .filter_map(|(a, b, count)| {
                let a = entity::enums::Tier::parse(&a)?;
                let b = entity::enums::Tier::parse(&b)?;
                Some(TierMigrationCell { from: a.into(), to: b.into(), count })
            })
            .collect())
    }

    /// Calls, visits, messages, callbacks and deals won per staff member between two dates
    /// (seed 000: appraisal figures). Managers see their department subtree, reps themselves.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn staff_activity(&self, ctx: &Context<'_>, from: Date, to: Date) -> Result<Vec<StaffActivityRow>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let rows = svc::staff_activity(heavy.db(), actor, from.0, to.0).await.gql()?;
        let (policy, _) = super::loaders::policy(ctx).await?;
        Ok(rows.into_iter().map(|r| StaffActivityRow(r, policy.base_currency.clone())).collect())
    }

    /// Feedback received between two dates: counts, average rating, NPS and median
    /// resolution time, grouped by kind, channel and/or status.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn feedback_summary(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
        #[graphql(default)] group_by: Vec<FeedbackDimension>,
    ) -> Result<Vec<FeedbackSummaryRow>> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        let dims: Vec<FDim> = group_by.into_iter().map(Into::into).collect();
        let rows = svc::feedback_summary(heavy.db(), actor, from.0, to.0, &dims).await.gql()?;
        Ok(rows
            .into_iter()
            .map(|r| FeedbackSummaryRow {
                keys: dims
                    .iter()
                    .zip(r.keys)
                    .map(|(d, v)| ReportKey { dimension: d.name().to_uppercase(), value: Some(v), label: None })
                    .collect(),
                count: r.count,
                rated_count: r.rated,
                average_rating: r.average_rating_x100.map(service::reports::two_decimals),
                nps: r.nps,
                nps_answers: r.nps_answers,
                median_resolution_minutes: r.median_resolution_minutes,
            })
            .collect())
    }
}
