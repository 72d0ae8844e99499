//! Deal and line-item types, inputs, filters, queries and mutations.
use super::common::{
    Date, DateFilter, DateTimeFilter, EnumFilter, IdFilter, Money, MoneyFilter, SortDirection, StringFilter, actor,
    connection, db, parse_id,
};
use super::customer::{Customer, patch};
use super::enums::DealStage;
use super::error::ResultExt;
use super::record::{record_queries, record_trash};
use super::user::User;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result};
use chrono::{DateTime, Utc};
use entity::deal::{self};
use entity::deal_line_item;
use entity::enums::Resource;
use service::catalogue::DEAL;
use service::kernel::types::Id;
use service::records::deal as svc;
use service::records::deal::{DealPatch, LineItemInput, NewDeal, SortField};

/// An opportunity and, once won, a sales record.
#[derive(Clone)]
pub struct Deal(pub deal::Model);

impl Deal {
    /// Whether the caller sees the deal's amounts (the group of `amount` and the line
    /// items' prices in the deal catalogue).
    async fn shows_amounts(&self, ctx: &Context<'_>) -> Result<bool> {
        let Some(group) = DEAL.group("amount") else { return Ok(true) };
        super::loaders::shows_under(ctx, group, Resource::Deal, self.0.customer_id).await
    }
}

