//! Persisted and trusted documents (`docs/documents.md`).
//!
//! - Apollo's automatic persisted queries: a request may name its document by
//!   `extensions.persistedQuery.sha256Hash` instead of sending it; a hash the server has
//!   not seen answers `PERSISTED_QUERY_NOT_FOUND`, and the client sends the document once
//!   with its hash, which the server checks and keeps (a bounded cache per instance).
//! - `CRM_TRUSTED_DOCUMENTS=only` with a manifest (`CRM_TRUSTED_DOCUMENTS_MANIFEST`): only
//!   the manifest's documents run, named by hash or sent whole; nothing is learnt from
//!   requests. A mobile app ships its operations; nothing else is accepted.
//! - Parsed documents: the last [`PARSED`] documents parsed, by their text, so that a
//!   client sending the same operation again skips the parser (a tenth of the server's
//!   time on a by-id lookup, BENCHMARKS.md). A kept document of one operation that
//!   passed validation once is [`Parsed::Checked`] on a request whose variables cannot
//!   change that (`fits`): the next requests run it without the validation rules
//!   (async-graphql's fast mode, which still counts depth and complexity). Of the rules
//!   only the argument types read the variables, so a document without variables, or one
//!   whose variables are all built-in scalars each given a value of its type, passes
//!   again; any other request is validated as it comes.
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{Positioned, Request, Value};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Documents kept from requests, per instance, at most.
const KEPT: usize = 1000;
/// Bytes of documents kept from requests, per instance, at most (the least recently used
/// go first).
const KEPT_BYTES: usize = 8 * 1024 * 1024;
/// A document longer than this runs but is not kept.
const KEPT_ONE: usize = 64 * 1024;

/// Parsed documents kept per instance (by their text), at most.
const PARSED: usize = 500;
/// A document longer than this is parsed every time.
const PARSED_ONE: usize = 16 * 1024;

/// Documents learnt from requests, least recently used first out.
struct Seen {
    documents: lru::LruCache<String, Arc<str>>,
    bytes: usize,
}

impl Seen {
    fn keep(&mut self, hash: String, document: &str) {
        if document.len() > KEPT_ONE || self.documents.contains(&hash) {
            return;
        }
        self.bytes += document.len();
        if let Some((_, out)) = self.documents.push(hash, Arc::from(document)) {
            self.bytes -= out.len();
        }
        while self.bytes > KEPT_BYTES {
            let Some((_, out)) = self.documents.pop_lru() else { break };
            self.bytes -= out.len();
        }
    }
}

/// What the server knows of documents by hash.
pub struct Documents {
    only: bool,
    trusted: HashMap<String, Arc<str>>,
    seen: Mutex<Seen>,
    parsed: Mutex<lru::LruCache<Arc<str>, Kept>>,
}

/// A parsed document, and whether it passed validation.
struct Kept {
    document: Arc<ExecutableDocument>,
    checked: bool,
}

/// A kept document for a request, shared: copied into the request only when it runs on
/// async-graphql ([`Reused::into_request`]); one the database answers whole is read in
/// place (`crate::schema::compiled::direct`).
pub struct Reused {
    pub document: Arc<ExecutableDocument>,
    pub parsed: Parsed,
}

impl Reused {
    /// Gives `request` its document; whether it was validated before.
    pub fn into_request(self, request: &mut Request) -> Parsed {
        request.set_parsed_query(Arc::unwrap_or_clone(self.document));
        self.parsed
    }
}

/// Whether a request's document was parsed and validated before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Parsed now, or not known valid with these variables: validated on this request.
    Unchecked,
    /// Validated before, and valid with these variables: runs without validation.
    Checked,
}

