//! Departments: a tree that scopes what managers see.
use crate::access::Actor;
use crate::access::live::Events;
use crate::error::{AppError, AppResult, Violations};
use crate::kernel::change::{self, Subject, Verb};
use crate::kernel::events::Signal;
use crate::kernel::store::write;
use crate::kernel::{new_id, now, required_text};
use entity::department;
use entity::enums::{Action, Resource};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

/// Creates a department (admin: settings create). The subtrees of the departments above
/// it grow, so every cached actor is dropped on every instance.
///
/// # Errors
/// FORBIDDEN, VALIDATION (blank name, unknown parent), DUPLICATE (same name under the parent).
pub async fn create(
    db: &DatabaseConnection,
    events: &Events,
    actor: &Actor,
    name: &str,
    parent_id: Option<Uuid>,
) -> AppResult<department::Model> {
    actor.require_all(Resource::Settings, Action::Create)?;
    let created = write(db, async |txn| insert(txn, Some(actor.id()), name, parent_id).await).await?;
    if parent_id.is_some() {
        events.publish(Signal::StaffChanged).await;
    }
    Ok(created)
}

/// Inserts a department inside the caller's transaction (also used by the CLI).
pub async fn insert(
    db: &impl ConnectionTrait,
    actor_id: Option<Uuid>,
    name: &str,
    parent_id: Option<Uuid>,
) -> AppResult<department::Model> {
    let mut v = Violations::new();
    let name = required_text(&mut v, "name", name, 100);
    if let Some(parent) = parent_id
        && department::Entity::find_by_id(parent).one(db).await?.is_none()
    {
        v.add("parentId", "no such department");
    }
    v.into_result()?;
    let now = now();
    let model = department::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        parent_id: Set(parent_id),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(|e| match AppError::from_db(e) {
        AppError::Duplicate { key, department, .. } => AppError::Duplicate {
            key,
            department,
            message: "a department with this name already exists under that parent".into(),
        },
        other => other,
    })?;
    change::record(db, actor_id, Verb::Create, Subject::Department, model.id, None, Some(&model)).await?;
    Ok(model)
}

/// Finds a department by name (CLI helper), or creates it at the root.
pub async fn find_or_create_by_name(db: &DatabaseConnection, name: &str) -> AppResult<department::Model> {
    if let Some(d) = department::Entity::find().filter(department::Column::Name.eq(name.trim())).one(db).await? {
        return Ok(d);
    }
    write(db, async |txn| insert(txn, None, name, None).await).await
}

/// Every department, ordered by name; the tree is small and not sensitive.
pub async fn list(db: &DatabaseConnection) -> AppResult<Vec<department::Model>> {
    Ok(department::Entity::find()
        .order_by_asc(department::Column::Name)
        .order_by_asc(department::Column::Id)
        .all(db)
        .await?)
}

/// One department.
pub async fn get(db: &DatabaseConnection, id: Uuid) -> AppResult<department::Model> {
    department::Entity::find_by_id(id).one(db).await?.ok_or(AppError::NotFound("department"))
}

/// Departments by id, for batched loads.
pub async fn by_ids(db: &DatabaseConnection, ids: Vec<Uuid>) -> AppResult<Vec<department::Model>> {
    Ok(department::Entity::find().filter(department::Column::Id.is_in(ids)).all(db).await?)
}
