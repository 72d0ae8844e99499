//! Where customers sit, numbered (`service::search`, `docs/search.md`): one row per
//! (owner, department) pair any customer has had, only ever added to. A search key carries
//! its customer's zone, and a search's scope is the set of zones the caller reaches.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "search_zone")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub zone: i32,
    /// None: the department's public pool.
    pub owner_id: Option<Uuid>,
    pub department_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