/// Whether a document that passed validation passes it again with `variables`: it is
/// one operation, and each variable it declares is a built-in scalar (`ID`, `String`,
/// `Int`, `Float`, `Boolean`, nullable or not; not a list, enum or input object) given a
/// value that scalar accepts (async-graphql's `is_valid`; an `Int` also within 32 bits,
/// an `ID` a string). The static rules passed already, so each variable stands where its
/// type may (`VariableInAllowedPosition`); the one rule that reads values
/// (`ArgumentsOfCorrectType`) then accepts these. A missing or null value, or any other
/// type, is left to validation.
fn fits(document: &ExecutableDocument, name: Option<&str>, variables: &async_graphql::Variables) -> bool {
    let Some(operation) = only_operation(document, name) else { return false };
    operation.node.variable_definitions.iter().all(|definition| {
        let definition = &definition.node;
        let async_graphql::parser::types::BaseType::Named(name) = &definition.var_type.node.base else {
            return false;
        };
        match (name.as_str(), variables.get(&definition.name.node)) {
            ("ID" | "String", Some(Value::String(_))) | ("Float", Some(Value::Number(_))) => true,
            ("Int", Some(Value::Number(n))) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            ("Boolean", Some(Value::Boolean(_))) => true,
            _ => false,
        }
    })
}

/// The document's one operation, when it has one and it is the one a request that names
/// `name` (or nothing) runs. A named operation is parsed as one of `Multiple`; an
/// anonymous one runs only when the request names none (async-graphql refuses any name).
pub fn only_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match &document.operations {
        DocumentOperations::Single(operation) => name.is_none().then_some(operation),
        DocumentOperations::Multiple(operations) if operations.len() == 1 => match operations.iter().next() {
            Some((own, operation)) if name.is_none_or(|name| name == own.as_str()) => Some(operation),
            _ => None,
        },
        DocumentOperations::Multiple(_) => None,
    }
}

/// Why a request's document is refused: a stable code and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> Refused {
    Refused { code, message: message.into() }
}

/// The lowercase hex SHA-256 of a document's text, as clients compute it (the same digest
/// that names a request body for its Idempotency-Key).
pub fn hash(query: &str) -> String {
    service::kernel::idempotency::hash(query.as_bytes())
}

impl Documents {
    /// Any document runs; hashes are learnt from requests.
    pub fn open() -> Documents {
        Documents {
            only: false,
            trusted: HashMap::new(),
            seen: Mutex::new(Seen {
                documents: lru::LruCache::new(NonZeroUsize::new(KEPT).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
            parsed: Mutex::new(lru::LruCache::new(NonZeroUsize::new(PARSED).unwrap_or(NonZeroUsize::MIN))),
        }
    }

    /// The document of `request` already parsed, when this instance parsed the same text
    /// lately.
    pub fn reuse_parsed(&self, request: &Request) -> Option<Reused> {
        if request.query.len() > PARSED_ONE {
            return None;
        }
        let (document, checked) = self
            .parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(request.query.as_str())
            .map(|k| (k.document.clone(), k.checked))?;
        let name = request.operation_name.as_deref();
        let parsed =
            if checked && fits(&document, name, &request.variables) { Parsed::Checked } else { Parsed::Unchecked };
        Some(Reused { document, parsed })
    }

    /// Notes that the kept document of `query` passed validation (its request was run).
    pub fn passed(&self, query: &str) {
        if let Some(kept) = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get_mut(query) {
            kept.checked = true;
        }
    }

    /// Keeps the parsed document of `request` (after its guards parsed it) for the next
    /// request with the same text; whether it is kept (and so may be marked [`passed`]).
    ///
    /// [`passed`]: Documents::passed
    pub fn keep_parsed(&self, request: &mut Request) -> bool {
        if request.query.len() > PARSED_ONE {
            return false;
        }
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if parsed.contains(request.query.as_str()) {
            return true;
        }
        let Ok(doc) = request.parsed_query() else { return false };
        let document = Arc::new(doc.clone());
        parsed.put(Arc::from(request.query.as_str()), Kept { document, checked: false });
        true
    }

    /// Only the documents of a manifest run.
    pub fn only(trusted: HashMap<String, Arc<str>>) -> Documents {
        Documents { only: true, trusted, ..Documents::open() }
    }

    /// Reads a manifest: Apollo's persisted query manifest (`{"format":
    /// "apollo-persisted-query-manifest", "operations": [{"id", "body", ...}]}`) or a plain
    /// object of hash to document (Relay's, made with `SHA256`). Each id must be its
    /// document's SHA-256 in hex (either case).
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn manifest(text: &str) -> Result<HashMap<String, Arc<str>>, String> {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let pairs: Vec<(String, String)> = match &json {
            serde_json::Value::Object(o) if o.contains_key("operations") => o["operations"]
                .as_array()
                .ok_or("`operations` is not a list")?
                .iter()
                .map(|op| {
                    let id = op.get("id").and_then(|v| v.as_str()).ok_or("an operation has no `id`")?;
                    let body = op.get("body").and_then(|v| v.as_str()).ok_or("an operation has no `body`")?;
                    Ok((id.to_string(), body.to_string()))
                })
                .collect::<Result<_, &str>>()?,
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("a document is not a string")?.to_string())))
                .collect::<Result<_, &str>>()?,
            _ => return Err("neither a manifest object nor an object of hash to document".into()),
        };
        let mut out = HashMap::new();
        for (id, body) in pairs {
            let id = id.to_ascii_lowercase();
            if hash(&body) != id {
                return Err(format!("the id {id} is not the SHA-256 of its document"));
            }
            out.insert(id, Arc::from(body));
        }
        if out.is_empty() {
            return Err("no documents".into());
        }
        Ok(out)
    }

