//! Persisted and trusted documents: Apollo's automatic persisted queries, and a server
//! that runs only the documents of its manifest (over HTTP and over the WebSocket).
use crate::helpers::*;
use crate::ws::{next, ready, send};
use serde_json::{Value, json};

const LOGIN: &str = "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}";
const TYPENAME: &str = "{__typename}";
const CUSTOMERS: &str = "query{customers(first:1){totalCount}}";

/// POSTs a request body as it is; returns the status and the JSON answer.
async fn post(app: &TestApp, body: Value, accept_graphql_json: bool) -> (u16, Value) {
    let mut req = app.client.post(app.url("/graphql")).bearer_auth(&app.admin_token).json(&body);
    if accept_graphql_json {
        req = req.header("accept", "application/graphql-response+json");
    }
    let resp = req.send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.expect("json body"))
}

fn persisted(hash: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": hash}})
}

#[tokio::test]
async fn a_query_is_sent_once_then_named_by_its_hash() {
    let app = TestApp::spawn().await;
    let hash = api::documents::hash(CUSTOMERS);

    // Not seen yet: the client is told to send the document.
    let (status, resp) = post(&app, json!({"extensions": persisted(&hash)}), false).await;
    assert_eq!((status, code(&resp)), (200, "PERSISTED_QUERY_NOT_FOUND"), "{resp}");
    assert_eq!(resp["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(resp.get("data").is_none());

    // Sent with its hash: it runs and is kept; then the hash alone runs it.
    let (_, resp) = post(&app, json!({"query": CUSTOMERS, "extensions": persisted(&hash)}), false).await;
    assert_eq!(resp["data"]["customers"]["totalCount"], 0, "{resp}");
    let (_, resp) = post(&app, json!({"extensions": persisted(&hash)}), false).await;
    assert_eq!(resp["data"]["customers"]["totalCount"], 0, "{resp}");

    // A hash that is not the document's is refused, and does not replace the kept one.
    let (status, resp) = post(&app, json!({"query": TYPENAME, "extensions": persisted(&hash)}), true).await;
    assert_eq!((status, code(&resp)), (400, "BAD_REQUEST"), "{resp}");
    let (_, resp) = post(&app, json!({"extensions": persisted(&hash)}), false).await;
    assert_eq!(resp["data"]["customers"]["totalCount"], 0, "{resp}");

    // A malformed extension is a clear refusal, never a run of something else.
    let (_, resp) =
        post(&app, json!({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": hash}}}), false).await;
    assert_eq!(code(&resp), "PERSISTED_QUERY_NOT_SUPPORTED", "{resp}");
    let (_, resp) =
        post(&app, json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "zz"}}}), false).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    let (_, resp) = post(&app, json!({"extensions": {"persistedQuery": "x"}}), false).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
}

#[tokio::test]
async fn a_mutation_named_by_its_hash_is_kept_for_its_idempotency_key() {
    let app = &TestApp::spawn().await;
    let create = "mutation{createCustomer(input:{name:\"持久\",kind:INDIVIDUAL}){id}}";
    let hash = api::documents::hash(create);
    let send = |key: &'static str, body: Value| async move {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        (replayed, resp.json::<Value>().await.expect("json"))
    };
    let whole = json!({"query": create, "extensions": persisted(&hash)});
    let named = json!({"extensions": persisted(&hash)});
    // Sent whole with its hash, then retried by its hash alone (Apollo's link after a
    // lost answer): one request, one customer, the kept answer.
    let (replayed, first) = send("create-1", whole).await;
    assert!(!replayed && first["data"]["createCustomer"]["id"].is_string(), "{first}");
    let (replayed, retry) = send("create-1", named.clone()).await;
    assert!(replayed, "{retry}");
    assert_eq!(first["data"], retry["data"]);
    // Named by its hash alone under a new key, it is still a mutation: kept, replayed.
    let (replayed, second) = send("create-2", named.clone()).await;
    assert!(!replayed);
    let (replayed, again) = send("create-2", named).await;
    assert!(replayed);
    assert_eq!(second["data"], again["data"]);
    assert_ne!(first["data"], second["data"]);
    let total = app.ok(&app.admin_token, "{customers{totalCount}}", json!({})).await;
    assert_eq!(total["customers"]["totalCount"], 2, "two customers, not four");
}

#[tokio::test]
async fn an_anonymous_caller_teaches_no_hash() {
    let app = &TestApp::spawn().await;
    let hash = api::documents::hash(TYPENAME);
    let anonymous = |body: Value| async move {
        let resp = app.client.post(app.url("/graphql")).json(&body).send().await.expect("request");
        resp.json::<Value>().await.expect("json")
    };
    let resp = anonymous(json!({"query": TYPENAME, "extensions": persisted(&hash)})).await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");
    let resp = anonymous(json!({"extensions": persisted(&hash)})).await;
    assert_eq!(code(&resp), "PERSISTED_QUERY_NOT_FOUND", "{resp}");
    let (_, resp) = post(app, json!({"query": TYPENAME, "extensions": persisted(&hash)}), false).await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");
    let resp = anonymous(json!({"extensions": persisted(&hash)})).await;
    assert_eq!(resp["data"]["__typename"], "Query", "a known caller's document serves everyone: {resp}");
}

