//! The key customer lists of seed 001 as paginated queries, each within the caller's scope.
use super::common::{Date, Money, PageInfo, actor};
use super::customer::Customer;
use super::error::ResultExt;
use async_graphql::{Context, Object, Result, SimpleObject};
use service::keylists as svc;
use service::keylists::{KeyPage, KeyRow};

/// A customer on a key list, with the figures that put it there.
#[derive(Clone)]
pub struct KeyCustomer(KeyRow);

#[Object]
impl KeyCustomer {
    /// Position on the list, from 1.
    async fn rank(&self) -> i64 {
        self.0.rank
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    /// Revenue that ranks the customer (window, or last calendar year for last year's
    /// top customers), in the base currency. Lists ranked by revenue hold only customers
    /// whose amounts you see; the others are null.
    async fn revenue(&self, ctx: &Context<'_>) -> Result<Option<Money>> {
        super::common::base_money(ctx, self.0.revenue).await
    }
    /// Revenue so far this calendar year (last year's top customers only).
    async fn revenue_this_year(&self, ctx: &Context<'_>) -> Result<Option<Money>> {
        super::common::base_money(ctx, self.0.revenue_this_year).await
    }
    /// Whether the customer ordered this calendar year (last year's top customers only).
    async fn ordered_this_year(&self) -> Option<bool> {
        self.0.revenue_this_year.map(|r| r > 0)
    }
    /// Complaints, product lines or contacts, depending on the list.
    async fn count(&self) -> Option<i64> {
        self.0.count
    }
    async fn last_purchase_on(&self) -> Option<Date> {
        self.0.last_purchase_on.map(Date)
    }
}

/// One key-list customer with its cursor.
#[derive(SimpleObject, Clone)]
pub struct KeyCustomerEdge {
    pub cursor: String,
    pub node: KeyCustomer,
}

/// A page of a key list.
pub struct KeyCustomerConnection(KeyPage);

#[Object]
impl KeyCustomerConnection {
    async fn edges(&self) -> Vec<KeyCustomerEdge> {
        self.0.rows.iter().map(|(c, r)| KeyCustomerEdge { cursor: c.clone(), node: KeyCustomer(r.clone()) }).collect()
    }
    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.0.has_next_page,
            has_previous_page: self.0.has_previous_page,
            start_cursor: self.0.rows.first().map(|(c, _)| c.clone()),
            end_cursor: self.0.rows.last().map(|(c, _)| c.clone()),
        }
    }
    /// Customers on the list that you may read.
    async fn total_count(&self) -> i64 {
        self.0.total_count as i64
    }
}

#[derive(Default)]
pub struct KeyListQuery;

#[Object]
impl KeyListQuery {
    /// Gold customers: the top `topPercent` % of all buyers by revenue in the trailing
    /// window (seed 001: 5%), those you may read, biggest first.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn gold_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] top_percent: i32,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::gold(heavy.db(), actor, top_percent, first, after.as_deref()).await.map(KeyCustomerConnection).gql()
    }

    /// Drag customers: bought before but not within the churn window (over a year), longest silent first.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn drag_customers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::drag(heavy.db(), actor, first, after.as_deref()).await.map(KeyCustomerConnection).gql()
    }

    /// Last calendar year's `top` customers by won revenue, with what they bought this year
    /// (`orderedThisYear`): visit the ones who did not before competitors do.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn last_year_top_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] top: i32,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::last_year_top(heavy.db(), actor, top, first, after.as_deref()).await.map(KeyCustomerConnection).gql()
    }

    /// Tier A and B customers with at least `minComplaints` complaints in the window (`count`).
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn complaining_key_customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 2)] min_complaints: i32,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::complaining(heavy.db(), actor, min_complaints, first, after.as_deref())
            .await
            .map(KeyCustomerConnection)
            .gql()
    }

    /// Buyers whose won deals in the window cover at most `maxProductLines` products (`count`): offer the rest.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn cross_sell_candidates(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 2)] max_product_lines: i32,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::cross_sell(heavy.db(), actor, max_product_lines, first, after.as_deref())
            .await
            .map(KeyCustomerConnection)
            .gql()
    }

    /// Organizations with fewer than `minContacts` contacts recorded (`count`), fewest first.
    #[graphql(complexity = "super::common::REPORT_COST + super::common::list_cost(first, child_complexity)")]
    async fn organizations_with_few_contacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 3)] min_contacts: i32,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<KeyCustomerConnection> {
        let actor = actor(ctx)?;
        let heavy = crate::schema::common::heavy(ctx, actor).await?;
        svc::few_contacts(heavy.db(), actor, min_contacts, first, after.as_deref())
            .await
            .map(KeyCustomerConnection)
            .gql()
    }
}
