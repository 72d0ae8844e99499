//! One catalogue per record: every way out of the server (GraphQL, the CSV export, the
//! audit trail, a webhook payload, the personal-data export) shows a field to a reader
//! exactly when the field's group is open to that reader, so no path tells what another
//! hides.
use crate::exports::{export, rows};
use crate::helpers::*;
use crate::webhooks::{Receiver, worker};
use serde_json::{Value, json};

const SET_GRANT: &str = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){role}}";

/// Gender is base profile data (seed 001 and 004 list it with the name and the phone
/// number; the personal-details group is the birthday, the ID number and the soft
/// profile): a reader of the row reads it everywhere, while the birthday beside it stays
/// hidden everywhere from a reader without the personal-details grant.
#[tokio::test]
async fn gender_reads_the_same_on_every_path() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, manager) = app.create_user("manager@example.com", "MANAGER", &east).await;
    // Managers lose the personal-details grant; they keep the audit and personal-data ones.
    let revoke = json!({"role": "MANAGER", "resource": "PERSONAL_DETAILS", "action": "READ", "scope": "NONE"});
    app.ok(&admin, SET_GRANT, json!({"i": revoke})).await;

    // A partner key that reads the east's customers, without personal details.
    let key = app
        .ok(
            &admin,
            "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret}}",
            json!({"i": {"name": "ERP", "departmentId": east, "grants": [
                {"resource": "CUSTOMER", "action": "READ", "scope": "DEPARTMENT"}]}}),
        )
        .await;
    let key = key["createApiKey"]["secret"].as_str().unwrap().to_string();
    let receiver = Receiver::start().await;
    app.ok(
        &key,
        "mutation($i:CreateWebhookInput!){createWebhook(input:$i){secret}}",
        json!({"i": {"name": "ERP", "url": receiver.url, "events": ["CUSTOMER_CREATED"]}}),
    )
    .await;

    let c = app
        .create_customer(
            &rep,
            json!({"name": "王女士", "kind": "INDIVIDUAL", "gender": "FEMALE", "birthday": "1985-03-20",
                   "phone": "13800000077"}),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();

    // GraphQL
    let data = app.ok(&manager, "query($id:ID!){customer(id:$id){gender birthday}}", json!({"id": id})).await;
    assert_eq!(data["customer"], json!({"gender": "FEMALE", "birthday": null}), "the manager reads the row");
    let data = app.ok(&key, "query($id:ID!){customer(id:$id){gender birthday}}", json!({"id": id})).await;
    assert_eq!(data["customer"], json!({"gender": "FEMALE", "birthday": null}), "the key reads the row");

    // The CSV export
    let (status, text) = export(&app, Some(&manager), "/exports/customers.csv").await;
    assert_eq!(status, 200, "{text}");
    let exported = rows(&text);
    let row = exported.iter().find(|r| r["id"] == id).expect("the customer is exported");
    assert_eq!(row["gender"], "FEMALE", "{row:?}");
    assert_ne!(row["birthday"], "1985-03-20", "{row:?}");

    // The audit trail
    let log = "query($r:ID){auditLog(filter:{recordId:$r}){edges{node{action newValues}}}}";
    let trail = app.ok(&manager, log, json!({"r": id})).await;
    let created = trail["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["action"] == "create")
        .expect("the creation is audited")
        .clone();
    assert_eq!(created["newValues"]["gender"], "FEMALE", "{created}");
    assert_eq!(created["newValues"]["birthday"], "[hidden]", "{created}");

    // The personal-data export
    let person = app.ok(&manager, "mutation($c:ID!){exportPersonalData(customerId:$c)}", json!({"c": id})).await;
    let person = &person["exportPersonalData"];
    assert_eq!(person["customer"]["gender"], "FEMALE", "{person}");
    assert_eq!(person["customer"]["birthday"], "[hidden]", "{person}");

    // A webhook payload
    worker(&app).tick(chrono::Utc::now()).await.unwrap();
    let got = receiver.wait_for(1).await;
    let payload: Value = got[0].json();
    let customer = &payload["data"]["customer"];
    assert_eq!(customer["id"], id.as_str());
    assert_eq!(customer["gender"], "FEMALE", "{payload}");
    assert_eq!(customer["birthday"], Value::Null, "{payload}");
}
