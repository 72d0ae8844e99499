//! Staff accounts: creation, changes, deactivation (login is in `session.rs`).
use crate::access::live::Events;
use crate::access::{Actor, login as session, password};
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::pagination::{Page, PageArgs, SortKey, SortValue, paginate};
use crate::kernel::store::{check_version, save, write};
use crate::kernel::{new_id, normalize, now, required_text};
use entity::enums::{Action, Resource, Role};
use entity::{customer, department, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use uuid::Uuid;

/// What a new user needs.
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: Role,
    pub department_id: Uuid,
}

/// Creates a user (admin).
///
/// # Errors
/// FORBIDDEN, VALIDATION (every bad field), DUPLICATE (e-mail taken).
pub async fn create(db: &DatabaseConnection, actor: &Actor, input: NewUser) -> AppResult<user::Model> {
    actor.require_all(Resource::User, Action::Create)?;
    let hash = validate_and_hash(db, &input).await?;
    write(db, async |txn| insert(txn, Some(actor.id()), input, hash).await).await
}

/// Validates a new user and hashes its password.
pub async fn validate_and_hash(db: &impl ConnectionTrait, input: &NewUser) -> AppResult<String> {
    let mut v = Violations::new();
    v.check("email", normalize::email(&input.email));
    required_text(&mut v, "name", &input.name, 100);
    v.check("password", password::check_policy(&input.password));
    if department::Entity::find_by_id(input.department_id).one(db).await?.is_none() {
        v.add("departmentId", "no such department");
    }
    v.into_result()?;
    password::hash(input.password.clone()).await
}

/// Inserts a validated user inside the caller's transaction.
pub async fn insert(
    db: &impl ConnectionTrait,
    actor_id: Option<Uuid>,
    input: NewUser,
    password_hash: String,
) -> AppResult<user::Model> {
    let now = now();
    let email = normalize::email(&input.email).map_err(|m| AppError::invalid("email", m))?;
    let model = user::ActiveModel {
        id: Set(new_id()),
        email: Set(email.into()),
        name: Set(input.name.trim().to_string()),
        password_hash: Set(password_hash),
        role: Set(input.role),
        department_id: Set(input.department_id),
        active: Set(true),
        session_version: Set(1),
        service_account: Set(false),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| match AppError::from_db(e) {
        AppError::Duplicate { key, .. } => {
            AppError::Duplicate { key, department: None, message: "a user with this e-mail already exists".into() }
        }
        other => other,
    })?;
    change::record(db, actor_id, Verb::Create, Subject::User, model.id, None, Some(&model)).await?;
    Ok(model)
}

/// One user (admins read all users; everyone reads themselves).
///
/// # Errors
/// NOT_FOUND.
pub async fn get(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> AppResult<user::Model> {
    if id != actor.id() && actor.require_all(Resource::User, Action::Read).is_err() {
        return Err(AppError::NotFound("user"));
    }
    user::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("user"))
}

