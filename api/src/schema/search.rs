//! One search box over customers and contacts (`docs/search.md`).
use super::common::{actor, connection, db, page_args};
use super::contact::Contact;
use super::customer::Customer;
use super::error::ResultExt;
use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use service::search as svc;

/// What a search hit is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "svc::Kind")]
pub enum SearchKind {
    Customer,
    Contact,
}

/// The field a search matched.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "svc::Field")]
pub enum SearchField {
    /// A person's name (an individual customer).
    Name,
    /// The customer's phone.
    Phone,
    /// The customer's e-mail, or the contact's on a contact hit.
    Email,
    /// An organization's name.
    Organization,
    ContactName,
    ContactMobile,
    ContactOfficePhone,
}

/// How a field matched, best first.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "svc::How")]
pub enum SearchHow {
    /// The whole field (a name, a core organization name, a phone number in any form).
    Exact,
    /// The field's start (a name's first characters, a number as dialled, an e-mail).
    Prefix,
    /// Inside the field (from a character, a word or any digit on).
    Substring,
    /// By the reading of the characters (surnames read as surnames).
    Pinyin,
    /// By the first letters of the readings.
    Initials,
    /// With one typo (a letter missing, extra, or two swapped) in five or more letters.
    Fuzzy,
}

/// One field that matched, and how.
#[derive(SimpleObject)]
pub struct SearchMatch {
    pub field: SearchField,
    pub how: SearchHow,
}

/// A record found.
pub struct SearchHit(svc::Hit);

#[Object]
impl SearchHit {
    /// 0 to 1: 1 exact, 0.9 prefix, 0.8 substring, 0.7 pinyin, 0.6 initials, 0.5 one typo
    /// (a little more within a band for a whole or leading match).
    async fn score(&self) -> f64 {
        self.0.score
    }
    async fn kind(&self) -> SearchKind {
        self.0.kind.into()
    }
    /// The customer; for a contact hit, the contact's customer.
    async fn customer(&self) -> Customer {
        Customer(self.0.customer.clone())
    }
    /// The contact (contact hits only).
    async fn contact(&self) -> Option<Contact> {
        self.0.contact.clone().map(Contact)
    }
    /// The fields that matched, best first.
    async fn matched(&self) -> Vec<SearchMatch> {
        self.0.matched.iter().map(|m| SearchMatch { field: m.field.into(), how: m.how.into() }).collect()
    }
}

connection!(SearchConnection, SearchEdge, SearchHit, "search hits");

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Customers and contacts you may read matching what was typed: any part of a name in
    /// simplified or traditional characters, its pinyin or initials, four or more digits of
    /// a phone number however written, the start of an e-mail address, one typo in five or
    /// more letters. Exact matches first, then prefix, substring, pinyin, initials, typos;
    /// within each, your own customers, then the most recently contacted. One Latin letter
    /// finds nothing. Spent from the same hourly matching budget as `duplicateCandidates`.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(desc = "Customers, contacts, or both (the default).")] kinds: Option<Vec<SearchKind>>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<SearchConnection> {
        let actor = actor(ctx)?;
        super::common::state(ctx).matching.spend(actor, entity::enums::Resource::Customer, 1).gql()?;
        let kinds = kinds.map(|k| k.into_iter().map(Into::into).collect());
        let counted = ctx.look_ahead().field("totalCount").exists();
        let heavy = &super::common::state(ctx).heavy;
        let page =
            svc::search_routed(heavy, db(ctx), actor, &query, kinds, &page_args(first, after), counted).await.gql()?;
        Ok(SearchConnection(page.map(SearchHit)))
    }
}
