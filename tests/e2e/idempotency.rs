//! `Idempotency-Key` on mutations: a retry with the same body gets the first answer
//! without writing again, another body is a CONFLICT, keys are per caller.
use crate::helpers::*;
use serde_json::{Value, json};

const CREATE: &str = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id name}}";
const COUNT: &str = "{customers{totalCount}}";

/// A GraphQL POST with an Idempotency-Key; (status, replayed header, body).
async fn post(app: &TestApp, token: &str, key: &str, query: &str, variables: Value) -> (u16, bool, Value) {
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, replayed, resp.json().await.unwrap())
}

async fn count(app: &TestApp, token: &str) -> i64 {
    app.ok(token, COUNT, json!({})).await["customers"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn a_retried_mutation_writes_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let lead = json!({"i": {"name": "重试公司", "kind": "ORGANIZATION"}});

    // The first request runs; its retry gets the same answer, marked, and writes nothing.
    let (status, replayed, first) = post(&app, &admin, "order-1", CREATE, lead.clone()).await;
    assert_eq!((status, replayed), (200, false), "{first}");
    assert!(first["data"]["createCustomer"]["id"].is_string(), "{first}");
    let (status, replayed, again) = post(&app, &admin, "order-1", CREATE, lead.clone()).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first);
    assert_eq!(count(&app, &admin).await, 1);
    // An error answer is kept too: the same duplicate again, not a new attempt.
    let (_, _, dup) = post(&app, &admin, "order-2", CREATE, lead.clone()).await;
    assert_eq!(code(&dup), "DUPLICATE", "{dup}");
    let (_, replayed, dup_again) = post(&app, &admin, "order-2", CREATE, lead.clone()).await;
    assert!(replayed);
    assert_eq!(dup_again, dup);

    // The same key with another body: CONFLICT (409), nothing written.
    let other = json!({"i": {"name": "另一家", "kind": "ORGANIZATION"}});
    let (status, _, resp) = post(&app, &admin, "order-1", CREATE, other.clone()).await;
    assert_eq!((status, code(&resp)), (409, "CONFLICT"), "{resp}");
    assert_eq!(count(&app, &admin).await, 1);

    // Keys are per caller: another user's "order-1" is its own.
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let (status, replayed, theirs) = post(&app, &rep, "order-1", CREATE, other.clone()).await;
    assert_eq!((status, replayed), (200, false), "{theirs}");
    assert_eq!(theirs["data"]["createCustomer"]["name"], "另一家");

    // Requests racing with one key: one runs, the others replay it or are told it runs.
    let race = json!({"i": {"name": "并发公司", "kind": "ORGANIZATION"}});
    let attempts = futures::future::join_all((0..6).map(|_| post(&app, &admin, "order-3", CREATE, race.clone()))).await;
    let created: Vec<&Value> = attempts.iter().filter(|(s, r, _)| *s == 200 && !r).map(|(_, _, b)| b).collect();
    assert_eq!(created.len(), 1, "{attempts:?}");
    for (status, replayed, body) in &attempts {
        assert!(
            (*status == 200 && (!replayed || body == created[0])) || (*status == 409 && code(body) == "CONFLICT"),
            "{status} {body}"
        );
    }
    let filter = json!({"f": {"name": {"eq": "并发公司"}}});
    let found = app.ok(&admin, "query($f:CustomerFilter){customers(filter:$f){totalCount}}", filter).await;
    assert_eq!(found["customers"]["totalCount"], 1);

    // A request refused before it ran leaves the key free; a bad key is refused.
    let (status, _, resp) = post(&app, &admin, "order-4", "mutation{", json!({})).await;
    assert_eq!(status, 200, "{resp}");
    let (status, replayed, resp) = post(&app, &admin, "order-4", CREATE, race.clone()).await;
    assert_eq!((status, replayed, code(&resp)), (200, false, "DUPLICATE"), "{resp}");
    for bad in ["", &"k".repeat(256), "has space"] {
        let (status, _, resp) = post(&app, &admin, bad, CREATE, race.clone()).await;
        assert_eq!((status, code(&resp)), (400, "BAD_REQUEST"), "{bad:?}: {resp}");
    }

    // After 24 hours a key starts over (the claim as the scheduler's clock would see it).
    let admin_id = app.ok(&admin, "{me{id}}", json!({})).await["me"]["id"].as_str().unwrap().parse().unwrap();
    let body_hash = "0".repeat(64);
    let later = chrono::Utc::now() + chrono::Duration::hours(25);
    let claim = api::service::idempotency::claim(&app.db, admin_id, "order-1", &body_hash, later).await.unwrap();
    assert_eq!(claim, api::service::idempotency::Claim::Fresh);
    assert_eq!(api::service::idempotency::prune(&app.db, later + chrono::Duration::hours(25)).await.unwrap(), 5);
}