    /// Whether only a manifest's documents run.
    pub fn trusted_only(&self) -> bool {
        self.only
    }

    /// The hash a request names, if any.
    fn named(request: &Request) -> Result<Option<String>, Refused> {
        let Some(pq) = request.extensions.get("persistedQuery") else { return Ok(None) };
        let Value::Object(pq) = pq else {
            return Err(refused("BAD_REQUEST", "extensions.persistedQuery must be an object"));
        };
        match pq.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            _ => return Err(refused("PERSISTED_QUERY_NOT_SUPPORTED", "only version 1 of persisted queries is known")),
        }
        match pq.get("sha256Hash") {
            Some(Value::String(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(h.to_ascii_lowercase()))
            }
            _ => Err(refused("BAD_REQUEST", "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits")),
        }
    }

    fn known(&self, hash: &str) -> Option<Arc<str>> {
        if let Some(d) = self.trusted.get(hash) {
            return Some(d.clone());
        }
        if self.only {
            return None;
        }
        self.seen.lock().ok()?.documents.get(hash).cloned()
    }

    /// Gives `request` its document: the one its hash names, or its own (checked against
    /// its hash, and kept if `learn`: a known caller's); in trusted-only mode, only a
    /// manifest's.
    ///
    /// # Errors
    /// The refusal to answer with, before anything runs.
    pub fn resolve(&self, request: &mut Request, learn: bool) -> Result<(), Refused> {
        let named = Documents::named(request)?;
        match (named, request.query.is_empty()) {
            (Some(h), true) => match self.known(&h) {
                Some(d) => {
                    request.query = d.to_string();
                    Ok(())
                }
                None if self.only => Err(refused(
                    "PERSISTED_QUERY_NOT_IN_LIST",
                    "this server runs only its registered documents, and this hash is not one",
                )),
                None => Err(refused("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")),
            },
            (Some(h), false) => {
                if hash(&request.query) != h {
                    return Err(refused(
                        "BAD_REQUEST",
                        "extensions.persistedQuery.sha256Hash is not the query's SHA-256",
                    ));
                }
                if self.only {
                    return self.trusted_or_refused(&h);
                }
                if learn && let Ok(mut seen) = self.seen.lock() {
                    seen.keep(h, &request.query);
                }
                Ok(())
            }
            (None, _) if self.only => self.trusted_or_refused(&hash(&request.query)),
            (None, _) => Ok(()),
        }
    }

    fn trusted_or_refused(&self, hash: &str) -> Result<(), Refused> {
        if self.trusted.contains_key(hash) {
            Ok(())
        } else {
            Err(refused("QUERY_NOT_IN_SAFELIST", "this server runs only its registered documents, and this is not one"))
        }
    }

    /// Whether `request` names its document by hash.
    pub fn names_by_hash(request: &Request) -> bool {
        request.extensions.contains_key("persistedQuery")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(query: &str, hash: Option<&str>) -> Request {
        let mut body = serde_json::json!({ "query": query });
        if let Some(h) = hash {
            body["extensions"] = serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": h}});
        }
        serde_json::from_value(body).expect("a request")
    }

    impl Documents {
        fn resolve_t(&self, r: &mut Request) -> Result<(), Refused> {
            self.resolve(r, true)
        }
    }

    #[test]
    fn only_a_known_caller_teaches_and_the_cache_is_bounded_by_bytes() {
        let docs = Documents::open();
        let q = "{ __typename }";
        assert_eq!(docs.resolve(&mut request(q, Some(&hash(q))), false), Ok(()));
        let code = docs.resolve(&mut request("", Some(&hash(q))), true).map_err(|e| e.code);
        assert_eq!(code, Err("PERSISTED_QUERY_NOT_FOUND"), "an anonymous caller's document is not kept");
        // 200 documents of 60 KB: the cache keeps what fits in its bytes, the newest.
        let big: Vec<String> = (0..200).map(|i| format!("{{ __typename }} # {i} {}", "x".repeat(60_000))).collect();
        for d in &big {
            assert_eq!(docs.resolve(&mut request(d, Some(&hash(d))), true), Ok(()));
        }
        let seen = docs.seen.lock().expect("lock");
        assert!(seen.bytes <= KEPT_BYTES && seen.bytes == seen.documents.iter().map(|(_, d)| d.len()).sum::<usize>());
        drop(seen);
        let last = big.last().expect("one");
        assert_eq!(docs.resolve(&mut request("", Some(&hash(last))), true), Ok(()));
        let first = docs.resolve(&mut request("", Some(&hash(&big[0]))), true).map_err(|e| e.code);
        assert_eq!(first, Err("PERSISTED_QUERY_NOT_FOUND"));
    }

    #[test]
    fn a_hash_is_learnt_from_its_document_then_names_it() {
        let docs = Documents::open();
        let q = "{ __typename }";
        let h = hash(q);
        let mut r = request("", Some(&h));
        assert_eq!(docs.resolve(&mut r, true).map_err(|e| e.code), Err("PERSISTED_QUERY_NOT_FOUND"));
        let mut r = request(q, Some(&h));
        assert_eq!(docs.resolve(&mut r, true), Ok(()));
        let mut r = request("", Some(&h.to_uppercase()));
        assert_eq!(docs.resolve(&mut r, true), Ok(()));
        assert_eq!(r.query, q);
        let mut r = request("{ me { id } }", Some(&h));
        assert_eq!(docs.resolve(&mut r, true).map_err(|e| e.code), Err("BAD_REQUEST"));
    }

    #[test]
    fn trusted_only_runs_the_manifest_and_learns_nothing() {
        let q = "{ __typename }";
        let manifest = serde_json::json!({"format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{"id": hash(q), "name": "T", "type": "query", "body": q}]});
        let docs = Documents::only(Documents::manifest(&manifest.to_string()).expect("manifest"));
        assert_eq!(docs.resolve_t(&mut request("", Some(&hash(q)))), Ok(()));
        assert_eq!(docs.resolve_t(&mut request(q, None)), Ok(()));
        let other = "{ me { id } }";
        assert_eq!(docs.resolve_t(&mut request(other, None)).map_err(|e| e.code), Err("QUERY_NOT_IN_SAFELIST"));
        assert_eq!(
            docs.resolve_t(&mut request(other, Some(&hash(other)))).map_err(|e| e.code),
            Err("QUERY_NOT_IN_SAFELIST")
        );
        assert_eq!(
            docs.resolve_t(&mut request("", Some(&hash(other)))).map_err(|e| e.code),
            Err("PERSISTED_QUERY_NOT_IN_LIST")
        );
    }

    #[test]
    fn a_passed_document_is_checked_with_variables_that_cannot_fail() {
        let docs = Documents::open();
        let kept = |q: &str, variables: serde_json::Value| {
            let mut r = request(q, None).variables(async_graphql::Variables::from_json(variables));
            let parsed = docs.reuse_parsed(&r).map_or(Parsed::Unchecked, |reused| reused.into_request(&mut r));
            docs.keep_parsed(&mut r);
            parsed
        };
        let one = "query One($id: ID!, $n: Int, $s: String!, $f: Float, $b: Boolean) { customer(id: $id) { id } }";
        let list = "query($ids: [ID!]!) { customers(ids: $ids) { id } }";
        let input = "query($f: CustomerFilter) { customers(filter: $f) { totalCount } }";
        let two = "query A { me { id } } query B { me { id } }";
        let good = json!({"id": "x", "n": 5, "s": "", "f": 1.5, "b": true});
        for q in ["{ me { id } }", one, list, input, two] {
            assert_eq!(kept(q, good.clone()), Parsed::Unchecked, "new: {q}");
            assert_eq!(kept(q, good.clone()), Parsed::Unchecked, "parsed, not yet validated: {q}");
            docs.passed(q);
        }
        assert_eq!(kept("{ me { id } }", json!({})), Parsed::Checked);
        assert_eq!(kept(one, good.clone()), Parsed::Checked);
        assert_eq!(kept(one, json!({"id": "y", "n": -3, "s": "z", "f": 2, "b": false})), Parsed::Checked);
        let named = |name: &str| {
            let mut r = request(one, None).variables(async_graphql::Variables::from_json(good.clone()));
            r = r.operation_name(name);
            docs.reuse_parsed(&r).map_or(Parsed::Unchecked, |reused| reused.parsed)
        };
        assert_eq!(named("One"), Parsed::Checked, "named as it is");
        assert_eq!(named("Other"), Parsed::Unchecked, "another name: left to async-graphql");
        let anonymous = "query($id: ID!) { customer(id: $id) { id } }";
        assert_eq!(kept(anonymous, good.clone()), Parsed::Unchecked);
        docs.passed(anonymous);
        let mut r = request(anonymous, None).variables(async_graphql::Variables::from_json(good.clone()));
        assert_eq!(docs.reuse_parsed(&r).map(|reused| reused.parsed), Some(Parsed::Checked));
        r = r.operation_name("Lookup");
        let reused = docs.reuse_parsed(&r).map(|reused| reused.parsed);
        assert_eq!(reused, Some(Parsed::Unchecked), "an anonymous operation named: left to async-graphql");
        for bad in [
            json!({"id": 7, "n": 5, "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "n": 3_000_000_000_i64, "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "n": 1.5, "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "n": "5", "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "n": null, "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "s": "", "f": 1.5, "b": true}),
            json!({"id": "x", "n": 5, "s": "", "f": "1", "b": true}),
            json!({"id": "x", "n": 5, "s": "", "f": 1.5, "b": 1}),
        ] {
            assert_eq!(kept(one, bad.clone()), Parsed::Unchecked, "validated again: {bad}");
        }
        assert_eq!(kept(list, json!({"ids": ["a"]})), Parsed::Unchecked, "a list");
        assert_eq!(kept(input, json!({"f": {}})), Parsed::Unchecked, "an input object");
        assert_eq!(kept(two, json!({})), Parsed::Unchecked, "two operations");
        docs.passed("{ unknown }");
        assert_eq!(kept("{ unknown }", json!({})), Parsed::Unchecked, "not kept when it passed: nothing to mark");
    }

    #[test]
    fn a_manifest_whose_ids_are_not_their_hashes_is_refused() {
        assert!(Documents::manifest(r#"{"0000": "{ __typename }"}"#).is_err());
        assert!(Documents::manifest("[]").is_err());
        let q = "{ __typename }";
        assert_eq!(Documents::manifest(&serde_json::json!({ hash(q): q }).to_string()).map(|m| m.len()), Ok(1));
    }

    #[test]
    fn a_bad_persisted_query_extension_is_a_bad_request() {
        let docs = Documents::open();
        let mut r: Request = serde_json::from_value(
            serde_json::json!({"query": "", "extensions": {"persistedQuery": {"version": 2, "sha256Hash": "ab"}}}),
        )
        .expect("a request");
        assert_eq!(docs.resolve(&mut r, true).map_err(|e| e.code), Err("PERSISTED_QUERY_NOT_SUPPORTED"));
        let mut r = request("", Some("xyz"));
        assert_eq!(docs.resolve(&mut r, true).map_err(|e| e.code), Err("BAD_REQUEST"));
    }
}
