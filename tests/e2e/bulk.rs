//! Bulk writes for partners: createCustomers / upsertCustomers of up to 100 records, a
//! transaction and a result per record.
use crate::helpers::*;
use serde_json::{Value, json};

const CREATE: &str = "mutation($i:[CreateCustomerInput!]!){createCustomers(inputs:$i){index outcome
    customer{id name region} error{code message fields{field message} department}}}";
const UPSERT: &str = "mutation($i:[CreateCustomerInput!]!){upsertCustomers(inputs:$i){index outcome
    customer{id name region version} error{code message fields{field message} department}}}";

fn outcomes(data: &Value, field: &str) -> Vec<String> {
    data[field].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn bulk_writes_give_a_result_per_record() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let held =
        app.create_customer(&admin, json!({"name": "总部客户", "kind": "ORGANIZATION", "phone": "13800000001"})).await;

    // One bad record does not sink the batch; each says what became of it, in order.
    let batch = json!([
        {"name": "甲公司", "kind": "ORGANIZATION", "phone": "13900000001"},
        {"name": "张三", "kind": "INDIVIDUAL", "email": "zhang@example.com"},
        {"name": "冒名", "kind": "ORGANIZATION", "phone": "+86 138 0000 0001"},
        {"name": "坏数据", "kind": "INDIVIDUAL", "phone": "12", "email": "not-mail"}
    ]);
    let data = app.ok(&rep, CREATE, json!({"i": batch})).await;
    assert_eq!(outcomes(&data, "createCustomers"), ["CREATED", "CREATED", "DUPLICATE", "INVALID"], "{data}");
    let results = &data["createCustomers"];
    assert_eq!(results[2]["error"]["code"], "DUPLICATE");
    assert!(results[2]["error"]["department"].is_string(), "staff learn the department: {data}");
    assert_eq!(results[2]["customer"], Value::Null);
    let fields: Vec<&str> =
        results[3]["error"]["fields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["phone", "email"], "{data}");
    let count = app.ok(&admin, "{customers{totalCount}}", json!({})).await["customers"]["totalCount"].clone();
    assert_eq!(count, 3);

    // Upsert by natural keys: updated, unchanged, created, someone else's, a kind that
    // does not match.
    let ours = results[0]["customer"]["id"].clone();
    let batch = json!([
        {"name": "甲公司", "kind": "ORGANIZATION", "phone": "139 0000 0001", "region": "杭州"},
        {"name": "甲公司", "kind": "ORGANIZATION", "region": "杭州"},
        {"name": "乙公司", "kind": "ORGANIZATION", "region": "苏州"},
        {"name": "总部客户", "kind": "ORGANIZATION", "region": "北京"},
        {"name": "张三", "kind": "ORGANIZATION", "email": "ZHANG@example.com"}
    ]);
    let data = app.ok(&rep, UPSERT, json!({"i": batch})).await;
    assert_eq!(
        outcomes(&data, "upsertCustomers"),
        ["UPDATED", "UNCHANGED", "CREATED", "DUPLICATE", "INVALID"],
        "{data}"
    );
    let results = &data["upsertCustomers"];
    assert_eq!(results[0]["customer"]["id"], ours);
    assert_eq!(results[0]["customer"]["region"], "杭州");
    assert_eq!((results[1]["customer"]["id"].clone(), results[1]["customer"]["version"].clone()), (ours, json!(2)));
    assert!(results[3]["error"]["message"].as_str().unwrap().contains("department"), "{data}");
    assert_eq!(results[4]["error"]["fields"][0]["field"], "kind", "{data}");
    let admins = app.ok(&admin, "query($id:ID!){customer(id:$id){region version}}", json!({"id": held["id"]})).await;
    assert_eq!(admins["customer"], json!({"region": null, "version": 1}), "someone else's record is never overwritten");

    // A partner's key learns only that the customer exists.
    let key = "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret}}";
    let made = app.ok(&admin, key, json!({"i": {"name": "合作伙伴", "role": "INTEGRATION"}})).await;
    let partner = made["createApiKey"]["secret"].as_str().unwrap().to_string();
    let data = app.ok(&partner, UPSERT, json!({"i": [{"name": "总部客户", "kind": "ORGANIZATION"}]})).await;
    assert_eq!(outcomes(&data, "upsertCustomers"), ["DUPLICATE"]);
    assert_eq!(data["upsertCustomers"][0]["error"]["message"], "matches a customer you may not change");
    // Its own leads sent again (the partner guide's example run twice): UNCHANGED, not
    // DUPLICATE, though the key may create and read but not update; a change is refused.
    let lead = json!([{"name": "甲公司线索", "kind": "ORGANIZATION", "phone": "13900000077", "region": "杭州"}]);
    let first = app.ok(&partner, UPSERT, json!({"i": lead})).await;
    assert_eq!(outcomes(&first, "upsertCustomers"), ["CREATED"], "{first}");
    let again = app.ok(&partner, UPSERT, json!({"i": lead})).await;
    assert_eq!(outcomes(&again, "upsertCustomers"), ["UNCHANGED"], "{again}");
    assert_eq!(again["upsertCustomers"][0]["customer"]["id"], first["upsertCustomers"][0]["customer"]["id"]);
    let moved = json!([{"name": "甲公司线索", "kind": "ORGANIZATION", "phone": "13900000077", "region": "苏州"}]);
    let changed = app.ok(&partner, UPSERT, json!({"i": moved})).await;
    assert_eq!(outcomes(&changed, "upsertCustomers"), ["DUPLICATE"], "{changed}");

    // Batches hold 1 to 100 records; a larger one writes nothing.
    let many: Vec<Value> = (0..101).map(|i| json!({"name": format!("批量{i}"), "kind": "INDIVIDUAL"})).collect();
    for inputs in [json!(many), json!([])] {
        let resp = app.gql(Some(&rep), CREATE, json!({"i": inputs})).await;
        assert_eq!(invalid_fields(&resp), ["inputs"], "{resp}");
    }
    let count = app.ok(&admin, "{customers{totalCount}}", json!({})).await["customers"]["totalCount"].clone();
    assert_eq!(count, 5, "four of the rep's and the partner's lead");
    // Without the right to create: refused as a whole.
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    let resp = app.gql(Some(&analyst), CREATE, json!({"i": [{"name": "x", "kind": "INDIVIDUAL"}]})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
}

/// What a review found: upserts as a probe of who holds what, aliases multiplying the
/// batch limit, stored objects wiped by an upsert, a restore past the holding cap.
#[tokio::test]
async fn bulk_writes_hold_their_limits() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let south = app.create_department("华南", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("south@example.com", "SALES", &south).await;
    app.create_customer(&other, json!({"name": "南方一", "kind": "INDIVIDUAL", "phone": "13522220001"})).await;
    app.create_customer(&other, json!({"name": "南方二", "kind": "INDIVIDUAL", "email": "south@example.com"})).await;

    // Without the right to create, no probing.
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    let probe = json!({"i": [{"name": "x", "kind": "INDIVIDUAL", "phone": "13522220001"}]});
    assert_eq!(code(&app.gql(Some(&analyst), UPSERT, probe).await), "FORBIDDEN");
    // A rep learns that someone else holds it and where, not how many records a phone
    // and an e-mail reach.
    let both =
        json!({"i": [{"name": "x", "kind": "INDIVIDUAL", "phone": "13522220001", "email": "south@example.com"}]});
    let data = app.ok(&rep, UPSERT, both).await;
    let result = &data["upsertCustomers"][0];
    assert_eq!(result["outcome"], "DUPLICATE");
    assert_eq!(result["error"]["department"], "华南", "{data}");
    assert!(!result["error"]["message"].as_str().unwrap().contains('2'), "{data}");

    // Aliases do not multiply the batch limit past the complexity limit.
    let many: Vec<Value> = (0..100).map(|i| json!({"name": format!("别名{i}"), "kind": "INDIVIDUAL"})).collect();
    let aliased = "mutation($i:[CreateCustomerInput!]!){a:createCustomers(inputs:$i){outcome}
        b:createCustomers(inputs:$i){outcome} c:createCustomers(inputs:$i){outcome}}";
    let resp = app.gql(Some(&admin), aliased, json!({"i": many})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("complex"), "{resp}");
    let count = app.ok(&admin, "{customers{totalCount}}", json!({})).await["customers"]["totalCount"].clone();
    assert_eq!(count, 2);

    // An upsert lays the objects it sends over the stored ones.
    let kept = app
        .create_customer(
            &admin,
            json!({"name": "画像", "kind": "INDIVIDUAL", "phone": "13611110000",
                   "softProfile": {"hobbies": "高尔夫", "family": "已婚"}}),
        )
        .await;
    let upsert = json!({"i": [{"name": "画像", "kind": "INDIVIDUAL", "phone": "13611110000", "softProfile": {"family": "二孩"}}]});
    let data = app.ok(&admin, UPSERT, upsert).await;
    assert_eq!(data["upsertCustomers"][0]["outcome"], "UPDATED", "{data}");
    let read = app
        .ok(&admin, "query($id:ID!){customer(id:$id){softProfile{hobbies family}}}", json!({"id": kept["id"]}))
        .await;
    assert_eq!(read["customer"]["softProfile"], json!({"hobbies": "高尔夫", "family": "二孩"}));
}
