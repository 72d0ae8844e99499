//! Field groups get their own grants (`docs/access.md`): contact details and personal
//! details join the amounts group (`DEAL_AMOUNT`). Only READ is consulted; its scope is
//! applied row by row, like a record's own grant.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RolePermission {
    Table,
    Role,
    Resource,
    Action,
    Scope,
    IncludePool,
}

/// (role, group, scope) of every READ grant that is not NONE.
const DEFAULTS: [(&str, &str, &str); 10] = [
    ("ADMIN", "CONTACT_DETAILS", "ALL"),
    ("ADMIN", "PERSONAL_DETAILS", "ALL"),
    ("EXECUTIVE", "CONTACT_DETAILS", "ALL"),
    ("EXECUTIVE", "PERSONAL_DETAILS", "ALL"),
    ("MANAGER", "CONTACT_DETAILS", "DEPARTMENT"),
    ("MANAGER", "PERSONAL_DETAILS", "DEPARTMENT"),
    // A rep sees who to call once the customer is theirs, not while it sits in the pool.
    ("SALES", "CONTACT_DETAILS", "OWN"),
    ("SALES", "PERSONAL_DETAILS", "OWN"),
    // Service calls customers back but needs no birthday or ID number.
    ("SERVICE", "CONTACT_DETAILS", "ALL"),
    // A partner reads back the contact details of the leads it pushed.
    ("INTEGRATION", "CONTACT_DETAILS", "OWN"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert.into_table(RolePermission::Table).columns([
            RolePermission::Role,
            RolePermission::Resource,
            RolePermission::Action,
            RolePermission::Scope,
            RolePermission::IncludePool,
        ]);
        for (role, group, scope) in DEFAULTS {
            insert.values_panic([role.into(), group.into(), "READ".into(), scope.into(), false.into()]);
        }
        manager.exec_stmt(insert.to_owned()).await
    }
}
