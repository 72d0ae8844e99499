//! Staff: the User type, login, `me`, and user administration.
use super::common::{actor, connection, db, page_args, parse_id};
use super::department::Department;
use super::enums::Role;
use super::error::ResultExt;
use crate::service::user::{self as svc, NewUser, UserFilter, UserPatch};
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;

/// A staff member. The password hash is never exposed.
#[derive(Clone)]
pub struct User(pub user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Login e-mail, lower-cased.
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    async fn department_id(&self) -> ID {
        ID(self.0.department_id.to_string())
    }
    async fn department(&self, ctx: &Context<'_>) -> Result<Option<Department>> {
        super::loaders::department(ctx, self.0.department_id).await
    }
    /// Deactivated users cannot log in; their records stay.
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(UserConnection, UserEdge, User, "users");

/// A signed access token and its user.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

/// A new staff member.
#[derive(InputObject)]
pub struct CreateUserInput {
    pub email: String,
    pub name: String,
    /// At least 8 characters.
    pub password: String,
    pub role: Role,
    pub department_id: ID,
}

/// Changes to a staff member (admin).
#[derive(InputObject)]
pub struct UpdateUserInput {
    pub id: ID,
    pub version: i32,
    pub name: Option<String>,
    pub role: Option<Role>,
    pub department_id: Option<ID>,
    pub password: Option<String>,
}

/// Filter of the user list.
#[derive(InputObject, Default)]
pub struct UserFilterInput {
    pub department_id: Option<ID>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User(actor(ctx)?.user.clone()))
    }

    /// A user (admins; anyone for themselves).
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::get(db(ctx), actor, id).await.map(|u| Some(User(u))).gql()
    }

    /// Staff, by name (admins).
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<UserFilterInput>,
    ) -> Result<UserConnection> {
        let actor = actor(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = UserFilter {
            department_id: f.department_id.map(|d| parse_id("filter.departmentId", &d)).transpose().gql()?,
            role: f.role.map(Into::into),
            active: f.active,
        };
        let page = svc::list(db(ctx), actor, filter, &page_args(first, after)).await.gql()?;
        Ok(UserConnection(page.map(User)))
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Exchanges e-mail and password for an access token. The only operation that needs no token.
    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> Result<AuthPayload> {
        let state = ctx.data_unchecked::<crate::state::AppState>();
        let (token, expires, user) = svc::login(&state.db, &state.jwt, &email, &password).await.gql()?;
        Ok(AuthPayload { access_token: token, expires_at: expires, user: User(user) })
    }

    /// Creates a staff account (admins).
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User> {
        let actor = actor(ctx)?;
        let department_id = parse_id("departmentId", &input.department_id).gql()?;
        let new = NewUser {
            email: input.email,
            name: input.name,
            password: input.password,
            role: input.role.into(),
            department_id,
        };
        svc::create(db(ctx), actor, new).await.map(User).gql()
    }

    /// Changes a staff account (admins). CONFLICT when `version` is stale.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<User> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let department_id = input.department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        let patch =
            UserPatch { name: input.name, role: input.role.map(Into::into), department_id, password: input.password };
        svc::update(db(ctx), actor, id, input.version, patch).await.map(User).gql()
    }

    /// Deactivates a staff account. Their customers go to `successorId`, or to their
    /// department's public pool: staff leave, data stays.
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID, successor_id: Option<ID>) -> Result<User> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        let successor = successor_id.map(|s| parse_id("successorId", &s)).transpose().gql()?;
        svc::deactivate(db(ctx), actor, id, successor).await.map(User).gql()
    }
}