#[Object]
impl Deal {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        super::loaders::customer(ctx, self.0.customer_id).await
    }
    /// The salesperson.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.0.owner_id {
            Some(id) => super::loaders::user(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn stage(&self) -> DealStage {
        self.0.stage.into()
    }
    /// The deal's value; null for roles that may not see amounts on this customer.
    async fn amount(&self, ctx: &Context<'_>) -> Result<Option<Money>> {
        Ok(self.shows_amounts(ctx).await?.then(|| Money::new(self.0.amount_minor, &self.0.currency)))
    }
    async fn expected_close_date(&self) -> Option<Date> {
        self.0.expected_close_date.map(Date)
    }
    async fn actual_close_date(&self) -> Option<Date> {
        self.0.actual_close_date.map(Date)
    }
    async fn lost_reason(&self) -> Option<&str> {
        self.0.lost_reason.as_deref()
    }
    /// Products of the deal, in entry order.
    async fn line_items(&self, ctx: &Context<'_>) -> Result<Vec<LineItem>> {
        let items = super::loaders::loader(ctx)
            .load_one(super::loaders::LineItemsKey(self.0.id))
            .await
            .map_err(super::loaders::unshare)?
            .unwrap_or_default();
        let shown = self.shows_amounts(ctx).await?;
        Ok(items.into_iter().map(|i| LineItem { item: i, currency: self.0.currency.clone(), shown }).collect())
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

/// One product line of a deal.
#[derive(Clone)]
pub struct LineItem {
    pub item: deal_line_item::Model,
    /// The deal's currency.
    pub currency: String,
    /// Whether the caller sees amounts on the deal's customer.
    pub shown: bool,
}

#[Object]
impl LineItem {
    async fn id(&self) -> ID {
        ID(self.item.id.to_string())
    }
    async fn product(&self) -> &str {
        &self.item.product
    }
    /// SKU or style number.
    async fn sku(&self) -> Option<&str> {
        self.item.sku.as_deref()
    }
    async fn quantity(&self) -> i64 {
        self.item.quantity
    }
    /// Null for roles that may not see amounts.
    async fn unit_price(&self) -> Option<Money> {
        self.shown.then(|| Money::new(self.item.unit_price_minor, &self.currency))
    }
    /// For margin; null when unknown or hidden.
    async fn unit_cost(&self) -> Option<Money> {
        self.item.unit_cost_minor.filter(|_| self.shown).map(|c| Money::new(c, &self.currency))
    }
    /// quantity x unit price; null when hidden.
    async fn total(&self) -> Option<Money> {
        self.shown.then(|| Money::new(self.item.unit_price_minor.saturating_mul(self.item.quantity), &self.currency))
    }
}

connection!(DealConnection, DealEdge, Deal, "deals");

/// Filter of the deal list.
#[derive(InputObject, Default)]
pub struct DealFilter {
    pub and: Option<Vec<DealFilter>>,
    pub or: Option<Vec<DealFilter>>,
    pub customer_id: Option<IdFilter>,
    pub owner_id: Option<IdFilter>,
    pub title: Option<StringFilter>,
    pub stage: Option<EnumFilter<DealStage>>,
    /// Needs permission to see amounts.
    pub amount: Option<MoneyFilter>,
    pub expected_close_date: Option<DateFilter>,
    pub actual_close_date: Option<DateFilter>,
    pub created_at: Option<DateTimeFilter>,
}

/// Sortable deal fields.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "SortField")]
pub enum DealSortField {
    CreatedAt,
    UpdatedAt,
    Title,
    Stage,
    /// Raw amount in minor units (compare within one currency); needs permission to see amounts.
    Amount,
}

/// One sort key; ties are ordered by id.
#[derive(InputObject)]
pub struct DealOrder {
    pub field: DealSortField,
    #[graphql(default)]
    pub direction: SortDirection,
}

/// A product line; prices are decimal strings in the deal's currency.
#[derive(InputObject)]
#[graphql(name = "LineItemInput")]
pub struct LineItemInputObject {
    pub product: String,
    pub sku: Option<String>,
    pub quantity: i64,
    pub unit_price: String,
    pub unit_cost: Option<String>,
}

impl From<LineItemInputObject> for LineItemInput {
    fn from(i: LineItemInputObject) -> Self {
        LineItemInput {
            product: i.product,
            sku: i.sku,
            quantity: i.quantity,
            unit_price: i.unit_price,
            unit_cost: i.unit_cost,
        }
    }
}

/// A new deal. With line items the amount is their total.
#[derive(InputObject)]
pub struct CreateDealInput {
    pub customer_id: ID,
    pub title: String,
    /// Default LEAD.
    pub stage: Option<DealStage>,
    /// Decimal string such as "80000.00"; required without line items.
    pub amount: Option<String>,
    /// ISO 4217, default CNY.
    pub currency: Option<String>,
    pub expected_close_date: Option<Date>,
    /// Defaults to today when the deal is entered as WON.
    pub actual_close_date: Option<Date>,
    /// Required when LOST.
    pub lost_reason: Option<String>,
    #[graphql(default)]
    pub line_items: Vec<LineItemInputObject>,
}

/// Changes to a deal; `lineItems` replaces all items.
#[derive(InputObject)]
pub struct UpdateDealInput {
    pub id: ID,
    pub version: i32,
    pub title: Option<String>,
    pub stage: Option<DealStage>,
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub expected_close_date: MaybeUndefined<Date>,
    pub actual_close_date: MaybeUndefined<Date>,
    pub lost_reason: MaybeUndefined<String>,
    pub line_items: Option<Vec<LineItemInputObject>>,
}

record_queries!(
    DealQuery,
    deal,
    deals,
    Deal,
    DealConnection,
    DealFilter,
    DealOrder,
    "A deal you may read (NOT_FOUND otherwise).",
    "Deals you may read, newest first by default; `deleted: true` lists the trash."
);

#[derive(Default)]
pub struct DealMutation;

#[Object]
impl DealMutation {
    /// Records a deal with its line items; you are its salesperson.
    async fn create_deal(&self, ctx: &Context<'_>, input: CreateDealInput) -> Result<Deal> {
        let actor = actor(ctx)?;
        let new = NewDeal {
            customer_id: parse_id("customerId", &input.customer_id).map(Id::new).gql()?,
            title: input.title,
            stage: input.stage.map(Into::into),
            amount: input.amount,
            currency: input.currency,
            expected_close_date: input.expected_close_date.map(|d| d.0),
            actual_close_date: input.actual_close_date.map(|d| d.0),
            lost_reason: input.lost_reason,
            line_items: input.line_items.into_iter().map(Into::into).collect(),
        };
        svc::create(db(ctx), actor, new).await.map(Deal).gql()
    }

    /// Changes a deal. CONFLICT when `version` is stale.
    async fn update_deal(&self, ctx: &Context<'_>, input: UpdateDealInput) -> Result<Deal> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let p = DealPatch {
            title: input.title,
            stage: input.stage.map(Into::into),
            amount: input.amount,
            currency: input.currency,
            expected_close_date: patch(input.expected_close_date, |d| d.0),
            actual_close_date: patch(input.actual_close_date, |d| d.0),
            lost_reason: patch(input.lost_reason, |s| s),
            line_items: input.line_items.map(|items| items.into_iter().map(Into::into).collect()),
        };
        svc::update(db(ctx), actor, id, input.version, p).await.map(Deal).gql()
    }
}

record_trash!(
    DealTrash,
    deal,
    Deal,
    delete_deal,
    restore_deal,
    "Moves a deal to the trash.",
    "Restores a deal from the trash."
);
