//! Operation-level guards that async-graphql's own limits (depth, complexity) do not
//! cover, run on the parsed query before execution, over HTTP and WebSocket ([`check`]).
//!
//! - **One `login` per operation.** Aliases let one request carry fifty `login` fields and
//!   learn which of fifty passwords is right; a request may test one.
//! - **Depth, introspection apart.** Operations nest at most `Limits::depth` fields, not
//!   counting the introspection fields (`__schema`, `__type`) and what they select:
//!   graphql-js's `getIntrospectionQuery()`, which client generators and GraphiQL send, is
//!   about 13 deep and must work at the default limits. Introspection itself is bounded by
//!   `Limits::introspection_depth` (async-graphql's own depth limit).
//! - **Introspection needs a token** unless `CRM_ANONYMOUS_INTROSPECTION` is on.
//! - **Root fields** (aliases included) are at most `Limits::root_fields` per operation:
//!   aliases multiply work that complexity prices per field (1,000 aliased reports).
use crate::config::Limits;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{ErrorExtensions, Name, Pos, Positioned, Request, ServerError};
use std::collections::{HashMap, HashSet};

/// Parses the query of a request and holds it to the guards. The parsed document stays
/// in the request, so the executor does not parse it again. The guards are a plain check
/// before execution rather than an async-graphql extension: an extension, even one with
/// only a parse hook, sends every field of every response through the extension chain
/// (a registry lookup and boxed futures per field), which was a measurable share of the
/// read path (BENCHMARKS.md).
///
/// # Errors
/// The parse error, or the guard that refuses the operation (code BAD_REQUEST, or
/// UNAUTHENTICATED for introspection without a token).
pub fn check(request: &mut Request, limits: &Limits, authenticated: bool) -> Result<(), ServerError> {
    check_document(request.parsed_query()?, limits, authenticated)
}

/// Holds a parsed document to the guards ([`check`]).
///
/// # Errors
/// The guard that refuses the operation.
pub fn check_document(document: &ExecutableDocument, limits: &Limits, authenticated: bool) -> Result<(), ServerError> {
    let operations: Vec<_> = match &document.operations {
        DocumentOperations::Single(op) => vec![op],
        DocumentOperations::Multiple(ops) => ops.values().collect(),
    };
    let fragments = &document.fragments;
    for op in operations {
        let root = &op.node.selection_set.node;
        let count = |name: Option<&str>| root_fields(root, fragments, name, &mut HashSet::new());
        if count(None) > limits.root_fields {
            let message =
                format!("Query is too complex: at most {} root fields (aliases included)", limits.root_fields);
            return Err(refuse(&message, "BAD_REQUEST", op.pos));
        }
        if op.node.ty == OperationType::Mutation && count(Some("login")) > 1 {
            return Err(refuse("send one login per request", "BAD_REQUEST", op.pos));
        }
        if depth(root, fragments, &mut Walk::default()) > limits.depth {
            // The wording of async-graphql's own limit, which clients may already match.
            return Err(refuse("Query is nested too deep.", "BAD_REQUEST", op.pos));
        }
        let introspects = count(Some("__schema")) + count(Some("__type")) > 0;
        if introspects && !limits.anonymous_introspection && !authenticated {
            return Err(refuse("introspection needs a token (Authorization: Bearer)", "UNAUTHENTICATED", op.pos));
        }
    }
    Ok(())
}

/// An error with its code, at a position of the query.
fn refuse(message: &str, code: &'static str, pos: Pos) -> ServerError {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code)).into_server_error(pos)
}

/// Fragments being expanded (a cycle is a validation error later; here it just stops), and
/// the depth of each fragment already measured (a fragment spread many times is measured
/// once, so nested spreads cannot make this exponential).
#[derive(Default)]
struct Walk {
    path: Vec<Name>,
    measured: HashMap<Name, usize>,
}

/// The deepest nesting of fields under a selection set, fragments inlined, the subtrees of
/// introspection fields left out.
fn depth(set: &SelectionSet, fragments: &HashMap<Name, Positioned<FragmentDefinition>>, walk: &mut Walk) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) if matches!(f.node.name.node.as_str(), "__schema" | "__type") => 0,
            Selection::Field(f) => 1 + depth(&f.node.selection_set.node, fragments, walk),
            Selection::InlineFragment(f) => depth(&f.node.selection_set.node, fragments, walk),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                if let Some(d) = walk.measured.get(name) {
                    return *d;
                }
                match fragments.get(name) {
                    Some(def) if !walk.path.contains(name) => {
                        walk.path.push(name.clone());
                        let d = depth(&def.node.selection_set.node, fragments, walk);
                        walk.path.pop();
                        walk.measured.insert(name.clone(), d);
                        d
                    }
                    _ => 0,
                }
            }
        })
        .max()
        .unwrap_or(0)
}

/// How many root fields (named `name`, or all) a selection set holds, through fragments
/// (each fragment counted once: a cycle is a validation error anyway).
fn root_fields(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    name: Option<&str>,
    seen: &mut HashSet<Name>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => usize::from(name.is_none_or(|n| f.node.name.node == n)),
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
