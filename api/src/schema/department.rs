//! Departments: the tree that scopes managers.
use super::common::{actor, db, parse_id};
use super::error::ResultExt;
use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use entity::department;
use service::access::department as svc;

/// A department; managers see their department and everything below it.
#[derive(Clone)]
pub struct Department(pub department::Model);

#[Object]
impl Department {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn parent_id(&self) -> Option<ID> {
        self.0.parent_id.map(|p| ID(p.to_string()))
    }
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Department>> {
        match self.0.parent_id {
            Some(p) => super::loaders::department(ctx, p).await,
            None => Ok(None),
        }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A new department.
#[derive(InputObject)]
pub struct CreateDepartmentInput {
    pub name: String,
    /// Null for a top-level department.
    pub parent_id: Option<ID>,
}

#[derive(Default)]
pub struct DepartmentQuery;

#[Object]
impl DepartmentQuery {
    /// All departments, by name (the tree is not sensitive).
    async fn departments(&self, ctx: &Context<'_>) -> Result<Vec<Department>> {
        actor(ctx)?;
        Ok(svc::list(db(ctx)).await.gql()?.into_iter().map(Department).collect())
    }

    /// One department.
    async fn department(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Department>> {
        actor(ctx)?;
        let id = parse_id("id", &id).gql()?;
        svc::get(db(ctx), id).await.map(|d| Some(Department(d))).gql()
    }
}

#[derive(Default)]
pub struct DepartmentMutation;

#[Object]
impl DepartmentMutation {
    /// Creates a department (admins). DUPLICATE when the parent has one of that name.
    async fn create_department(&self, ctx: &Context<'_>, input: CreateDepartmentInput) -> Result<Department> {
        let actor = actor(ctx)?;
        let parent = input.parent_id.map(|p| parse_id("parentId", &p)).transpose().gql()?;
        svc::create(db(ctx), &super::common::state(ctx).events, actor, &input.name, parent).await.map(Department).gql()
    }
}
