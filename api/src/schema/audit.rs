//! The audit trail, readable: who changed what and when, with values masked per the
//! caller's field grants.
use super::common::{actor, connection, db, page_args, parse_id, state};
use super::error::ResultExt;
use super::user::User;
use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use entity::audit_log;
use service::audit as svc;
use service::audit::AuditFilter as Filter;

/// One audited change.
#[derive(Clone)]
pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// create, update, delete, restore, assign, deactivate, password_change,
    /// id_number_change, override_tier, erase_personal_data, ...
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The table of the record: customer, contact, deal, user, role_permission, ...
    async fn entity(&self) -> &str {
        &self.0.entity
    }
    async fn record_id(&self) -> ID {
        ID(self.0.record_id.to_string())
    }
    /// Who did it; null for the system (scheduler, a failed login).
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|a| ID(a.to_string()))
    }
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        match self.0.actor_id {
            Some(id) => super::loaders::user(ctx, id).await,
            None => Ok(None),
        }
    }
    /// The record before, as stored; fields you may not see read "[hidden]".
    async fn old_values(&self) -> Option<Json<serde_json::Value>> {
        self.0.old_values.clone().map(Json)
    }
    /// The record after.
    async fn new_values(&self) -> Option<Json<serde_json::Value>> {
        self.0.new_values.clone().map(Json)
    }
}

connection!(AuditConnection, AuditEdge, AuditEntry, "audit entries");

/// What the audit trail is narrowed to; fields combine with AND.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// The audited record (a customer, contact, deal, user...).
    pub record_id: Option<ID>,
    /// Who made the change.
    pub user_id: Option<ID>,
    pub action: Option<String>,
    pub entity: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// At or before.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit trail, newest first (AUDIT READ: admins everything, managers the
    /// customers of their department subtree and the records under them). Values of field
    /// groups you may not see on the record read "[hidden]".
    #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<AuditConnection> {
        let actor = actor(ctx)?;
        let f = filter.unwrap_or_default();
        let filter = Filter {
            record_id: f.record_id.as_ref().map(|i| parse_id("filter.recordId", i)).transpose().gql()?,
            user_id: f.user_id.as_ref().map(|i| parse_id("filter.userId", i)).transpose().gql()?,
            action: f.action,
            entity: f.entity,
            from: f.from,
            to: f.to,
        };
        let page =
            svc::list(db(ctx), &state(ctx).privacy.keys, actor, &filter, &page_args(first, after)).await.gql()?;
        Ok(AuditConnection(page.map(AuditEntry)))
    }
}
