//! The GraphQL face of the records that hang off a customer (contacts, deals, feedback,
//! interactions): reading one, listing them, the trash. The rules live in
//! `service/src/records/mod.rs`; each resource declares here only its names, types and docs.

/// `record_queries!(XQuery, x, xs, X, XConnection, XFilter, XOrder, "get doc", "list doc")`
/// defines the query object with `x(id)` and `xs(first, after, filter, orderBy, deleted)`;
/// `no_trash` as the last argument leaves `deleted` out.
macro_rules! record_queries {
    ($query:ident, $one:ident, $many:ident, $node:ident, $conn:ident, $filter:ident, $order:ident, $get_doc:literal, $list_doc:literal) => {
        $crate::schema::record::record_queries!(@object $query, $one, $many, $node, $conn, $filter, $order, $get_doc, $list_doc, [#[graphql(default)] deleted: bool,], deleted);
    };
    ($query:ident, $one:ident, $many:ident, $node:ident, $conn:ident, $filter:ident, $order:ident, $get_doc:literal, $list_doc:literal, no_trash) => {
        $crate::schema::record::record_queries!(@object $query, $one, $many, $node, $conn, $filter, $order, $get_doc, $list_doc, [], false);
    };
    (@object $query:ident, $one:ident, $many:ident, $node:ident, $conn:ident, $filter:ident, $order:ident, $get_doc:literal, $list_doc:literal, [$($trash:tt)*], $deleted:expr) => {
        #[derive(Default)]
        pub struct $query;

        #[async_graphql::Object]
        impl $query {
            #[doc = $get_doc]
            async fn $one(&self, ctx: &async_graphql::Context<'_>, id: async_graphql::ID) -> async_graphql::Result<Option<$node>> {
                use $crate::schema::error::ResultExt;
                let actor = $crate::schema::common::actor(ctx)?;
                let id = $crate::schema::common::parse_id("id", &id).gql()?;
                ::service::records::get::<entity::$one::Entity>($crate::schema::common::db(ctx), actor, id)
                    .await
                    .map(|r| Some($node(r)))
                    .gql()
            }

            #[doc = $list_doc]
            #[graphql(complexity = "super::common::list_cost(first, child_complexity)")]
            async fn $many(
                &self,
                ctx: &async_graphql::Context<'_>,
                first: Option<i32>,
                after: Option<String>,
                filter: Option<$filter>,
                order_by: Option<Vec<$order>>,
                $($trash)*
            ) -> async_graphql::Result<$conn> {
                use $crate::schema::error::ResultExt;
                let actor = $crate::schema::common::actor(ctx)?;
                let order = order_by
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| (o.field.into(), o.direction == $crate::schema::common::SortDirection::Desc));
                let query = $crate::schema::common::list_query(first, after, filter, order.collect(), $deleted).gql()?;
                let page = ::service::records::list::<entity::$one::Entity>($crate::schema::common::db(ctx), actor, &query)
                    .await
                    .gql()?;
                Ok($conn(page.map($node)))
            }
        }
    };
}
pub(crate) use record_queries;

/// `record_trash!(XTrash, x, X, delete_x, restore_x, "delete doc", "restore doc")` defines
/// the mutation object with `deleteX(id, version)` and `restoreX(id)`.
macro_rules! record_trash {
    ($object:ident, $entity:ident, $node:ident, $delete:ident, $restore:ident, $delete_doc:literal, $restore_doc:literal) => {
        #[derive(Default)]
        pub struct $object;

        #[async_graphql::Object]
        impl $object {
            #[doc = $delete_doc]
            async fn $delete(
                &self,
                ctx: &async_graphql::Context<'_>,
                id: async_graphql::ID,
                version: Option<i32>,
            ) -> async_graphql::Result<$node> {
                use $crate::schema::error::ResultExt;
                let actor = $crate::schema::common::actor(ctx)?;
                let id = $crate::schema::common::parse_id("id", &id).gql()?;
                ::service::records::delete::<entity::$entity::Entity>(
                    $crate::schema::common::db(ctx),
                    &$crate::schema::common::state(ctx).privacy.keys,
                    actor,
                    id,
                    version,
                )
                .await
                .map($node)
                .gql()
            }

            #[doc = $restore_doc]
            async fn $restore(
                &self,
                ctx: &async_graphql::Context<'_>,
                id: async_graphql::ID,
            ) -> async_graphql::Result<$node> {
                use $crate::schema::error::ResultExt;
                let actor = $crate::schema::common::actor(ctx)?;
                let id = $crate::schema::common::parse_id("id", &id).gql()?;
                let vault = &$crate::schema::common::state(ctx).privacy.keys;
                ::service::records::restore::<entity::$entity::Entity>(
                    $crate::schema::common::db(ctx),
                    vault,
                    actor,
                    id,
                )
                .await
                .map($node)
                .gql()
            }
        }
    };
}
pub(crate) use record_trash;
