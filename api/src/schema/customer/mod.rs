//! Customer type, inputs, filters, queries and mutations.
mod bulk;
mod input;

use super::classification::ClassificationChange;
use super::common::{
    Date, DateFilter, DateTimeFilter, EnumFilter, IdFilter, IntFilter, Money, MoneyFilter, SortDirection, StringFilter,
    actor, connection, db, list_query, parse_id,
};
use super::compiled::{self, Compiled};
use super::contact::{Contact, ContactConnection};
use super::deal::{Deal, DealConnection};
use super::department::Department;
use super::enums::{
    CustomerKind, CustomerSource, Gender, Importance, Level, LifecycleStage, RelationshipType, Tier,
    TurnoverMarginClass,
};
use super::error::ResultExt;
use super::feedback::{Feedback, FeedbackConnection};
use super::interaction::{Interaction, InteractionConnection};
use super::loaders::{nested_page, shows_field};
use super::user::User;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject};
pub use bulk::*;
use chrono::{DateTime, Utc};
use entity::customer::{self};
pub use input::*;
use service::compiled::{Answer, Kind};
use service::customer as svc;
use service::customer::{CustomerPatch, NewCustomer, SortField};
use service::error::{AppError, AppResult};

/// A customer archive entry.
#[derive(Clone)]
pub struct Customer(pub customer::Model);

/// The soft profile of a customer (seed 003): free text a front end shows as notes or tags.
#[derive(SimpleObject, InputObject, Clone, Default, serde::Serialize, serde::Deserialize)]
#[graphql(input_name = "SoftProfileInput")]
#[serde(rename_all = "camelCase")]
pub struct SoftProfile {
    pub occupation: Option<String>,
    pub family: Option<String>,
    pub personality: Option<String>,
    pub habits: Option<String>,
    pub hobbies: Option<String>,
    pub preferences: Option<String>,
    /// How the customer reacts to promotions.
    pub promotion_receptiveness: Option<String>,
    pub values: Option<String>,
    /// Free tags.
    pub tags: Option<Vec<String>>,
}

/// How complete a customer's record is (`docs/categories.md`).
#[derive(SimpleObject)]
pub struct Completeness {
    /// Filled required fields, in percent (100 when the category requires nothing).
    pub score: i32,
    /// Required fields without a value: built-in names (`address`) and
    /// `customFields.<key>`.
    pub missing: Vec<String>,
    /// Custom fields holding a value their definition no longer accepts.
    pub invalid: Vec<String>,
}