/// A staff account (not an API key's), for a change.
///
/// # Errors
/// NOT_FOUND (API keys' accounts change through their keys).
pub async fn staff(db: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    user::Entity::find_by_id(id)
        .filter(user::Column::ServiceAccount.eq(false))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Filter of the user list.
#[derive(Default)]
pub struct UserFilter {
    pub department_id: Option<Uuid>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Lists users ordered by name (admin).
///
/// # Errors
/// FORBIDDEN, VALIDATION (paging).
pub async fn list(
    db: &DatabaseConnection,
    actor: &Actor,
    filter: UserFilter,
    args: &PageArgs,
) -> AppResult<Page<user::Model>> {
    actor.require_all(Resource::User, Action::Read)?;
    // API keys' accounts are listed with the keys.
    let mut q = user::Entity::find().filter(user::Column::ServiceAccount.eq(false));
    if let Some(d) = filter.department_id {
        q = q.filter(user::Column::DepartmentId.eq(d));
    }
    if let Some(r) = filter.role {
        q = q.filter(user::Column::Role.eq(r));
    }
    if let Some(a) = filter.active {
        q = q.filter(user::Column::Active.eq(a));
    }
    let keys = [SortKey::<user::Entity>::new("name", user::Column::Name, false, |u| SortValue::Text(u.name.clone()))];
    paginate(db, q, &keys, user::Column::Id, |u| u.id, args).await
}

/// Changes of a user (admin).
#[derive(Default)]
pub struct UserPatch {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub department_id: Option<Uuid>,
    pub password: Option<String>,
}

/// Updates a user with optimistic concurrency. A new password ends the user's sessions;
/// any change reaches the user's cached actor and open sockets on every instance.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND, VALIDATION, CONFLICT (stale version).
pub async fn update(
    db: &DatabaseConnection,
    events: &Events,
    actor: &Actor,
    id: Uuid,
    version: i32,
    patch: UserPatch,
) -> AppResult<user::Model> {
    actor.require_all(Resource::User, Action::Update)?;
    let mut v = Violations::new();
    if let Some(name) = &patch.name {
        required_text(&mut v, "name", name, 100);
    }
    if let Some(p) = &patch.password {
        v.check("password", password::check_policy(p));
    }
    if let Some(d) = patch.department_id
        && department::Entity::find_by_id(d).one(db).await?.is_none()
    {
        v.add("departmentId", "no such department");
    }
    v.into_result()?;
    let hash = match patch.password.clone() {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let saved = write(db, async |txn| {
        let old = staff(txn, id).await?;
        check_version::<user::Entity>(&old, Some(version))?;
        if patch.role.is_some_and(|r| r != Role::Admin) {
            keep_an_admin(txn, &old).await?;
        }
        let mut am: user::ActiveModel = old.clone().into();
        if let Some(name) = patch.name {
            am.name = Set(name.trim().to_string());
        }
        if let Some(role) = patch.role {
            am.role = Set(role);
        }
        if let Some(d) = patch.department_id {
            am.department_id = Set(d);
        }
        let password_changed = hash.is_some();
        if let Some(h) = hash {
            am.password_hash = Set(h);
            session::end_sessions(txn, &old, &mut am).await?;
        }
        let saved = save::<user::Entity>(txn, Some(actor.id()), Verb::Update, &old, am).await?;
        if password_changed {
            // The hash never enters the audit log; the change does.
            change::record::<user::Model>(txn, Some(actor.id()), Verb::PasswordChange, Subject::User, id, None, None)
                .await?;
        }
        Ok(saved)
    })
    .await?;
    events.publish(Signal::UserChanged(id)).await;
    Ok(saved)
}

/// Refuses to take the last active admin away (by deactivation or another role): nobody
/// could manage users or settings any more. The active admins are locked first
/// (PostgreSQL), so two admins demoting each other at once cannot both succeed.
///
/// # Errors
/// CONFLICT.
async fn keep_an_admin(txn: &DatabaseTransaction, user: &user::Model) -> AppResult<()> {
    if user.role != Role::Admin || !user.active {
        return Ok(());
    }
    let admins = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin))
        .filter(user::Column::ServiceAccount.eq(false))
        .filter(user::Column::Active.eq(true))
        .lock_exclusive()
        .all(txn)
        .await?;
    if admins.iter().all(|a| a.id == user.id) {
        return Err(AppError::Conflict("the last active admin cannot be deactivated or given another role".into()));
    }
    Ok(())
}

/// Deactivates a user and ends their sessions. Their customers move to `successor_id` if
/// given, otherwise to their department's public pool: staff leave, data stays.
///
/// # Errors
/// FORBIDDEN, NOT_FOUND, VALIDATION (successor inactive or the same user).
pub async fn deactivate(
    db: &DatabaseConnection,
    events: &Events,
    actor: &Actor,
    id: Uuid,
    successor_id: Option<Uuid>,
) -> AppResult<user::Model> {
    actor.require_all(Resource::User, Action::Update)?;
    if id == actor.id() {
        return Err(AppError::invalid("id", "you cannot deactivate yourself"));
    }
    let deactivated = write(db, async |txn| {
        let old = staff(txn, id).await?;
        keep_an_admin(txn, &old).await?;
        let successor = match successor_id {
            Some(s) => {
                let succ = match staff(txn, s).await {
                    Ok(u) => Some(u).filter(|u| u.active && u.id != id),
                    Err(AppError::NotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                Some(succ.ok_or_else(|| AppError::invalid("successorId", "must be another active user"))?)
            }
            None => None,
        };
        let mut am: user::ActiveModel = old.clone().into();
        am.active = Set(false);
        session::end_sessions(txn, &old, &mut am).await?;
        // The change stops the webhooks that read with this person's eyes (`Change::silences`).
        let new = save::<user::Entity>(txn, Some(actor.id()), Verb::Deactivate, &old, am).await?;
        let moved = hand_over(txn, actor.id(), &old, successor.as_ref()).await?;
        tracing::info!(user = %id, moved, "user deactivated; customers handed over");
        Ok(new)
    })
    .await?;
    events.publish(Signal::UserChanged(id)).await;
    Ok(deactivated)
}

/// Hands a departing account's customers to `successor`, or to the public pool of the
/// account's department; each move is audited like an assignment. Returns how many moved.
///
/// # Errors
/// Database errors.
pub(crate) async fn hand_over(
    txn: &DatabaseTransaction,
    actor_id: Uuid,
    old: &user::Model,
    successor: Option<&user::Model>,
) -> AppResult<usize> {
    // Hand the customers over; each move is audited like an assignment.
    // Locked: the audit rows below copy them, and must not copy what an erasure
    // running at the same moment removes.
    let owned = customer::Entity::find().filter(customer::Column::OwnerId.eq(old.id)).lock_exclusive().all(txn).await?;
    let at = now();
    let (owner, department) = match successor {
        Some(s) => (Some(s.id), s.department_id),
        None => (None, old.department_id),
    };
    customer::Entity::update_many()
        .col_expr(customer::Column::OwnerId, Expr::value(owner))
        .col_expr(customer::Column::OwnedSince, Expr::value(owner.map(|_| at)))
        .col_expr(customer::Column::DepartmentId, Expr::value(department))
        .col_expr(customer::Column::Version, Expr::col(customer::Column::Version).add(1))
        .col_expr(customer::Column::UpdatedAt, Expr::value(at))
        .filter(customer::Column::Id.is_in(owned.iter().map(|c| c.id)))
        .exec(txn)
        .await?;
    for before in &owned {
        let after = customer::Model {
            owner_id: owner,
            owned_since: owner.map(|_| at),
            department_id: department,
            version: before.version + 1,
            updated_at: at,
            ..before.clone()
        };
        change::record(txn, Some(actor_id), Verb::Assign, Subject::Customer, before.id, Some(before), Some(&after))
            .await?;
    }
    Ok(owned.len())
}

/// Creates a user without an actor (CLI, first admin). Creates nothing if the e-mail exists.
pub async fn bootstrap(db: &DatabaseConnection, input: NewUser) -> AppResult<user::Model> {
    let hash = validate_and_hash(db, &input).await?;
    write(db, async |txn| insert(txn, None, input, hash).await).await
}

/// Whether any user exists (first start).
pub async fn any(db: &DatabaseConnection) -> AppResult<bool> {
    Ok(user::Entity::find().one(db).await?.is_some())
}

/// A user by e-mail (CLI `token`).
pub async fn by_email(db: &DatabaseConnection, email: &str) -> AppResult<user::Model> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .filter(user::Column::ServiceAccount.eq(false))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// Staff by id, for batched loads: names and departments of staff are visible to every
/// colleague (owners, handlers, authors of records they may read).
pub async fn by_ids(db: &DatabaseConnection, ids: Vec<Uuid>) -> AppResult<Vec<user::Model>> {
    Ok(user::Entity::find().filter(user::Column::Id.is_in(ids)).all(db).await?)
}
