//! Duplicate candidates before entry: ranked matches, and the ownership rule for records
//! outside the caller's scope.
use crate::helpers::*;
use serde_json::{Value, json};

const CHECK: &str = "query($i:DuplicateCheckInput!){duplicateCandidates(input:$i){score reasons department \
                     customer{id name}}}";

async fn check(app: &TestApp, token: &str, input: Value) -> Vec<Value> {
    app.ok(token, CHECK, json!({"i": input})).await["duplicateCandidates"].as_array().unwrap().clone()
}

#[tokio::test]
async fn candidates_rank_matches_and_hide_what_the_caller_may_not_read() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("west@example.com", "SALES", &west).await;
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    let org = app
        .create_customer(
            &rep,
            json!({"name": "上海恒达贸易有限公司", "kind": "ORGANIZATION", "phone": "021-61230000",
                                      "email": "info@hengda.example"}),
        )
        .await;
    let person = app
        .create_customer(&rep, json!({"name": "张伟", "kind": "INDIVIDUAL", "phone": "13800001111", "region": "上海"}))
        .await;
    app.ok(
        &rep,
        "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
        json!({"i": {"customerId": org["id"], "name": "李采购", "mobile": "139 0000 2222"}}),
    )
    .await;

    // The same phone in another spelling: the key a save would refuse.
    let same = check(&app, &rep, json!({"kind": "INDIVIDUAL", "phone": "+86 138-0000-1111"})).await;
    assert_eq!(same.len(), 1);
    assert_eq!(same[0]["reasons"], json!(["SAME_PHONE"]));
    assert_eq!(same[0]["score"], 1.0);
    assert_eq!(same[0]["customer"]["id"], person["id"]);
    assert_eq!(same[0]["department"], "华东");

    // A similar organization name, and the same e-mail on top.
    let near = check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "恒达贸易(上海)有限公司"})).await;
    assert_eq!(near.len(), 1, "{near:?}");
    assert_eq!(near[0]["reasons"], json!(["SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(near[0]["customer"]["name"], "上海恒达贸易有限公司");
    let both =
        check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "恒达贸易(上海)", "email": "INFO@hengda.example"}))
            .await;
    assert_eq!(both[0]["reasons"], json!(["SAME_EMAIL", "SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(both[0]["score"], 1.0);
    // Unrelated names are not candidates.
    assert!(check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "北京华联商厦"})).await.is_empty());

    // People share names: the same name counts with the same region or number block.
    let namesake = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "region": "上海"})).await;
    assert_eq!(namesake[0]["reasons"], json!(["SAME_NAME_AND_REGION"]));
    let block = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "phone": "13800001199"})).await;
    assert_eq!(block[0]["reasons"], json!(["SAME_NAME_AND_PHONE_PREFIX"]));
    assert!(check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "region": "北京"})).await.is_empty());

    // The phone of a contact of another customer.
    let via = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "李先生", "phone": "13900002222"})).await;
    assert_eq!(via[0]["reasons"], json!(["CONTACT_PHONE"]));
    assert_eq!(via[0]["customer"]["id"], org["id"]);

    // Editing a record does not find itself.
    let own = check(&app, &rep, json!({"kind": "INDIVIDUAL", "phone": "13800001111", "excludeId": person["id"]})).await;
    assert!(own.is_empty());

    // Outside the caller's scope: that it exists and who owns it, nothing of the record.
    let hidden = app
        .gql(
            Some(&other),
            CHECK,
            json!({"i": {"kind": "ORGANIZATION", "name": "恒达贸易(上海)有限公司", "phone": "021 6123 0000"}}),
        )
        .await;
    let c = &hidden["data"]["duplicateCandidates"][0];
    assert_eq!(c["reasons"], json!(["SAME_PHONE", "SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(c["customer"], Value::Null);
    assert_eq!(c["department"], "华东");
    let text = hidden.to_string();
    assert!(!text.contains("上海恒达贸易") && !text.contains(org["id"].as_str().unwrap()), "{text}");

    // A role that neither enters nor reads customers may not probe.
    let resp = app.gql(Some(&analyst), CHECK, json!({"i": {"kind": "INDIVIDUAL", "phone": "13800001111"}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
}
