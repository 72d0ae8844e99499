//! Field groups get their own grants (`docs/access.md`): contact details and personal
//! details join the amounts group (`DEAL_AMOUNT`). Only READ is consulted; its scope is
//! applied row by row, like a record's own grant.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (role, group, action, scope) of every grant that is not NONE.
const DEFAULTS: [(&str, &str, &str, &str); 10] = [
    ("ADMIN", "CONTACT_DETAILS", "READ", "ALL"),
    ("ADMIN", "PERSONAL_DETAILS", "READ", "ALL"),
    ("EXECUTIVE", "CONTACT_DETAILS", "READ", "ALL"),
    ("EXECUTIVE", "PERSONAL_DETAILS", "READ", "ALL"),
    ("MANAGER", "CONTACT_DETAILS", "READ", "DEPARTMENT"),
    ("MANAGER", "PERSONAL_DETAILS", "READ", "DEPARTMENT"),
    // A rep sees who to call once the customer is theirs, not while it sits in the pool.
    ("SALES", "CONTACT_DETAILS", "READ", "OWN"),
    ("SALES", "PERSONAL_DETAILS", "READ", "OWN"),
    // Service calls customers back but needs no birthday or ID number.
    ("SERVICE", "CONTACT_DETAILS", "READ", "ALL"),
    // A partner reads back the contact details of the leads it pushed.
    ("INTEGRATION", "CONTACT_DETAILS", "READ", "OWN"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::grants::insert(manager, &DEFAULTS).await
    }
}
