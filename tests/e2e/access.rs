//! The access matrix of `docs/access.md`: roles x actions x records, every cell asserted,
//! and list results equal to what per-id reads allow.
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

const ROLES: [&str; 7] = ["ADMIN", "EXECUTIVE", "MANAGER", "SALES", "SERVICE", "ANALYST", "INTEGRATION"];
const RECORDS: [&str; 4] = ["own", "same", "child", "other"];
const ACTIONS: [&str; 6] = ["read", "list", "count", "update", "delete", "assign"];

/// Expected outcome per role and action for (own, same department, child department, other department).
fn expected(role: &str, action: &str) -> [&'static str; 4] {
    const Y: &str = "ok";
    const NF: &str = "NOT_FOUND";
    const F: &str = "FORBIDDEN";
    let visible = |r: [bool; 4]| r.map(|v| if v { Y } else { NF });
    match (role, action) {
        ("ADMIN", _) => [Y; 4],
        ("EXECUTIVE", "update" | "delete") => [F; 4],
        ("EXECUTIVE", _) => [Y; 4],
        ("MANAGER", _) => visible([true, true, true, false]),
        ("SALES", "read" | "list" | "count" | "update") => visible([true, false, false, false]),
        ("SALES", _) => [F, NF, NF, NF],
        ("SERVICE", "read" | "list" | "count") => [Y; 4],
        ("SERVICE", _) => [F; 4],
        ("ANALYST", _) => [NF; 4],
        ("INTEGRATION", "read" | "list" | "count") => visible([true, false, false, false]),
        ("INTEGRATION", _) => [F, NF, NF, NF],
        _ => unreachable!(),
    }
}

struct World {
    app: TestApp,
    tokens: HashMap<&'static str, String>,
    users: HashMap<String, String>,
    /// role -> [own, same, child, other] customer ids
    records: HashMap<&'static str, [String; 4]>,
    /// customer id -> (contact id, deal id)
    children: HashMap<String, (String, String)>,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东大区", None).await;
    let east_sub = app.create_department("上海分部", Some(&east)).await;
    let west = app.create_department("西南大区", None).await;
    let mut users = HashMap::new();
    users.insert("WEST_DEPT".to_string(), west.clone());
    for (name, dept) in [("peer", &east), ("childrep", &east_sub), ("otherrep", &west)] {
        let (id, _) = app.create_user(&format!("{name}@example.com"), "SALES", dept).await;
        users.insert(name.to_string(), id);
    }
    let mut tokens = HashMap::new();
    for role in ROLES {
        let (id, token) = app.create_user(&format!("{}@example.com", role.to_lowercase()), role, &east).await;
        users.insert(role.to_string(), id);
        tokens.insert(role, token);
    }
    let mut records = HashMap::new();
    let mut children = HashMap::new();
    let mut n = 0;
    for role in ROLES {
        let mut ids = Vec::new();
        for owner in [role, "peer", "childrep", "otherrep"] {
            n += 1;
            let c = app.create_customer(&app.admin_token, json!({"name": format!("客户{n}有限公司"), "kind": "ORGANIZATION", "phone": format!("1380000{n:04}")})).await;
            let id = c["id"].as_str().unwrap().to_string();
            let contact = app
                .ok(
                    &app.admin_token,
                    "mutation($c:ID!){createContact(input:{customerId:$c,name:\"联系人\"}){id}}",
                    json!({"c": id}),
                )
                .await;
            let deal = app
                .ok(
                    &app.admin_token,
                    "mutation($c:ID!){createDeal(input:{customerId:$c,title:\"订单\",amount:\"100\"}){id}}",
                    json!({"c": id}),
                )
                .await;
            children.insert(
                id.clone(),
                (
                    contact["createContact"]["id"].as_str().unwrap().to_string(),
                    deal["createDeal"]["id"].as_str().unwrap().to_string(),
                ),
            );
            app.ok(
                &app.admin_token,
                "mutation($id:ID!,$o:ID){assignCustomer(id:$id, ownerId:$o){id}}",
                json!({"id": id, "o": users[owner]}),
            )
            .await;
            ids.push(id);
        }
        records.insert(role, ids.try_into().unwrap());
    }
    World { app, tokens, users, records, children }
}

