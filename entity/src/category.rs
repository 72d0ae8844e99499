//! The category catalogue (seed 004): main categories, sub-categories (`parent_key`) and
//! each one's field template.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "category")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub name: String,
    /// The main category of a sub-category; NULL for a main category.
    pub parent_key: Option<String>,
    /// Usable only for customers of this department's subtree; NULL: everywhere.
    pub department_id: Option<Uuid>,
    /// Built-in customer fields this category requires (JSON list of field names).
    pub required_fields: Json,
    /// Custom field definitions (JSON list, `api/src/service/category.rs`).
    pub fields: Json,
    pub position: i32,
    /// Inactive: no new customer may enter it; those in it stay.
    pub active: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
