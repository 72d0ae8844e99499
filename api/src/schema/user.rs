//! Staff: the User type, login, `me`, and user administration.
use super::common::{ClientAddress, actor, connection, db, page_args, parse_id, state};
use super::department::Department;
use super::enums::Role;
use super::error::ResultExt;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::user;
use service::access::user::{NewUser, UserFilter, UserPatch};
use service::access::{Actor, login as session, user as svc};

/// A staff member. The password hash is never exposed.
#[derive(Clone)]
pub struct User(pub user::Model);

impl User {
    /// Whether the caller may see this staff member's account fields (`Actor::sees_account`).
    /// Without an actor the request is `login` or `refreshToken`, whose only user is the caller.
    fn account_visible(&self, ctx: &Context<'_>) -> bool {
        ctx.data_opt::<Actor>().is_none_or(|a| a.sees_account(&self.0))
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Login e-mail, lower-cased; null unless it is you or you may read users.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        self.account_visible(ctx).then_some(self.0.email.as_str())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Whether this is an API key's account (`apiKeys`) rather than a person's.
    async fn service_account(&self) -> bool {
        self.0.service_account
    }
    /// Null unless it is you or you may read users.
    async fn role(&self, ctx: &Context<'_>) -> Option<Role> {
        self.account_visible(ctx).then_some(self.0.role.into())
    }
    async fn department_id(&self) -> ID {
        ID(self.0.department_id.to_string())
    }
    async fn department(&self, ctx: &Context<'_>) -> Result<Option<Department>> {
        super::loaders::department(ctx, self.0.department_id).await
    }
    /// Deactivated users cannot log in; their records stay. Null unless it is you or you
    /// may read users.
    async fn active(&self, ctx: &Context<'_>) -> Option<bool> {
        self.account_visible(ctx).then_some(self.0.active)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

connection!(UserConnection, UserEdge, User, "users");

/// A session: a short-lived access token, the refresh token that renews it, and its user.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>`.
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    /// Exchange it with `refreshToken` for a new pair before `refreshExpiresAt`. Good for
    /// one exchange: using it twice ends the session on every device that shares it.
    /// Keep it out of logs and URLs.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub user: User,
}

impl From<session::Issued> for AuthPayload {
    fn from(i: session::Issued) -> Self {
        AuthPayload {
            access_token: i.access_token,
            expires_at: i.expires_at,
            refresh_token: i.refresh_token,
            refresh_expires_at: i.refresh_expires_at,
            user: User(i.user),
        }
    }
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
    /// Exchanges e-mail and password for a session. Needs no token. Failed attempts are
    /// limited per account and per client address: RATE_LIMITED with `retryAfter` seconds.
    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> Result<AuthPayload> {
        let state = state(ctx);
        let address = ctx.data_opt::<ClientAddress>().map(|a| a.0);
        session::login(&state.db, &state.jwt, &state.login_limits, &email, &password, address)
            .await
            .map(Into::into)
            .gql()
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. Needs no
    /// access token. UNAUTHENTICATED when the refresh token is unknown, expired, revoked or
    /// already used.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthPayload> {
        let state = state(ctx);
        session::refresh(&state.db, &state.jwt, &refresh_token).await.map(Into::into).gql()
    }

    /// Ends the session a refresh token belongs to (log out this device). Needs no access
    /// token; true when a session was ended. Access tokens already issued run out on their own.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        session::logout(db(ctx), &refresh_token).await.gql()
    }

    /// Ends every session of a user (yourself by default; admins may name anyone): access
    /// and refresh tokens issued before stop working and open WebSockets close, on every
    /// instance.
    async fn logout_everywhere(&self, ctx: &Context<'_>, user_id: Option<ID>) -> Result<User> {
        let actor = actor(ctx)?;
        let id = user_id.map(|u| parse_id("userId", &u)).transpose().gql()?;
        session::logout_everywhere(db(ctx), &state(ctx).events, actor, id).await.map(User).gql()
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

    /// Changes a staff account (admins). CONFLICT when `version` is stale. A new password
    /// ends the user's sessions.
    async fn update_user(&self, ctx: &Context<'_>, input: UpdateUserInput) -> Result<User> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &input.id).gql()?;
        let department_id = input.department_id.map(|d| parse_id("departmentId", &d)).transpose().gql()?;
        let patch =
            UserPatch { name: input.name, role: input.role.map(Into::into), department_id, password: input.password };
        svc::update(db(ctx), &state(ctx).events, actor, id, input.version, patch).await.map(User).gql()
    }

    /// Deactivates a staff account and ends its sessions. Their customers go to `successorId`, or to their
    /// department's public pool: staff leave, data stays.
    async fn deactivate_user(&self, ctx: &Context<'_>, id: ID, successor_id: Option<ID>) -> Result<User> {
        let actor = actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        let successor = successor_id.map(|s| parse_id("successorId", &s)).transpose().gql()?;
        svc::deactivate(db(ctx), &state(ctx).events, actor, id, successor).await.map(User).gql()
    }
}
