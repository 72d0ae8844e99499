//! Role permissions: read and change the grants of a role (admins).
use super::common::{actor, db, state};
use super::enums::{PermissionAction, PermissionResource, PermissionScope, Role};
use super::error::ResultExt;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use entity::role_permission;
use service::access::permission as svc;

/// One grant of a role. A (resource, action) without a row is NONE.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "RolePermissionInput")]
pub struct RolePermission {
    pub role: Role,
    pub resource: PermissionResource,
    pub action: PermissionAction,
    pub scope: PermissionScope,
    /// Also the unowned customers of the holder's own department (customer READ only).
    #[graphql(default)]
    pub include_pool: bool,
}

impl From<role_permission::Model> for RolePermission {
    fn from(m: role_permission::Model) -> Self {
        RolePermission {
            role: m.role.into(),
            resource: m.resource.into(),
            action: m.action.into(),
            scope: m.scope.into(),
            include_pool: m.include_pool,
        }
    }
}

#[derive(Default)]
pub struct PermissionQuery;

#[Object]
impl PermissionQuery {
    /// The grants of a role (admins: settings read, scope ALL).
    async fn role_permissions(&self, ctx: &Context<'_>, role: Role) -> Result<Vec<RolePermission>> {
        let rows = svc::of_role(db(ctx), actor(ctx)?, role.into()).await.gql()?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct PermissionMutation;

#[Object]
impl PermissionMutation {
    /// Sets one grant of a role (admins: settings update, scope ALL). Takes effect at once
    /// on every instance; open WebSockets of the role close with 4403. Field groups take
    /// READ grants only; the pool goes with customer READ only; the admin role keeps user
    /// and settings administration (CONFLICT).
    async fn set_role_permission(&self, ctx: &Context<'_>, input: RolePermission) -> Result<RolePermission> {
        let grant = role_permission::Model {
            role: input.role.into(),
            resource: input.resource.into(),
            action: input.action.into(),
            scope: input.scope.into(),
            include_pool: input.include_pool,
        };
        svc::set(db(ctx), &state(ctx).events, actor(ctx)?, grant).await.map(Into::into).gql()
    }
}
