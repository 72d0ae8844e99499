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
    let claim =
        service::kernel::idempotency::claim(&app.db, &app.state.privacy.keys, admin_id, "order-1", &body_hash, later)
            .await
            .unwrap();
    assert_eq!(claim, service::kernel::idempotency::Claim::Fresh);
    assert_eq!(service::kernel::idempotency::prune(&app.db, later + chrono::Duration::hours(25)).await.unwrap(), 5);
}

/// What a review found: answers kept in plain text and past an erasure, queries kept,
/// a client that gave up leaving its key stuck while half its batch was written.
#[tokio::test]
async fn kept_answers_are_sealed_forgotten_on_erasure_and_outlive_their_client() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let create = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id name address}}";
    let person = json!({"i": {"name": "隐私张三", "kind": "INDIVIDUAL", "address": "杭州市西湖区秘密路1号"}});
    let (_, _, first) = post(&app, &admin, "privacy-1", create, person.clone()).await;
    let id = first["data"]["createCustomer"]["id"].clone();
    let backend = app.db.get_database_backend();
    let stored =
        app.db.query_all_raw(Statement::from_string(backend, "SELECT response FROM idempotency_key")).await.unwrap();
    assert_eq!(stored.len(), 1);
    let text: String = stored[0].try_get("", "response").unwrap();
    assert!(!text.contains("秘密路") && !text.contains("隐私张三"), "sealed at rest: {text}");
    let (_, replayed, again) = post(&app, &admin, "privacy-1", create, person.clone()).await;
    assert!(replayed);
    assert_eq!(again, first);
    // Erased: the kept answer goes; the retry is told its request ran, nothing runs.
    let erase = "mutation($c:ID!,$r:String!){erasePersonalData(customerId:$c, reason:$r){erasedAt}}";
    app.ok(&admin, erase, json!({"c": id, "r": "本人书面要求删除"})).await;
    let (status, _, resp) = post(&app, &admin, "privacy-1", create, person.clone()).await;
    assert_eq!((status, code(&resp)), (409, "CONFLICT"), "{resp}");
    assert!(!resp.to_string().contains("秘密路"), "{resp}");

    // Queries are not kept (a replay would be stale).
    let (_, _, _) = post(&app, &admin, "query-1", "{customers{totalCount}}", json!({})).await;
    let (_, replayed, _) = post(&app, &admin, "query-1", "{customers{totalCount}}", json!({})).await;
    assert!(!replayed);

    // A client that leaves at once: the batch still runs to its end, and the retry gets
    // its answer.
    let records: Vec<Value> = (0..60).map(|i| json!({"name": format!("批量{i}"), "kind": "INDIVIDUAL"})).collect();
    let bulk = "mutation($i:[CreateCustomerInput!]!){createCustomers(inputs:$i){outcome}}";
    let body = json!({"query": bulk, "variables": {"i": records}}).to_string();
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nIdempotency-Key: leave-1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    } // dropped: the client is gone
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        let (status, replayed, resp) = post(&app, &admin, "leave-1", bulk, json!({"i": records})).await;
        if status == 200 {
            assert!(replayed, "the retry must not run again: {resp}");
            break resp;
        }
        assert_eq!((status, code(&resp)), (409, "CONFLICT"), "still running: {resp}");
        assert!(std::time::Instant::now() < deadline, "the first request never finished");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(answer["data"]["createCustomers"].as_array().unwrap().len(), 60);
    let filter = json!({"f": {"name": {"contains": "批量"}}});
    let found = app.ok(&admin, "query($f:CustomerFilter){customers(filter:$f){totalCount}}", filter).await;
    assert_eq!(found["customers"]["totalCount"], 60);
}
