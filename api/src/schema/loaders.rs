//! Per-request DataLoaders: nested fields of many parents load in one query.
use super::department::Department;
use super::user::User;
use crate::error::AppError;
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ErrorExtensions, Result};
use entity::{department, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Loads rows by primary key.
pub struct ById {
    pub db: DatabaseConnection,
}

/// Shared error type of loaders (DataLoader needs Clone).
pub type LoadError = Arc<AppError>;

fn err(e: sea_orm::DbErr) -> LoadError {
    Arc::new(AppError::from(e))
}

impl Loader<UserKey> for ById {
    type Value = user::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, user::Model>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = user::Entity::find().filter(user::Column::Id.is_in(ids)).all(&self.db).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (UserKey(r.id), r)).collect())
    }
}

impl Loader<DepartmentKey> for ById {
    type Value = department::Model;
    type Error = LoadError;
    async fn load(&self, keys: &[DepartmentKey]) -> Result<HashMap<DepartmentKey, department::Model>, LoadError> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = department::Entity::find().filter(department::Column::Id.is_in(ids)).all(&self.db).await.map_err(err)?;
        Ok(rows.into_iter().map(|r| (DepartmentKey(r.id), r)).collect())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DepartmentKey(pub Uuid);

/// The request's loaders.
pub fn new_loader(db: DatabaseConnection) -> DataLoader<ById> {
    DataLoader::new(ById { db }, tokio::spawn)
}

fn loader<'a>(ctx: &'a Context<'_>) -> &'a DataLoader<ById> {
    ctx.data_unchecked::<DataLoader<ById>>()
}

fn unshare(e: LoadError) -> async_graphql::Error {
    e.extend()
}

/// A staff member by id (staff names and departments are visible to colleagues).
pub async fn user(ctx: &Context<'_>, id: Uuid) -> Result<Option<User>> {
    loader(ctx).load_one(UserKey(id)).await.map(|u| u.map(User)).map_err(unshare)
}

/// A department by id.
pub async fn department(ctx: &Context<'_>, id: Uuid) -> Result<Option<Department>> {
    loader(ctx).load_one(DepartmentKey(id)).await.map(|d| d.map(Department)).map_err(unshare)
}