async fn version(app: &TestApp, id: &str) -> i64 {
    let data = app.ok(&app.admin_token, "query($id:ID!){customer(id:$id){version}}", json!({"id": id})).await;
    data["customer"]["version"].as_i64().unwrap()
}

fn outcome(resp: &Value) -> String {
    match resp.get("errors") {
        None => "ok".into(),
        Some(_) => code(resp).to_string(),
    }
}

#[tokio::test]
async fn access_matrix_for_customers() {
    let w = world().await;
    let app = &w.app;
    let mut failures = Vec::new();
    for role in ROLES {
        let token = &w.tokens[role];
        for action in ACTIONS {
            let want = expected(role, action);
            for (i, which) in RECORDS.iter().enumerate() {
                let id = w.records[role][i].clone();
                let before_version = version(app, &id).await;
                let before_audit = app.audit_count(&id).await;
                let got = match action {
                    "read" => outcome(
                        &app.gql(Some(token), "query($id:ID!){customer(id:$id){id name}}", json!({"id": id})).await,
                    ),
                    "list" | "count" => {
                        let data = app
                            .ok(
                                token,
                                "query($id:ID!){customers(filter:{id:{eq:$id}}){totalCount edges{node{id}}}}",
                                json!({"id": id}),
                            )
                            .await;
                        let n = if action == "list" {
                            data["customers"]["edges"].as_array().unwrap().len() as i64
                        } else {
                            data["customers"]["totalCount"].as_i64().unwrap()
                        };
                        if n == 1 { "ok".into() } else { "NOT_FOUND".into() }
                    }
                    "update" => outcome(
                        &app.gql(
                            Some(token),
                            "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id}}",
                            json!({"i": {"id": id, "version": before_version, "region": "华东"}}),
                        )
                        .await,
                    ),
                    "delete" => outcome(
                        &app.gql(Some(token), "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": id})).await,
                    ),
                    "assign" => {
                        // re-assign to the current owner: allowed or not, the scope decides
                        let owner = app
                            .ok(&app.admin_token, "query($id:ID!){customer(id:$id){ownerId}}", json!({"id": id}))
                            .await;
                        outcome(
                            &app.gql(
                                Some(token),
                                "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}",
                                json!({"id": id, "o": owner["customer"]["ownerId"]}),
                            )
                            .await,
                        )
                    }
                    _ => unreachable!(),
                };
                if got != want[i] {
                    failures.push(format!("{role} {action} {which}: expected {}, got {got}", want[i]));
                }
                if action == "delete" && got == "ok" {
                    app.ok(&app.admin_token, "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": id})).await;
                }
                if got != "ok" && matches!(action, "update" | "delete" | "assign") {
                    // a denied write changes nothing
                    assert_eq!(version(app, &id).await, before_version, "{role} {action} {which} changed the version");
                    assert_eq!(app.audit_count(&id).await, before_audit, "{role} {action} {which} wrote an audit row");
                }
            }
        }
    }
    assert!(failures.is_empty(), "access matrix mismatches:\n{}", failures.join("\n"));

    // lists equal what per-id reads allow, over every customer in the database
    let all: Vec<String> = w.records.values().flat_map(|r| r.iter().cloned()).collect();
    for role in ROLES {
        let token = &w.tokens[role];
        let mut readable = BTreeSet::new();
        for id in &all {
            let resp = app.gql(Some(token), "query($id:ID!){customer(id:$id){id}}", json!({"id": id})).await;
            if resp.get("errors").is_none() {
                readable.insert(id.clone());
            }
        }
        let data = app.ok(token, "{customers(first:100){totalCount edges{node{id}}}}", json!({})).await;
        let listed: BTreeSet<String> = data["customers"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, readable, "{role}: list differs from per-id reads");
        assert_eq!(data["customers"]["totalCount"].as_u64().unwrap() as usize, readable.len(), "{role}: totalCount");
    }
}