#[Object]
impl Customer {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> CustomerKind {
        self.0.kind.into()
    }
    /// The customer this one was merged into (it is then in the trash for good); null too
    /// when you may not read that customer.
    async fn merged_into(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        let Some(id) = self.0.merged_into else { return Ok(None) };
        Ok(super::loaders::customer(ctx, id).await?.map(|c| ID(c.0.id.to_string())))
    }
    /// The key of its category (`categories`).
    async fn category(&self) -> &str {
        &self.0.category
    }
    /// How complete the record is against its category's template: which required
    /// fields are empty and which custom values no longer fit (presence only, never
    /// values).
    async fn completeness(&self, ctx: &Context<'_>) -> Result<Completeness> {
        let catalogue = super::loaders::catalogue(ctx).await?;
        let c = service::category::completeness(&catalogue.template(&self.0.category), &self.0);
        Ok(Completeness { score: c.score, missing: c.missing, invalid: c.invalid })
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn gender(&self) -> Option<Gender> {
        self.0.gender.map(Into::into)
    }
    /// Personal details: null for roles that may not see them on this customer.
    async fn birthday(&self, ctx: &Context<'_>) -> Option<Date> {
        self.0.birthday.filter(|_| shows_field(ctx, "birthday", &self.0)).map(Date)
    }
    /// As entered. Contact details: null for roles that may not see them on this customer.
    async fn phone(&self, ctx: &Context<'_>) -> Option<&str> {
        self.0.phone.as_deref().filter(|_| shows_field(ctx, "phone", &self.0))
    }
    /// E.164 form, the duplicate key. Contact details.
    async fn phone_e164(&self, ctx: &Context<'_>) -> Option<&str> {
        self.0.phone_norm.as_deref().filter(|_| shows_field(ctx, "phoneE164", &self.0))
    }
    /// Contact details.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.0.email.as_deref().filter(|_| shows_field(ctx, "email", &self.0))
    }
    /// Contact details; sealed at rest.
    async fn address(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if !shows_field(ctx, "address", &self.0) {
            return Ok(None);
        }
        svc::address(&super::common::state(ctx).privacy.keys, &self.0).gql()
    }
    async fn region(&self) -> Option<&str> {
        self.0.region.as_deref()
    }
    async fn industry(&self) -> Option<&str> {
        self.0.industry.as_deref()
    }
    async fn source(&self) -> Option<CustomerSource> {
        self.0.source.map(Into::into)
    }
    /// Importance set by a person.
    async fn importance(&self) -> Option<Importance> {
        self.0.importance.map(Into::into)
    }
    async fn credit_rating(&self) -> Option<&str> {
        self.0.credit_rating.as_deref()
    }
    async fn cooperation_start_date(&self) -> Option<Date> {
        self.0.cooperation_start_date.map(Date)
    }
    /// Personal details: null for roles that may not see them on this customer.
    async fn soft_profile(&self, ctx: &Context<'_>) -> Option<SoftProfile> {
        if !shows_field(ctx, "softProfile", &self.0) {
            return None;
        }
        self.0.soft_profile.clone().and_then(|j| serde_json::from_value(j).ok())
    }
    /// Category-specific fields as a JSON object.
    async fn custom_fields(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.custom_fields.clone().map(async_graphql::Json)
    }
    async fn lifecycle_stage(&self) -> LifecycleStage {
        self.0.lifecycle_stage.into()
    }
    /// Computed value tier.
    async fn tier(&self) -> Tier {
        self.0.tier.into()
    }
    /// The tier computed from won deals, before any override.
    async fn computed_tier(&self) -> Option<Tier> {
        self.0.computed_tier.map(Into::into)
    }
    /// A manual tier that wins over the computed one, with its reason.
    async fn tier_override(&self) -> Option<TierOverride> {
        self.0
            .tier_override
            .map(|t| TierOverride { tier: t.into(), reason: self.0.tier_override_reason.clone().unwrap_or_default() })
    }
    /// Recency, frequency and monetary scores (1 = lowest) among customers who bought in the window.
    async fn rfm(&self) -> Option<Rfm> {
        match (self.0.rfm_recency, self.0.rfm_frequency, self.0.rfm_monetary, self.0.rfm_score) {
            (Some(recency), Some(frequency), Some(monetary), Some(score)) => {
                Some(Rfm { recency, frequency, monetary, score })
            }
            _ => None,
        }
    }
    /// High or low purchase frequency in the window.
    async fn frequency_class(&self) -> Option<Level> {
        self.0.frequency_class.map(Into::into)
    }
    /// High or low value in the window.
    async fn value_class(&self) -> Option<Level> {
        self.0.value_class.map(Into::into)
    }
    /// Loyalty x profit contribution.
    async fn relationship_type(&self) -> Option<RelationshipType> {
        self.0.relationship_type.map(Into::into)
    }
    /// Turnover x margin class.
    async fn turnover_margin_class(&self) -> Option<TurnoverMarginClass> {
        self.0.turnover_margin_class.map(Into::into)
    }
    async fn first_purchase_on(&self) -> Option<Date> {
        self.0.first_purchase_on.map(Date)
    }
    async fn last_purchase_on(&self) -> Option<Date> {
        self.0.last_purchase_on.map(Date)
    }
    /// Won deals in the trailing window.
    async fn won_deal_count(&self) -> i32 {
        self.0.won_count
    }
    /// Won revenue in the trailing window, in the base currency; null for roles that may
    /// not see amounts on this customer.
    async fn revenue(&self, ctx: &Context<'_>) -> Result<Option<Money>> {
        let shown = shows_field(ctx, "revenue", &self.0).then_some(self.0.revenue_minor);
        super::common::base_money(ctx, shown).await
    }
    /// Margin of that revenue (lines with a known cost); null for roles that may not see
    /// amounts on this customer.
    async fn margin(&self, ctx: &Context<'_>) -> Result<Option<Money>> {
        let shown = shows_field(ctx, "margin", &self.0).then_some(self.0.margin_minor);
        super::common::base_money(ctx, shown).await
    }
    /// When the grades last changed.
    async fn classified_at(&self) -> Option<DateTime<Utc>> {
        self.0.classified_at
    }
    /// Changes of tier and lifecycle stage, newest first.
    async fn classification_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<ClassificationChange>> {
        let key = super::loaders::HistoryKey { customer: self.0.id, first: first.clamp(1, 100) as u64 };
        let rows = super::loaders::loader(ctx).load_one(key).await.map_err(super::loaders::unshare)?;
        Ok(rows.unwrap_or_default().into_iter().map(Into::into).collect())
    }
    /// Id of the owner; null while in the public pool.
    async fn owner_id(&self) -> Option<ID> {
        self.0.owner_id.map(|i| ID(i.to_string()))
    }
    /// The owner; null while in the public pool.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.0.owner_id {
            Some(id) => super::loaders::user(ctx, id).await,
            None => Ok(None),
        }
    }
    async fn department_id(&self) -> ID {
        ID(self.0.department_id.to_string())
    }
    async fn department(&self, ctx: &Context<'_>) -> Result<Option<Department>> {
        super::loaders::department(ctx, self.0.department_id).await
    }
    /// Whether the customer is in its department's public pool.
    async fn in_public_pool(&self) -> bool {
        self.0.owner_id.is_none()
    }
    /// When the current owner got the customer (with the last contact, it decides when an
    /// untended customer returns to the pool: the care policy's `poolReturn`).
    async fn owned_since(&self) -> Option<DateTime<Utc>> {
        self.0.owned_since
    }
    /// Contacts of this customer you may read, newest first.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<ContactConnection> {
        nested_page::<entity::contact::Entity>(ctx, &self.0, first, after)
            .await
            .map(|p| ContactConnection(p.map(Contact)))
            .gql()
    }
    /// Deals of this customer you may read, newest first.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn deals(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<DealConnection> {
        nested_page::<entity::deal::Entity>(ctx, &self.0, first, after).await.map(|p| DealConnection(p.map(Deal))).gql()
    }
    /// Feedback about this customer you may read, newest first.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn feedback(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<FeedbackConnection> {
        nested_page::<entity::feedback::Entity>(ctx, &self.0, first, after)
            .await
            .map(|p| FeedbackConnection(p.map(Feedback)))
            .gql()
    }
    /// Logged interactions with this customer you may read, newest entry first.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn interactions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<InteractionConnection> {
        nested_page::<entity::interaction::Entity>(ctx, &self.0, first, after)
            .await
            .map(|p| InteractionConnection(p.map(Interaction)))
            .gql()
    }
    /// Marketing consent per channel.
    async fn consents(&self, ctx: &Context<'_>) -> Result<Vec<super::personal::Consent>> {
        let rows = super::loaders::loader(ctx)
            .load_one(super::loaders::ConsentsKey(self.0.id))
            .await
            .map_err(super::loaders::unshare)?;
        Ok(rows.unwrap_or_default().into_iter().map(Into::into).collect())
    }
    /// Set while the person's data must not be erased.
    async fn legal_hold(&self) -> Option<super::personal::LegalHold> {
        self.0
            .legal_hold
            .then(|| super::personal::LegalHold { reason: self.0.legal_hold_reason.clone().unwrap_or_default() })
    }
    /// When the personal fields were erased (the record stays, anonymised).
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.0.erased_at
    }
    /// Increases with every change; send it back with updates.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Set while the customer is in the trash.
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

