//! Search as Chinese sales staff type (`docs/search.md`): one box over customers and
//! contacts that finds a record by any part of its name in simplified or traditional
//! characters, by pinyin with or without tones and by initials, by any four digits of a
//! phone number however written, by the start of an e-mail address, and past one typo.
//!
//! - [`fold`]: text as search compares it, and readings (surnames read as surnames).
//! - [`keys`]: the keys a record is found by, each written as its suffixes.
//! - [`index`]: keeping the keys in every write's transaction; `crm search reindex`.
//! - `reading`: what was typed, read every way it may be meant.
//! - [`query`]: matching, scope and ranking.
pub mod fold;
pub mod index;
pub mod keys;
pub mod query;
mod reading;

pub use keys::Field;
pub use query::{Hit, How, Kind, Matched, search};

use crate::access::Actor;
use crate::access::heavy::HeavyReads;
use crate::error::{AppError, AppResult};
use crate::kernel::pagination::{Page, PageArgs};
use sea_orm::DatabaseConnection;

/// [`search`] where the caller's reads go (`docs/replica.md`): on the read replica while it
/// is caught up and the caller wrote nothing on this instance within its lag bound
/// ([`HeavyReads::search_store`]), else on `primary`; a search the replica fails (stopped
/// since its last measurement, its pool busy) runs again on `primary`.
///
/// # Errors
/// As [`search`].
pub async fn search_routed(
    heavy: &HeavyReads,
    primary: &DatabaseConnection,
    actor: &Actor,
    query: &str,
    kinds: Option<Vec<Kind>>,
    page: &PageArgs,
    wants_total: bool,
) -> AppResult<Page<Hit>> {
    let store = heavy.search_store(actor.id(), primary);
    let found = search(store, actor, query, kinds.clone(), page, wants_total).await;
    match &found {
        Err(e @ (AppError::Internal(_) | AppError::RateLimited { .. } | AppError::Timeout(_)))
            if !std::ptr::eq(store, primary) =>
        {
            tracing::warn!(error = %e, "search on the read replica failed; searching the primary");
            search(primary, actor, query, kinds, page, wants_total).await
        }
        _ => found,
    }
}
