//! The GraphQL schema: one module per resource turning GraphQL into service calls.
pub mod api_key;
pub mod audit;
pub mod care;
pub mod category;
pub mod classification;
pub mod common;
pub mod compiled;
pub mod contact;
pub mod customer;
pub mod deal;
pub mod department;
pub mod duplicates;
pub mod enums;
pub mod error;
pub mod feedback;
pub mod guards;
pub mod import;
pub mod interaction;
pub mod keylists;
pub mod loaders;
pub mod permission;
pub mod personal;
pub mod record;
pub mod reports;
pub mod search;
pub mod user;
pub mod webhook;

use crate::config::Limits;
use async_graphql::{MergedObject, Schema};
pub use care::Subscription;

/// Every query.
#[derive(MergedObject, Default)]
pub struct Query(
    user::UserQuery,
    department::DepartmentQuery,
    customer::CustomerQuery,
    category::CategoryQuery,
    duplicates::DuplicateQuery,
    import::ImportQuery,
    contact::ContactQuery,
    deal::DealQuery,
    feedback::FeedbackQuery,
    interaction::InteractionQuery,
    classification::ClassificationQuery,
    keylists::KeyListQuery,
    reports::ReportQuery,
    care::CareQuery,
    permission::PermissionQuery,
    audit::AuditQuery,
    api_key::ApiKeyQuery,
    webhook::WebhookQuery,
    search::SearchQuery,
);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    user::UserMutation,
    department::DepartmentMutation,
    customer::CustomerMutation,
    category::CategoryMutation,
    duplicates::MergeMutation,
    contact::ContactMutation,
    contact::ContactTrash,
    deal::DealMutation,
    deal::DealTrash,
    feedback::FeedbackMutation,
    feedback::FeedbackTrash,
    interaction::InteractionMutation,
    classification::ClassificationMutation,
    care::CareMutation,
    permission::PermissionMutation,
    personal::PersonalMutation,
    api_key::ApiKeyMutation,
    webhook::WebhookMutation,
);

/// The schema type served at /graphql.
pub type CrmSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema without data (for SDL export).
pub fn builder(limits: Limits) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    // async-graphql's own depth limit bounds every operation, introspection included; the
    // guards (`guards::check`, run by the HTTP and WebSocket handlers before execution)
    // hold everything else to `limits.depth`.
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.depth.max(limits.introspection_depth))
        .limit_complexity(limits.complexity)
        .limit_recursive_depth(limits.recursive_depth)
        .limit_directives(limits.directives)
}

/// The SDL that `schema.graphql` must equal.
pub fn sdl() -> String {
    builder(Limits::default()).finish().sdl()
}
