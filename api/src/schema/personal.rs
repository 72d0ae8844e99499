//! A person's data: consent, export, erasure, legal hold (`docs/privacy.md`).
use super::common::{actor, db, parse_id, state};
use super::customer::Customer;
use super::enums::ConsentChannel;
use super::error::ResultExt;
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::consent;
use service::personal as svc;

/// A customer's marketing consent on one channel.
#[derive(SimpleObject, Clone)]
pub struct Consent {
    pub channel: ConsentChannel,
    /// Given and not withdrawn: promotional reminders may be created.
    pub given: bool,
    pub given_at: Option<DateTime<Utc>>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Where it was recorded (a form, a checkbox, a call).
    pub source: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<consent::Model> for Consent {
    fn from(c: consent::Model) -> Self {
        Consent {
            channel: c.channel.into(),
            given: c.given_at.is_some() && c.withdrawn_at.is_none(),
            given_at: c.given_at,
            withdrawn_at: c.withdrawn_at,
            source: c.source,
            updated_at: c.updated_at,
        }
    }
}

/// A legal hold on a person's data.
#[derive(SimpleObject, Clone)]
pub struct LegalHold {
    pub reason: String,
}

#[derive(Default)]
pub struct PersonalMutation;

#[Object]
impl PersonalMutation {
    /// Records that the customer gave (`given: true`) or withdrew marketing consent on a
    /// channel. Needs the right to update the customer. Without consent on any channel,
    /// no promotional reminder is created for the customer.
    async fn set_consent(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        channel: ConsentChannel,
        given: bool,
        source: Option<String>,
    ) -> Result<Consent> {
        let id = parse_id("customerId", &customer_id).gql()?;
        svc::set_consent(db(ctx), actor(ctx)?, id, channel.into(), given, source).await.map(Into::into).gql()
    }

    /// Everything stored about the person, as one JSON document (also
    /// `GET /personal-data/<customerId>.json`). Admins, and managers within their
    /// subtree; audited. Priced like a report: a request holds at most 25.
    #[graphql(complexity = "super::common::REPORT_COST")]
    async fn export_personal_data(&self, ctx: &Context<'_>, customer_id: ID) -> Result<Json<serde_json::Value>> {
        let id = parse_id("customerId", &customer_id).gql()?;
        svc::export(db(ctx), &state(ctx).privacy.keys, actor(ctx)?, id).await.map(Json).gql()
    }

    /// Irreversibly anonymises the person's personal fields everywhere (customer,
    /// contacts, interaction and feedback texts, reminder texts, audit values), keeping
    /// deals, amounts and grades. Admins, and managers within their subtree; audited with
    /// the reason. CONFLICT while a legal hold is set.
    async fn erase_personal_data(&self, ctx: &Context<'_>, customer_id: ID, reason: String) -> Result<Customer> {
        let id = parse_id("customerId", &customer_id).gql()?;
        svc::erase(db(ctx), actor(ctx)?, id, &reason).await.map(Customer).gql()
    }

    /// Sets (`hold: true`, with a reason) or lifts a legal hold: while set, the person's
    /// data cannot be erased. Admins.
    async fn set_legal_hold(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        hold: bool,
        reason: Option<String>,
    ) -> Result<Customer> {
        let id = parse_id("customerId", &customer_id).gql()?;
        svc::set_legal_hold(db(ctx), actor(ctx)?, id, hold, reason).await.map(Customer).gql()
    }
}
