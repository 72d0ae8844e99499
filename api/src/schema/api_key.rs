//! API keys for integration partners (`docs/partners.md`): administrators make, list and
//! revoke them; the secret is shown once, in `createApiKey`'s answer.
use super::common::{actor, connection, db, page_args, parse_id, state};
use super::department::Department;
use super::enums::{PermissionAction, PermissionResource, PermissionScope, Role};
use super::error::ResultExt;
use super::user::User;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{api_key, api_key_grant};
use service::access::api_key as svc;
use service::access::api_key::{KeyGrant, NewApiKey};

/// One grant of an API key. A (resource, action) without one is NONE.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "ApiKeyGrantInput")]
pub struct ApiKeyGrant {
    pub resource: PermissionResource,
    pub action: PermissionAction,
    pub scope: PermissionScope,
    /// Also the unowned customers of the key's department (customer READ only).
    #[graphql(default)]
    pub include_pool: bool,
}

impl From<api_key_grant::Model> for ApiKeyGrant {
    fn from(g: api_key_grant::Model) -> Self {
        ApiKeyGrant {
            resource: g.resource.into(),
            action: g.action.into(),
            scope: g.scope.into(),
            include_pool: g.include_pool,
        }
    }
}

/// An API key, without its secret.
pub struct ApiKey(pub api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The key's visible start (`crm_` and 8 hex digits), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// The role whose grants the key copied when it was made (INTEGRATION for a key made
    /// with explicit grants).
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    /// What the key may do, fixed when it was made.
    async fn grants(&self, ctx: &Context<'_>) -> Result<Vec<ApiKeyGrant>> {
        Ok(svc::grants(db(ctx), self.0.id).await.gql()?.into_iter().map(Into::into).collect())
    }
    async fn department(&self, ctx: &Context<'_>) -> Result<Option<Department>> {
        super::loaders::department(ctx, self.0.department_id).await
    }
    /// The key's account: owner of what the key creates, actor of its audit rows.
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::loaders::user(ctx, self.0.user_id).await
    }
    async fn created_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::loaders::user(ctx, self.0.created_by).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Null: valid until revoked.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    async fn revoked_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.0.revoked_by {
            Some(id) => super::loaders::user(ctx, id).await,
            None => Ok(None),
        }
    }
    /// When the key was last used, to about a minute (each instance records a key's use
    /// when it checks the key, at most once a minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
}

connection!(ApiKeyConnection, ApiKeyEdge, ApiKey, "API keys");

/// A new key: its grants copied from a `role`, or listed in `grants` (one of the two).
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for (at most 100 characters).
    pub name: String,
    pub role: Option<Role>,
    pub grants: Option<Vec<ApiKeyGrant>>,
    /// The key's department (its DEPARTMENT scopes and pool): yours by default, else any
    /// (making keys takes user administration everywhere); a DEPARTMENT grant or the pool
    /// needs your own grant to reach that department.
    pub department_id: Option<ID>,
    /// At most three years ahead; none: valid until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just made, with its secret.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    /// The key itself, shown this once: send it as `Authorization: Bearer <secret>` or
    /// `X-Api-Key: <secret>`. Only its SHA-256 is stored.
    pub secret: String,
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// API keys, newest first (user administrators).
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, default 20, at most 100.")] first: Option<i32>,
        after: Option<String>,
        #[graphql(default)] include_revoked: bool,
    ) -> Result<ApiKeyConnection> {
        let page = svc::list(db(ctx), actor(ctx)?, include_revoked, &page_args(first, after)).await.gql()?;
        Ok(ApiKeyConnection(page.map(ApiKey)))
    }

    async fn api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let id = parse_id("id", &id).gql()?;
        svc::get(db(ctx), actor(ctx)?, id).await.map(ApiKey).gql()
    }
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Makes an API key (user administrators). No grant may reach further than your own;
    /// FORBIDDEN names each one that does.
    async fn create_api_key(&self, ctx: &Context<'_>, input: CreateApiKeyInput) -> Result<CreatedApiKey> {
        let department_id = match &input.department_id {
            Some(id) => Some(parse_id("departmentId", id).gql()?),
            None => None,
        };
        let grants = input.grants.map(|gs| {
            gs.into_iter()
                .map(|g| KeyGrant {
                    resource: g.resource.into(),
                    action: g.action.into(),
                    scope: g.scope.into(),
                    include_pool: g.include_pool,
                })
                .collect()
        });
        let new = NewApiKey {
            name: input.name,
            role: input.role.map(Into::into),
            grants,
            department_id,
            expires_at: input.expires_at,
        };
        let created = svc::create(db(ctx), actor(ctx)?, new).await.gql()?;
        Ok(CreatedApiKey { api_key: ApiKey(created.key), secret: created.secret })
    }

    /// Revokes a key at once on every instance: its requests are refused and its
    /// WebSockets closed (4403). Revoking a revoked key changes nothing.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let id = parse_id("id", &id).gql()?;
        svc::revoke(db(ctx), &state(ctx).events, actor(ctx)?, id).await.map(ApiKey).gql()
    }
}
