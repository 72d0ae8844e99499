//! One search key of a customer or contact (`service::search`, `docs/search.md`).
//!
//! The key columns below are unique together (a record's keys are deduplicated before
//! they are written): SQLite's table is keyed by them; PostgreSQL's has no primary key,
//! only its covering range index. Rows are only inserted and deleted in bulk, never
//! found or saved by key.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "search_term")]
pub struct Model {
    /// The number of the form the key is of (1 text, 2 pinyin, 3 initials, 4 phone digits,
    /// 5 e-mail), then a suffix of the folded form (from a character, syllable or digit
    /// on): `1伟明`, `2weiming`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub term: String,
    /// The record the key is of (`search_doc`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub doc: i32,
    /// The field it comes from (`service::search::Field`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub field: i16,
    /// Where the record's customer sits (`search_zone`): the scope, read from the index.
    pub zone: i32,
    /// Whether the term is the whole form, from its start (a prefix match, not a substring).
    pub head: bool,
    /// Whether the record is a contact.
    pub contact: bool,
    /// The customer's latest interaction (ranking).
    pub contacted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
