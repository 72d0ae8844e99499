//! A record the search keys are of, numbered (`service::search`, `docs/search.md`): the
//! keys carry the 4-byte number instead of the record's and customer's ids.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "search_doc")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub doc: i32,
    /// The customer's id, or the contact's.
    #[sea_orm(unique)]
    pub record_id: Uuid,
    pub customer_id: Uuid,
    /// Whether the record is a contact.
    pub contact: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
