//! Inserting default grants, shared by the migrations that add grants after the first
//! (`m20261125_000008_field_groups`, `m20261125_000010_personal_data`). Frozen like a
//! migration: it writes the `role_permission` columns as they were on 2026-11-25.
use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum RolePermission {
    Table,
    Role,
    Resource,
    Action,
    Scope,
    IncludePool,
}

/// Inserts (role, resource, action, scope) grants without the public pool.
pub async fn insert(manager: &SchemaManager<'_>, grants: &[(&str, &str, &str, &str)]) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(RolePermission::Table).columns([
        RolePermission::Role,
        RolePermission::Resource,
        RolePermission::Action,
        RolePermission::Scope,
        RolePermission::IncludePool,
    ]);
    for &(role, resource, action, scope) in grants {
        insert.values_panic([role.into(), resource.into(), action.into(), scope.into(), false.into()]);
    }
    manager.exec_stmt(insert.to_owned()).await
}
