//! The compiled read path's GraphQL side (`service::compiled`, `docs/architecture.md`): a
//! root field over customers turns its selection into picks when every part of it is one
//! the database answers, and hands the JSON the database built to the response as it is
//! (async-graphql's `raw_value`). Any other selection (a fragment, a directive, an edge's
//! `cursor`, `pageInfo`, a field only Rust computes, a root field asked twice under one
//! response key) takes the ordinary path, field by field.
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{Context, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};
use service::compiled::{EdgePick, EdgeWhat, Keyed, Kind, ListPick, ListWhat, MAX_FIELDS, Pick, What};
use std::borrow::Cow;

/// The key under which async-graphql's `raw_value` feature writes a string as JSON text
/// (serde_json's token for `RawValue`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// An answer built by the database (JSON text) or by the type's own resolvers. The
/// schema sees `T`: the two are indistinguishable to a client.
pub enum Compiled<T> {
    Raw(String),
    Plain(T),
}

impl<T: OutputType> OutputType for Compiled<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        match self {
            Compiled::Raw(json) => Ok(raw(json.clone())),
            Compiled::Plain(t) => t.resolve(ctx, field).await,
        }
    }
}

/// JSON text as a value that serialises as that text.
fn raw(json: String) -> Value {
    Value::Object([(Name::new(RAW_VALUE_TOKEN), Value::String(json))].into_iter().collect())
}

/// The compiled reads' connections and statements, when this server compiles reads
/// (PostgreSQL, `CRM_COMPILED_READS` on).
pub fn compiler<'a>(ctx: &'a Context<'_>) -> Option<&'a service::compiled::Compiler> {
    super::common::state(ctx).compiled.as_ref()
}

/// The selection of the field being resolved, a `kind`, as picks; `None` when a part of
/// it is not compiled.
pub fn record(ctx: &Context<'_>, kind: Kind) -> Option<Vec<Pick>> {
    alone(ctx).then(|| picks(ctx, &ctx.item.node.selection_set.node, kind)).flatten()
}

/// The selection of the field being resolved, a connection of `kind`, as picks.
pub fn connection(ctx: &Context<'_>, kind: Kind) -> Option<Vec<ListPick>> {
    alone(ctx).then(|| list_picks(ctx, &ctx.item.node.selection_set.node, kind)).flatten()
}

/// Whether the root field being resolved is the operation's only one under its response
/// key: async-graphql resolves each occurrence (`{customers{totalCount}
/// customers{nodes{id}}}`, or the same through fragments) and merges the answers, which a
/// raw answer cannot take part in.
fn alone(ctx: &Context<'_>) -> bool {
    let key = ctx.item.node.response_key().node.as_str();
    let mut seen = 0;
    occurrences(ctx, &ctx.query_env.operation.node.selection_set.node, key, &mut seen, 0) && seen == 1
}

/// Counts the fields under `key` in `set`, through fragments; false when it cannot tell.
fn occurrences(ctx: &Context<'_>, set: &SelectionSet, key: &str, seen: &mut usize, depth: usize) -> bool {
    if depth > 16 {
        return false;
    }
    set.items.iter().all(|item| match &item.node {
        Selection::Field(field) => {
            *seen += usize::from(field.node.response_key().node == key);
            true
        }
        Selection::FragmentSpread(spread) => ctx
            .query_env
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|fragment| occurrences(ctx, &fragment.node.selection_set.node, key, seen, depth + 1)),
        Selection::InlineFragment(inline) => occurrences(ctx, &inline.node.selection_set.node, key, seen, depth + 1),
    })
}

/// The fields of a selection set under their response keys, each read by `what`: plain
/// fields only (no fragment, no directive, which the ordinary path merges and evaluates),
/// each key once, at most [`MAX_FIELDS`]; `None` when any of that fails or `what` does.
fn keyed<W>(set: &SelectionSet, mut what: impl FnMut(&Field) -> Option<W>) -> Option<Vec<Keyed<W>>> {
    if set.items.len() > MAX_FIELDS {
        return None;
    }
    let mut out: Vec<Keyed<W>> = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let Selection::Field(field) = &item.node else { return None };
        let field = &field.node;
        let key = field.response_key().node.as_str();
        if !field.directives.is_empty() || out.iter().any(|k| k.key == key) {
            return None;
        }
        out.push(Keyed { key: key.to_string(), what: what(field)? });
    }
    Some(out)
}

fn picks(ctx: &Context<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<Pick>> {
    keyed(set, |field| {
        let name = field.name.node.as_str();
        Some(if name == "__typename" {
            What::Typename
        } else if kind.answers(name) && field.arguments.is_empty() {
            What::Field(name.to_string())
        } else if let (Kind::Customer, Some(of)) = (kind, Kind::nested(name)) {
            let first = first_only(ctx, field)?;
            What::List { of, first, picks: list_picks(ctx, &field.selection_set.node, of)? }
        } else {
            return None;
        })
    })
}

fn list_picks(ctx: &Context<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<ListPick>> {
    keyed(set, |field| {
        if !field.arguments.is_empty() {
            return None;
        }
        Some(match field.name.node.as_str() {
            "__typename" => ListWhat::Typename,
            "totalCount" => ListWhat::TotalCount,
            "nodes" => ListWhat::Nodes(picks(ctx, &field.selection_set.node, kind)?),
            "edges" => ListWhat::Edges(edge_picks(ctx, &field.selection_set.node, kind)?),
            _ => return None,
        })
    })
}

fn edge_picks(ctx: &Context<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<EdgePick>> {
    keyed(set, |field| match field.name.node.as_str() {
        "__typename" => Some(EdgeWhat::Typename),
        "node" => Some(EdgeWhat::Node(picks(ctx, &field.selection_set.node, kind)?)),
        _ => None,
    })
}

/// A nested list's page size when `first` is its only argument and a valid one (the
/// ordinary path answers anything else, with its errors).
fn first_only(ctx: &Context<'_>, field: &Field) -> Option<u64> {
    let mut first = None;
    for (name, value) in &field.arguments {
        if name.node != "first" {
            return None;
        }
        first = match value.node.clone().into_const_with(|v| variable(ctx, &v)).ok()? {
            Value::Null => None,
            Value::Number(n) => Some(i32::try_from(n.as_i64()?).ok()?),
            _ => return None,
        };
    }
    service::kernel::pagination::page_size(first).ok()
}

/// A variable's value as the request gave it, or its default.
fn variable(ctx: &Context<'_>, name: &Name) -> Result<Value, ()> {
    let env = &ctx.query_env;
    env.operation
        .node
        .variable_definitions
        .iter()
        .find(|d| d.node.name.node == *name)
        .and_then(|d| env.variables.get(name).or_else(|| d.node.default_value()))
        .cloned()
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_json_is_written_as_it_is() {
        let text = r#"{"a" : [1, {"b" : null}], "c" : "d"}"#;
        let out = serde_json::to_string(&raw(text.to_string())).unwrap();
        assert_eq!(out, text, "the raw_value feature of async-graphql must be on");
    }
}