#[tokio::test]
async fn a_trusted_only_server_runs_its_manifest_and_nothing_else() {
    let manifest: std::collections::HashMap<String, std::sync::Arc<str>> =
        [LOGIN, TYPENAME].into_iter().map(|d| (api::documents::hash(d), std::sync::Arc::from(d))).collect();
    let app = TestApp::spawn_with(|c| c.trusted_documents = Some(std::sync::Arc::new(manifest))).await;

    // The registered documents, by hash or whole (the helpers logged in whole).
    let (_, resp) = post(&app, json!({"extensions": persisted(&api::documents::hash(TYPENAME))}), false).await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");
    let (_, resp) = post(&app, json!({"query": TYPENAME}), false).await;
    assert_eq!(resp["data"]["__typename"], "Query", "{resp}");

    // Anything else, however it is sent, runs nothing and is not learnt.
    let hash = api::documents::hash(CUSTOMERS);
    let (status, resp) = post(&app, json!({"query": CUSTOMERS}), true).await;
    assert_eq!((status, code(&resp)), (400, "QUERY_NOT_IN_SAFELIST"), "{resp}");
    let (_, resp) = post(&app, json!({"query": CUSTOMERS, "extensions": persisted(&hash)}), false).await;
    assert_eq!(code(&resp), "QUERY_NOT_IN_SAFELIST", "{resp}");
    let (_, resp) = post(&app, json!({"extensions": persisted(&hash)}), false).await;
    assert_eq!(code(&resp), "PERSISTED_QUERY_NOT_IN_LIST", "{resp}");
    assert!(resp.get("data").is_none());

    // Over the WebSocket too.
    let mut ws = ready(app.addr, &app.admin_token).await;
    send(&mut ws, json!({"id": "1", "type": "subscribe", "payload": {"query": CUSTOMERS}})).await;
    let answer = next(&mut ws).await.expect("an answer");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["payload"][0]["extensions"]["code"], "QUERY_NOT_IN_SAFELIST", "{answer}");
    send(
        &mut ws,
        json!({"id": "2", "type": "subscribe", "payload": {"extensions": persisted(&api::documents::hash(TYPENAME))}}),
    )
    .await;
    let answer = next(&mut ws).await.expect("an answer");
    assert_eq!(answer["payload"]["data"]["__typename"], "Query", "{answer}");
}

#[test]
fn the_server_will_not_start_trusted_only_without_a_good_manifest() {
    let settings = |manifest: Option<&std::path::Path>| {
        let mut s = api::settings::Settings::from_env().expect("settings");
        s.trusted_documents = "only".into();
        s.trusted_documents_manifest = manifest.map(|p| p.to_path_buf());
        s.resolve()
    };
    let err = settings(None).expect_err("refused");
    assert!(err.contains("CRM_TRUSTED_DOCUMENTS_MANIFEST"), "{err}");
    let dir = std::env::temp_dir().join(format!("crm-manifest-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, json!({"0123": TYPENAME}).to_string()).unwrap();
    let err = settings(Some(&bad)).expect_err("refused");
    assert!(err.contains("not the SHA-256"), "{err}");
    let good = dir.join("good.json");
    let ops = json!({"format": "apollo-persisted-query-manifest", "version": 1,
        "operations": [{"id": api::documents::hash(TYPENAME), "name": "T", "type": "query", "body": TYPENAME}]});
    std::fs::write(&good, ops.to_string()).unwrap();
    let config = settings(Some(&good)).expect("a good manifest");
    assert_eq!(config.trusted_documents.map(|m| m.len()), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A document that passed validation once runs without the validation rules next time;
/// one that failed is validated (and refused) every time, and one with variables is
/// validated with each request's.
#[tokio::test]
async fn a_document_is_validated_until_it_passes_and_with_every_variable() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        let (status, resp) = post(&app, json!({"query": CUSTOMERS}), false).await;
        assert_eq!((status, &resp["data"]["customers"]["totalCount"]), (200, &json!(0)), "{resp}");
        for bad in ["{customers(first:\"x\"){totalCount}}", "{customers{nope}}", "{customers{totalCount}", "{me{id}"] {
            let (status, resp) = post(&app, json!({"query": bad}), true).await;
            assert_eq!(status, 400, "{bad}: {resp}");
            assert!(resp.get("data").is_none(), "{bad}: {resp}");
            assert_eq!(code(&resp), "BAD_REQUEST", "{bad}: {resp}");
        }
    }
    let q = "query($n:Int){customers(first:$n){totalCount}}";
    let (_, resp) = post(&app, json!({"query": q, "variables": {"n": 5}}), false).await;
    assert_eq!(resp["data"]["customers"]["totalCount"], 0, "{resp}");
    let (status, resp) = post(&app, json!({"query": q, "variables": {"n": "five"}}), true).await;
    assert_eq!(status, 400, "the variable is checked on every request: {resp}");
    assert!(resp.get("data").is_none(), "{resp}");
}
