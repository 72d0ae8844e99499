//! The default role permissions (`docs/access.md`), as data an admin can change later.
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

const ACTIONS: [&str; 5] = ["READ", "CREATE", "UPDATE", "DELETE", "ASSIGN"];
/// Customers and the records hanging off them share one row of the spec's table.
const CUSTOMER_FAMILY: [&str; 5] = ["CUSTOMER", "CONTACT", "DEAL", "DEAL_AMOUNT", "INTERACTION"];

/// (role, resource, action, scope, include_pool) for every grant that is not NONE.
fn defaults() -> Vec<(&'static str, &'static str, &'static str, &'static str, bool)> {
    let mut rows = Vec::new();
    let mut grant = |role, resources: &[&'static str], actions: &[&'static str], scope, pool| {
        for resource in resources {
            for action in actions {
                rows.push((role, *resource, *action, scope, pool));
            }
        }
    };
    let all_resources =
        ["CUSTOMER", "CONTACT", "DEAL", "DEAL_AMOUNT", "INTERACTION", "FEEDBACK", "REPORT", "USER", "SETTINGS"];
    grant("ADMIN", &all_resources, &ACTIONS, "ALL", false);

    grant("EXECUTIVE", &CUSTOMER_FAMILY, &["READ"], "ALL", false);
    grant("EXECUTIVE", &["CUSTOMER"], &["ASSIGN"], "ALL", false);
    grant("EXECUTIVE", &["FEEDBACK"], &["READ"], "ALL", false);
    grant("EXECUTIVE", &["REPORT"], &["READ"], "ALL", false);

    grant("MANAGER", &CUSTOMER_FAMILY, &ACTIONS, "DEPARTMENT", false);
    grant("MANAGER", &["FEEDBACK"], &["READ", "CREATE", "UPDATE", "DELETE"], "DEPARTMENT", false);
    grant("MANAGER", &["REPORT"], &["READ"], "DEPARTMENT", false);

    grant("SALES", &["CUSTOMER"], &["READ"], "OWN", true);
    grant("SALES", &["CUSTOMER"], &["CREATE", "UPDATE"], "OWN", false);
    grant("SALES", &["CONTACT", "DEAL", "INTERACTION"], &["READ", "CREATE", "UPDATE"], "OWN", false);
    grant("SALES", &["DEAL_AMOUNT"], &["READ"], "OWN", false);
    grant("SALES", &["FEEDBACK"], &["READ", "CREATE", "UPDATE"], "OWN", false);
    grant("SALES", &["REPORT"], &["READ"], "OWN", false);

    // Service reads everything but deal amounts, and handles all feedback.
    grant("SERVICE", &["CUSTOMER", "CONTACT", "DEAL", "INTERACTION"], &["READ"], "ALL", false);
    grant("SERVICE", &["FEEDBACK"], &["READ", "CREATE", "UPDATE"], "ALL", false);

    grant("ANALYST", &["REPORT"], &["READ"], "ALL", false);

    // Integrations push leads in and read back what they created.
    grant("INTEGRATION", &["CUSTOMER", "CONTACT"], &["READ", "CREATE"], "OWN", false);
    grant("INTEGRATION", &["FEEDBACK"], &["CREATE"], "OWN", false);
    rows
}

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
        for (role, resource, action, scope, pool) in defaults() {
            insert.values_panic([role.into(), resource.into(), action.into(), scope.into(), pool.into()]);
        }
        manager.exec_stmt(insert.to_owned()).await
    }
}
