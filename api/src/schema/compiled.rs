//! The compiled read path's GraphQL side (`service::compiled`, `docs/architecture.md`): a
//! root field over customers turns its selection into picks when every part of it is one
//! the database answers, and hands the JSON the database built to the response as it is
//! (async-graphql's `raw_value`). Any other selection (a fragment, a directive, an edge's
//! `cursor`, `pageInfo`, a field only Rust computes, a root field asked twice under one
//! response key) takes the ordinary path, field by field.
use async_graphql::parser::types::{BaseType, Field, OperationDefinition, OperationType, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{Context, ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value, Variables};
use service::compiled::{Answer, EdgePick, EdgeWhat, Keyed, Kind, ListPick, ListWhat, MAX_FIELDS, Pick, What};
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
    alone(ctx).then(|| picks(&Env::of(ctx), &ctx.item.node.selection_set.node, kind)).flatten()
}

/// The selection of the field being resolved, a connection of `kind`, as picks.
pub fn connection(ctx: &Context<'_>, kind: Kind) -> Option<Vec<ListPick>> {
    alone(ctx).then(|| list_picks(&Env::of(ctx), &ctx.item.node.selection_set.node, kind)).flatten()
}

/// The whole answer (`{"data":{...}}`) of a request the database answers alone: a query
/// of one root field, `customer(id:)`, without directives, whose selection compiles
/// ([`record`]), for a signed-in caller, in a document that passed validation before and
/// declares no variable but `ID`s (so no value can change its complexity, which the
/// nested lists' `first` prices; `crate::documents::Parsed::Checked` holds the rest).
/// async-graphql does not run: what it would add to such an answer is the same JSON. A
/// customer not found, an error, or any other operation answers `None`, and the request
/// runs as every other does (with the error and its location, or field by field).
pub async fn direct(
    state: &crate::state::AppState,
    actor: &service::access::Actor,
    operation: &OperationDefinition,
    variables: &Variables,
) -> Option<String> {
    let compiler = state.compiled.as_ref()?;
    let only_ids = operation.variable_definitions.iter().all(|definition| {
        let ty = &definition.node.var_type.node.base;
        matches!(ty, BaseType::Named(name) if name.as_str() == "ID")
    });
    if operation.ty != OperationType::Query || !operation.directives.is_empty() || !only_ids {
        return None;
    }
    let [root] = operation.selection_set.node.items.as_slice() else { return None };
    let Selection::Field(field) = &root.node else { return None };
    let field = &field.node;
    let [(argument, id)] = field.arguments.as_slice() else { return None };
    if field.name.node != "customer" || argument.node != "id" || !field.directives.is_empty() {
        return None;
    }
    let env = Env { operation, variables };
    let Value::String(id) = id.node.clone().into_const_with(|v| env.variable(&v)).ok()? else { return None };
    let id = super::common::parse_id("id", &async_graphql::ID(id)).ok()?;
    let picks = picks(&env, &field.selection_set.node, Kind::Customer)?;
    // Interactive work, as every signed-in request's (`service::kernel::interactive`).
    let _ticket = service::kernel::interactive::Ticket::begin();
    let Ok(Answer::Json(json)) = compiler.customer(actor, id, &picks).await else { return None };
    let key = serde_json::to_string(field.response_key().node.as_str()).ok()?;
    Some(format!("{{\"data\":{{{key}:{json}}}}}"))
}

/// What picks read of the request: its operation (variables' defaults) and variables.
struct Env<'a> {
    operation: &'a OperationDefinition,
    variables: &'a Variables,
}

impl<'a> Env<'a> {
    fn of(ctx: &'a Context<'_>) -> Env<'a> {
        Env { operation: &ctx.query_env.operation.node, variables: &ctx.query_env.variables }
    }

    /// A variable's value as the request gave it, or its default.
    fn variable(&self, name: &Name) -> Result<Value, ()> {
        self.operation
            .variable_definitions
            .iter()
            .find(|d| d.node.name.node == *name)
            .and_then(|d| self.variables.get(name).or_else(|| d.node.default_value()))
            .cloned()
            .ok_or(())
    }
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

fn picks(env: &Env<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<Pick>> {
    keyed(set, |field| {
        let name = field.name.node.as_str();
        Some(if name == "__typename" {
            What::Typename
        } else if kind.answers(name) && field.arguments.is_empty() {
            What::Field(name.to_string())
        } else if let (Kind::Customer, Some(of)) = (kind, Kind::nested(name)) {
            let first = first_only(env, field)?;
            What::List { of, first, picks: list_picks(env, &field.selection_set.node, of)? }
        } else {
            return None;
        })
    })
}

fn list_picks(env: &Env<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<ListPick>> {
    keyed(set, |field| {
        if !field.arguments.is_empty() {
            return None;
        }
        Some(match field.name.node.as_str() {
            "__typename" => ListWhat::Typename,
            "totalCount" => ListWhat::TotalCount,
            "nodes" => ListWhat::Nodes(picks(env, &field.selection_set.node, kind)?),
            "edges" => ListWhat::Edges(edge_picks(env, &field.selection_set.node, kind)?),
            _ => return None,
        })
    })
}

fn edge_picks(env: &Env<'_>, set: &SelectionSet, kind: Kind) -> Option<Vec<EdgePick>> {
    keyed(set, |field| match field.name.node.as_str() {
        "__typename" => Some(EdgeWhat::Typename),
        "node" => Some(EdgeWhat::Node(picks(env, &field.selection_set.node, kind)?)),
        _ => None,
    })
}

/// A nested list's page size when `first` is its only argument and a valid one (the
/// ordinary path answers anything else, with its errors).
fn first_only(env: &Env<'_>, field: &Field) -> Option<u64> {
    let mut first = None;
    for (name, value) in &field.arguments {
        if name.node != "first" {
            return None;
        }
        first = match value.node.clone().into_const_with(|v| env.variable(&v)).ok()? {
            Value::Null => None,
            Value::Number(n) => Some(i32::try_from(n.as_i64()?).ok()?),
            _ => return None,
        };
    }
    service::kernel::pagination::page_size(first).ok()
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
