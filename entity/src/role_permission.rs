//! Permissions as data: per role, resource and action, how far the grant reaches.
use crate::enums::{Action, Resource, Role, Scope};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "role_permission")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub role: Role,
    #[sea_orm(primary_key, auto_increment = false)]
    pub resource: Resource,
    #[sea_orm(primary_key, auto_increment = false)]
    pub action: Action,
    pub scope: Scope,
    /// Also grants the unowned customers (public pool) of the user's own department.
    pub include_pool: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
