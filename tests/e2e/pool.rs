//! The public pool and ownership limits: how many customers a rep may hold.
use crate::helpers::*;
use serde_json::json;

const POLICY: &str = "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays
    minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays} dueHourUtc
    holdingCaps{role max}}}";

#[tokio::test]
async fn a_rep_holds_no_more_customers_than_its_cap() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("华东", None).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let mut input = app.ok(&admin, POLICY, json!({})).await["carePolicy"].clone();
    let version = input.as_object_mut().unwrap().remove("version").unwrap();
    assert_eq!(input["holdingCaps"], json!([]), "no cap by default");
    input["holdingCaps"] = json!([{"role": "SALES", "max": 2}]);
    let update = "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){holdingCaps{role max}}}";
    let mut bad = input.clone();
    bad["holdingCaps"] = json!([{"role": "SALES", "max": 0}, {"role": "SALES", "max": 5}]);
    let resp = app.gql(Some(&admin), update, json!({"i": bad, "v": version})).await;
    assert_eq!(invalid_fields(&resp), ["holdingCaps[0].max", "holdingCaps[1].role"], "{resp}");
    let saved = app.ok(&admin, update, json!({"i": input, "v": version})).await;
    assert_eq!(saved["updateCarePolicy"]["holdingCaps"], json!([{"role": "SALES", "max": 2}]));

    // Creating: two, then no more (one by one or in a batch).
    let create = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}";
    let first = app.create_customer(&rep, json!({"name": "一号", "kind": "ORGANIZATION"})).await;
    app.create_customer(&rep, json!({"name": "二号", "kind": "ORGANIZATION"})).await;
    let resp = app.gql(Some(&rep), create, json!({"i": {"name": "三号", "kind": "ORGANIZATION"}})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    let bulk = "mutation($i:[CreateCustomerInput!]!){createCustomers(inputs:$i){outcome error{code}}}";
    let data = app.ok(&rep, bulk, json!({"i": [{"name": "四号", "kind": "ORGANIZATION"}]})).await;
    assert_eq!(data["createCustomers"], json!([{"outcome": "FAILED", "error": {"code": "CONFLICT"}}]));

    // Claiming from the pool and being assigned one: refused at the cap too.
    let pooled = app.create_customer(&admin, json!({"name": "公海客户", "kind": "ORGANIZATION"})).await;
    let assign = "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){ownerId}}";
    let resp = app.gql(Some(&admin), assign, json!({"id": pooled["id"], "o": rep_id})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    // (Into the rep's department's pool: assign to a colleague there, then release.)
    let (peer_id, _) = app.create_user("peer@example.com", "SALES", &dept).await;
    app.ok(&admin, assign, json!({"id": pooled["id"], "o": peer_id})).await;
    app.ok(&admin, assign, json!({"id": pooled["id"], "o": null})).await;
    let claim = "mutation($id:ID!){claimCustomer(id:$id){ownerId}}";
    let resp = app.gql(Some(&rep), claim, json!({"id": pooled["id"]})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    // One returned to the pool makes room.
    app.ok(&admin, assign, json!({"id": first["id"], "o": null})).await;
    let data = app.ok(&rep, claim, json!({"id": pooled["id"]})).await;
    assert_eq!(data["claimCustomer"]["ownerId"], json!(rep_id));
    // Writes racing for the last place: one takes it.
    app.ok(&admin, assign, json!({"id": pooled["id"], "o": null})).await;
    let racers = futures::future::join_all(
        (0..5).map(|n| app.gql(Some(&rep), create, json!({"i": {"name": format!("抢{n}"), "kind": "ORGANIZATION"}}))),
    )
    .await;
    let won = racers.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(won, 1, "{racers:?}");
    assert!(racers.iter().filter(|r| r.get("errors").is_some()).all(|r| code(r) == "CONFLICT"), "{racers:?}");
    // Other roles are not capped.
    let (_, manager) = app.create_user("boss@example.com", "MANAGER", &dept).await;
    for n in 0..3 {
        app.create_customer(&manager, json!({"name": format!("经理客户{n}"), "kind": "ORGANIZATION"})).await;
    }
}

#[tokio::test]
async fn a_restore_respects_the_holding_cap() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let mut input = app.ok(&admin, POLICY, json!({})).await["carePolicy"].clone();
    let version = input.as_object_mut().unwrap().remove("version").unwrap();
    input["holdingCaps"] = json!([{"role": "SALES", "max": 1}]);
    let update = "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){version}}";
    app.ok(&admin, update, json!({"i": input, "v": version})).await;
    let gone = app.create_customer(&rep, json!({"name": "删了的", "kind": "ORGANIZATION"})).await;
    app.ok(&admin, "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": gone["id"]})).await;
    app.create_customer(&rep, json!({"name": "新的", "kind": "ORGANIZATION"})).await;
    let resp = app.gql(Some(&admin), "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": gone["id"]})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("may hold 1"), "{resp}");
}
