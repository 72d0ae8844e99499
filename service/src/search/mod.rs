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
