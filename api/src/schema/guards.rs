//! Operation-level guards that async-graphql's own limits (depth, complexity) do not
//! cover, run as an extension right after a query is parsed, over HTTP and WebSocket.
//!
//! - **One `login` per operation.** Aliases let one request carry fifty `login` fields and
//!   learn which of fifty passwords is right; a request may test one.
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensions, Name, Positioned, ServerResult, Variables};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The guards, as an async-graphql extension.
pub struct Guards;

impl ExtensionFactory for Guards {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Guards)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Guards {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let operations: Vec<_> = match &document.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(ops) => ops.values().collect(),
        };
        for op in operations.into_iter().filter(|op| op.node.ty == OperationType::Mutation) {
            let mut seen = HashSet::new();
            if root_fields(&op.node.selection_set.node, &document.fragments, "login", &mut seen) > 1 {
                return Err(async_graphql::Error::new("send one login per request")
                    .extend_with(|_, e| e.set("code", "BAD_REQUEST"))
                    .into_server_error(op.pos));
            }
        }
        Ok(document)
    }
}

/// How many root fields named `name` a selection set holds, through fragments (each
/// fragment counted once: a cycle is a validation error anyway).
fn root_fields(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    name: &str,
    seen: &mut HashSet<Name>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(f.node.name.node == name),
            Selection::InlineFragment(f) => root_fields(&f.node.selection_set.node, fragments, name, seen),
            Selection::FragmentSpread(s) => {
                let fragment = &s.node.fragment_name.node;
                match fragments.get(fragment) {
                    Some(def) if seen.insert(fragment.clone()) => {
                        root_fields(&def.node.selection_set.node, fragments, name, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}
