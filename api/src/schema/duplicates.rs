//! Duplicate candidates before entry (`docs/duplicates.md`).
use super::common::{actor, db, parse_id};
use super::customer::Customer;
use super::enums::CustomerKind;
use super::error::ResultExt;
use crate::service::duplicates::{self as svc, Probe};
use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};

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

#[derive(Default)]
pub struct DuplicateQuery;

#[Object]
impl DuplicateQuery {
    /// Records that may be the customer being entered, best first (at most 10): for a
    /// front end to ask while a person types, before saving. Candidates outside your
    /// scope tell only that they exist and which department owns them.
    async fn duplicate_candidates(
        &self,
        ctx: &Context<'_>,
        input: DuplicateCheckInput,
    ) -> Result<Vec<DuplicateCandidate>> {
        let actor = actor(ctx)?;
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
