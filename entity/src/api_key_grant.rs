//! What an API key may do: (resource, action) -> scope, copied from its role or given
//! explicitly when the key was made, never wider than its creator's grants then.
use crate::enums::{Action, Resource, Scope};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "api_key_grant")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub api_key_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub resource: Resource,
    #[sea_orm(primary_key, auto_increment = false)]
    pub action: Action,
    pub scope: Scope,
    /// Also the unowned customers (public pool) of the key's department.
    pub include_pool: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