#[tokio::test]
async fn ownership_creation_and_assignment_rules() {
    let w = world().await;
    let app = &w.app;
    let sales = &w.tokens["SALES"];
    let manager = &w.tokens["MANAGER"];

    // the creator owns the customer; ownerId cannot be passed in
    let c = app.create_customer(sales, json!({"name": "刘洋", "kind": "INDIVIDUAL"})).await;
    assert_eq!(c["ownerId"], w.users["SALES"].as_str());
    let resp = app
        .gql(Some(sales), "mutation{createCustomer(input:{name:\"x\",kind:INDIVIDUAL,ownerId:\"1\"}){id}}", json!({}))
        .await;
    assert_eq!(code(&resp), "BAD_REQUEST", "unknown input field is refused: {resp}");

    // roles without create permission
    for role in ["EXECUTIVE", "SERVICE", "ANALYST"] {
        let resp = app
            .gql(Some(&w.tokens[role]), "mutation{createCustomer(input:{name:\"x\",kind:INDIVIDUAL}){id}}", json!({}))
            .await;
        assert_eq!(code(&resp), "FORBIDDEN", "{role}");
    }
    // integration may push leads
    app.create_customer(&w.tokens["INTEGRATION"], json!({"name": "线索", "kind": "INDIVIDUAL", "source": "PARTNER"}))
        .await;

    // a manager moves customers within the subtree, not outside it
    let resp = app
        .gql(
            Some(manager),
            "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){ownerId departmentId}}",
            json!({"id": c["id"], "o": w.users["childrep"]}),
        )
        .await;
    assert!(resp.get("errors").is_none(), "{resp}");
    let resp = app
        .gql(
            Some(manager),
            "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}",
            json!({"id": c["id"], "o": w.users["otherrep"]}),
        )
        .await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");

    // the public pool: unowned customers are readable by the department's sales staff only
    app.ok(
        manager,
        "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){inPublicPool}}",
        json!({"id": w.records["SALES"][1]}),
    )
    .await;
    let resp = app
        .gql(Some(sales), "query($id:ID!){customer(id:$id){id inPublicPool}}", json!({"id": w.records["SALES"][1]}))
        .await;
    assert_eq!(resp["data"]["customer"]["inPublicPool"], true, "{resp}");
    // ...without its contacts and deals, which the pool does not open (nor their counts)
    let pooled = &w.records["SALES"][1];
    let nested = "query($id:ID!){customer(id:$id){contacts{totalCount edges{node{id}}} deals{totalCount}}}";
    let data = app.ok(sales, nested, json!({"id": pooled})).await;
    assert_eq!(
        data["customer"],
        json!({"contacts": {"totalCount": 0, "edges": []}, "deals": {"totalCount": 0}}),
        "pool customer's records leaked to a rep"
    );
    let data = app.ok(manager, nested, json!({"id": pooled})).await;
    assert_eq!(data["customer"]["contacts"]["totalCount"], 1, "the manager sees them: {data}");
    // but pool customers are not theirs to change...
    let resp = app
        .gql(
            Some(sales),
            "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id}}",
            json!({"i": {"id": pooled, "version": 3, "region": "x"}}),
        )
        .await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    // ...until they claim one; then it is gone from the pool
    let claim = "mutation($id:ID!){claimCustomer(id:$id){ownerId inPublicPool}}";
    let resp = app.gql(Some(&w.tokens["SERVICE"]), claim, json!({"id": pooled})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let data = app.ok(sales, claim, json!({"id": pooled})).await;
    assert_eq!(data["claimCustomer"], json!({"ownerId": w.users["SALES"], "inPublicPool": false}));
    let resp = app.gql(Some(sales), claim, json!({"id": pooled})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    // a West rep does not even see East's pool
    app.ok(manager, "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}", json!({"id": pooled})).await;
    let (_, west_rep) = app.create_user("west2@example.com", "SALES", &w.users["WEST_DEPT"]).await;
    let resp = app.gql(Some(&west_rep), claim, json!({"id": pooled})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
}

/// Expected outcome for records hanging off a customer (contacts, deals), whose scope
/// follows the customer's: (own, same department, child department, other department).
fn expected_child(resource: &str, role: &str, action: &str) -> [&'static str; 4] {
    const Y: &str = "ok";
    const NF: &str = "NOT_FOUND";
    const F: &str = "FORBIDDEN";
    let visible = |r: [bool; 4]| r.map(|v| if v { Y } else { NF });
    match (role, action) {
        ("ADMIN", _) => [Y; 4],
        ("EXECUTIVE" | "SERVICE", "update" | "delete") => [F; 4],
        ("EXECUTIVE" | "SERVICE", _) => [Y; 4],
        ("MANAGER", _) => visible([true, true, true, false]),
        ("SALES", "delete") => [F, NF, NF, NF],
        ("SALES", _) => visible([true, false, false, false]),
        ("ANALYST", _) => [NF; 4],
        ("INTEGRATION", _) if resource == "deal" => [NF; 4],
        ("INTEGRATION", "update" | "delete") => [F, NF, NF, NF],
        ("INTEGRATION", _) => visible([true, false, false, false]),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn access_matrix_for_contacts_and_deals() {
    let w = world().await;
    let app = &w.app;
    let mut failures = Vec::new();
    for (resource, type_name, list) in [("contact", "Contact", "contacts"), ("deal", "Deal", "deals")] {
        for role in ROLES {
            let token = &w.tokens[role];
            for action in ["read", "list", "count", "nested", "update", "delete"] {
                let want = expected_child(resource, role, action);
                for (i, which) in RECORDS.iter().enumerate() {
                    let (contact, deal) = &w.children[&w.records[role][i]];
                    let id = if resource == "contact" { contact } else { deal };
                    let got = match action {
                        "read" => outcome(
                            &app.gql(
                                Some(token),
                                &format!("query($id:ID!){{{resource}(id:$id){{id}}}}"),
                                json!({"id": id}),
                            )
                            .await,
                        ),
                        "list" | "count" => {
                            let field = if resource == "contact" { "name" } else { "title" };
                            let data = app
                                .ok(
                                    token,
                                    &format!("{{{list}(first:100){{totalCount edges{{node{{id {field}}}}}}}}}"),
                                    json!({}),
                                )
                                .await;
                            let listed =
                                data[list]["edges"].as_array().unwrap().iter().any(|e| e["node"]["id"] == id.as_str());
                            let counted = data[list]["totalCount"].as_u64().unwrap() as usize
                                == data[list]["edges"].as_array().unwrap().len();
                            assert!(counted, "{role} {list}: totalCount differs from the rows");
                            if listed { "ok".into() } else { "NOT_FOUND".into() }
                        }
                        "nested" => {
                            // through its customer: the list under a readable customer is
                            // scoped by the record's own grant, not the customer's
                            let resp = app
                                .gql(
                                    Some(token),
                                    &format!(
                                        "query($c:ID!){{customer(id:$c){{{list}{{totalCount edges{{node{{id}}}}}}}}}}"
                                    ),
                                    json!({"c": w.records[role][i]}),
                                )
                                .await;
                            let nested = &resp["data"]["customer"][list];
                            let listed = nested["edges"]
                                .as_array()
                                .is_some_and(|edges| edges.iter().any(|e| e["node"]["id"] == id.as_str()));
                            if !nested.is_null() {
                                assert_eq!(
                                    nested["totalCount"].as_u64().unwrap() as usize,
                                    nested["edges"].as_array().unwrap().len(),
                                    "{role} nested {list}: totalCount differs from the rows"
                                );
                            }
                            if listed { "ok".into() } else { "NOT_FOUND".into() }
                        }
                        "update" => {
                            let v = app
                                .ok(
                                    &app.admin_token,
                                    &format!("query($id:ID!){{{resource}(id:$id){{version}}}}"),
                                    json!({"id": id}),
                                )
                                .await[resource]["version"]
                                .clone();
                            let (input, field) = if resource == "contact" {
                                ("UpdateContactInput", "notes")
                            } else {
                                ("UpdateDealInput", "title")
                            };
                            outcome(
                                &app.gql(
                                    Some(token),
                                    &format!("mutation($i:{input}!){{update{type_name}(input:$i){{id}}}}"),
                                    json!({"i": {"id": id, "version": v, field: "改"}}),
                                )
                                .await,
                            )
                        }
                        "delete" => {
                            let got = outcome(
                                &app.gql(
                                    Some(token),
                                    &format!("mutation($id:ID!){{delete{type_name}(id:$id){{id}}}}"),
                                    json!({"id": id}),
                                )
                                .await,
                            );
                            if got == "ok" {
                                app.ok(
                                    &app.admin_token,
                                    &format!("mutation($id:ID!){{restore{type_name}(id:$id){{id}}}}"),
                                    json!({"id": id}),
                                )
                                .await;
                            }
                            got
                        }
                        _ => unreachable!(),
                    };
                    if got != want[i] {
                        failures.push(format!("{resource}: {role} {action} {which}: expected {}, got {got}", want[i]));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "access matrix mismatches:\n{}", failures.join("\n"));
}