/// A manual tier and why it was set.
#[derive(SimpleObject, Clone)]
pub struct TierOverride {
    pub tier: Tier,
    pub reason: String,
}

/// RFM scores, 1 (lowest) to the policy's bucket count.
#[derive(SimpleObject, Clone)]
pub struct Rfm {
    /// Higher is more recent.
    pub recency: i32,
    pub frequency: i32,
    pub monetary: i32,
    /// recency x 100 + frequency x 10 + monetary, e.g. 555.
    pub score: i32,
}

connection!(CustomerConnection, CustomerEdge, Customer, "customers");

#[derive(Default)]
pub struct CustomerQuery;

#[Object]
impl CustomerQuery {
    /// A customer you may read. NOT_FOUND when it does not exist, is in the trash, or is
    /// outside your scope: the three are indistinguishable on purpose.
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Compiled<Customer>>> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        if let Some(compiler) = compiled::compiler(ctx)
            && let Some(picks) = compiled::record(ctx, Kind::Customer)
        {
            match compiler.customer(actor, id, &picks).await.gql()? {
                Answer::Json(json) => return Ok(Some(Compiled::Raw(json))),
                Answer::Nothing => return Err(AppError::NotFound("customer")).gql(),
                Answer::Ordinary => {}
            }
        }
        svc::get(db(ctx), actor, id).await.map(|c| Some(Compiled::Plain(Customer(c)))).gql()
    }

    /// Customers you may read. `deleted: true` lists the trash instead.
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CustomerFilter>,
        order_by: Option<Vec<CustomerOrder>>,
        #[graphql(default)] deleted: bool,
    ) -> Result<Compiled<CustomerConnection>> {
        let actor = actor(ctx)?;
        let order = order_by.unwrap_or_default().into_iter().map(CustomerOrder::key).collect::<AppResult<_>>().gql()?;
        let query = list_query(first, after, filter, order, deleted).gql()?;
        if let Some(compiler) = compiled::compiler(ctx)
            && let Some(picks) = compiled::connection(ctx, Kind::Customer)
            && let Answer::Json(json) = compiler.customers(db(ctx), actor, &query, &picks).await.gql()?
        {
            return Ok(Compiled::Raw(json));
        }
        let page = svc::list(db(ctx), actor, &query).await.gql()?;
        Ok(Compiled::Plain(CustomerConnection(page.map(Customer))))
    }
}

#[derive(Default)]
pub struct CustomerMutation;

#[Object]
impl CustomerMutation {
    /// Enters a customer; you become its owner. DUPLICATE when its phone, e-mail or
    /// organization name is taken by a live customer.
    async fn create_customer(&self, ctx: &Context<'_>, input: CreateCustomerInput) -> Result<Customer> {
        let actor = actor(ctx)?;
        let state = ctx.data_unchecked::<crate::state::AppState>();
        svc::create(&state.db, &state.events, &state.privacy.keys, actor, input.into()).await.map(Customer).gql()
    }

    /// Enters up to 100 customers, each as `createCustomer` would, each in its own
    /// transaction: one refused record (DUPLICATE, INVALID) does not stop the others.
    /// Results are in input order.
    #[graphql(complexity = "super::common::bulk_cost(inputs.len(), child_complexity)")]
    async fn create_customers(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<CreateCustomerInput>,
    ) -> Result<Vec<BulkCustomerResult>> {
        bulk(ctx, service::customer::bulk::Mode::Create, inputs).await
    }

    /// Creates or updates up to 100 customers by their natural keys (phone, e-mail, an
    /// organization's name), each in its own transaction: no match creates; one match you
    /// may update takes the record's given fields (UPDATED, or UNCHANGED); a match you may
    /// not change is DUPLICATE (staff learn its department), as are several matches.
    #[graphql(complexity = "super::common::bulk_cost(inputs.len(), child_complexity)")]
    async fn upsert_customers(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<CreateCustomerInput>,
    ) -> Result<Vec<BulkCustomerResult>> {
        bulk(ctx, service::customer::bulk::Mode::Upsert, inputs).await
    }

    /// Changes a customer. CONFLICT when `version` is stale.
    async fn update_customer(&self, ctx: &Context<'_>, input: UpdateCustomerInput) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let p = CustomerPatch {
            category: input.category,
            name: input.name,
            gender: patch(input.gender, Into::into),
            birthday: patch(input.birthday, |d| d.0),
            phone: patch(input.phone, |s| s),
            email: patch(input.email, |s| s),
            address: patch(input.address, |s| s),
            region: patch(input.region, |s| s),
            industry: patch(input.industry, |s| s),
            source: patch(input.source, Into::into),
            importance: patch(input.importance, Into::into),
            credit_rating: patch(input.credit_rating, |s| s),
            cooperation_start_date: patch(input.cooperation_start_date, |d| d.0),
            soft_profile: patch(input.soft_profile, profile_json),
            custom_fields: patch(input.custom_fields, |j| j.0),
            lifecycle_stage: input.lifecycle_stage.map(Into::into),
        };
        let vault = &super::common::state(ctx).privacy.keys;
        svc::update(db(ctx), vault, actor, id, input.version, p).await.map(Customer).gql()
    }

    /// Moves a customer to the trash; `restoreCustomer` brings it back with everything attached.
    async fn delete_customer(&self, ctx: &Context<'_>, id: ID, version: Option<i32>) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::delete(db(ctx), actor, id, version).await.map(Customer).gql()
    }

    /// Restores a customer from the trash. DUPLICATE when a live customer took its keys meanwhile.
    async fn restore_customer(&self, ctx: &Context<'_>, id: ID) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::restore(db(ctx), actor, id).await.map(Customer).gql()
    }

    /// Takes a customer from your department's public pool (sales staff); CONFLICT when
    /// it is no longer there.
    async fn claim_customer(&self, ctx: &Context<'_>, id: ID) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::claim(db(ctx), actor, id).await.map(Customer).gql()
    }

    /// Gives a customer to another owner (moving it to their department), or to the
    /// department's public pool when `ownerId` is null. Needs the assign permission.
    async fn assign_customer(&self, ctx: &Context<'_>, id: ID, owner_id: Option<ID>) -> Result<Customer> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        let owner = owner_id.map(|o| parse_id("ownerId", &o)).transpose().gql()?;
        svc::assign(db(ctx), actor, id, owner).await.map(Customer).gql()
    }
}
