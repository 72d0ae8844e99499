//! Customers: validation, duplicate keys (with the concurrent race), optimistic
//! concurrency, soft delete and restore, filters and keyset pagination.
use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;

const UPDATE: &str =
    "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id name phone phoneE164 email version region}}";

#[tokio::test]
async fn create_defaults_and_audit() {
    let app = TestApp::spawn().await;
    let c = app.create_customer(&app.admin_token, json!({"name": " 张伟 ", "kind": "INDIVIDUAL", "phone": "+86 138-0013-8000", "email": "Zhang.Wei@Example.com"})).await;
    assert_eq!(c["name"], "张伟");
    assert_eq!(c["category"], "retail");
    assert_eq!(c["phoneE164"], "+8613800138000");
    assert_eq!(c["email"], "Zhang.Wei@Example.com");
    assert_eq!(c["lifecycleStage"], "TARGET");
    assert_eq!(c["tier"], "D");
    assert_eq!(c["version"], 1);
    let org =
        app.create_customer(&app.admin_token, json!({"name": "杭州西湖贸易有限公司", "kind": "ORGANIZATION"})).await;
    assert_eq!(org["category"], "partner");
    assert_eq!(app.audit_count(c["id"].as_str().unwrap()).await, 1);

    let data = app
        .ok(&app.admin_token, "query($id:ID!){customer(id:$id){owner{email} department{name}}}", json!({"id": c["id"]}))
        .await;
    assert_eq!(data["customer"]["owner"]["email"], ADMIN_EMAIL);
    assert_eq!(data["customer"]["department"]["name"], "总部");
}

#[tokio::test]
async fn validation_lists_every_invalid_field() {
    let app = TestApp::spawn().await;
    let resp = app
        .gql(
            Some(&app.admin_token),
            "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}",
            json!({"i": {"name": "  ", "kind": "ORGANIZATION", "phone": "12345", "email": "not-mail", "gender": "MALE",
                         "category": "nonsense", "lifecycleStage": "VIP", "customFields": [1, 2]}}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    let fields: HashSet<&str> = resp["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    let expected: HashSet<&str> =
        ["name", "phone", "email", "gender", "category", "lifecycleStage", "customFields"].into();
    assert_eq!(fields, expected);

    // nothing was written
    let data = app.ok(&app.admin_token, "{customers{totalCount}}", json!({})).await;
    assert_eq!(data["customers"]["totalCount"], 0);

    // bad ids and page sizes are refused, not crashed on
    let resp = app.gql(Some(&app.admin_token), "{customer(id:\"nope\"){id}}", json!({})).await;
    assert_eq!(code(&resp), "VALIDATION");
    let resp = app.gql(Some(&app.admin_token), "{customers(first:101){totalCount}}", json!({})).await;
    assert_eq!(code(&resp), "VALIDATION");
    let resp = app.gql(Some(&app.admin_token), "{customers(after:\"garbage\"){totalCount}}", json!({})).await;
    assert_eq!(code(&resp), "VALIDATION");
}

#[tokio::test]
async fn duplicates_by_phone_email_and_organization_name() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东销售部", None).await;
    let west = app.create_department("西南销售部", None).await;
    let (_, rep_east) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, rep_west) = app.create_user("west@example.com", "SALES", &west).await;

    app.create_customer(&rep_east, json!({"name": "张伟", "kind": "INDIVIDUAL", "phone": "13800138000", "email": "zw@example.com", "address": "上海市浦东新区"})).await;
    app.create_customer(&rep_east, json!({"name": "上海华联商贸有限公司", "kind": "ORGANIZATION"})).await;

    // individuals may share a name
    app.create_customer(&rep_west, json!({"name": "张伟", "kind": "INDIVIDUAL", "phone": "13900139000"})).await;

    let create = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}";
    for (input, key) in [
        (json!({"name": "张伟", "kind": "INDIVIDUAL", "phone": "+86 138 0013 8000"}), "phone"),
        (json!({"name": "Zhang", "kind": "INDIVIDUAL", "email": "ZW@EXAMPLE.COM"}), "email"),
        (json!({"name": "上海华联商贸（股份）有限公司", "kind": "ORGANIZATION"}), "name"),
        (json!({"name": "上海 华联商贸", "kind": "ORGANIZATION"}), "name"),
    ] {
        let resp = app.gql(Some(&rep_west), create, json!({"i": input})).await;
        assert_eq!(code(&resp), "DUPLICATE", "{resp}");
        let ext = &resp["errors"][0]["extensions"];
        assert_eq!(ext["key"], key);
        assert_eq!(ext["department"], "华东销售部");
        // the message names the department, never the other rep's fields
        let message = resp["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("华东销售部"), "{message}");
        assert!(!message.contains("上海市浦东新区") && !message.contains("east@example.com"), "{message}");
    }

    // an update into a taken key is a DUPLICATE too
    let mine =
        app.create_customer(&rep_west, json!({"name": "李娜", "kind": "INDIVIDUAL", "phone": "13700137000"})).await;
    let resp =
        app.gql(Some(&rep_west), UPDATE, json!({"i": {"id": mine["id"], "version": 1, "phone": "13800138000"}})).await;
    assert_eq!(code(&resp), "DUPLICATE", "{resp}");
    assert_eq!(resp["errors"][0]["extensions"]["key"], "phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_customer_give_one_success() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.gql(
                Some(&app.admin_token),
                "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}",
                json!({"i": {"name": format!("客户{i}"), "kind": "INDIVIDUAL", "phone": "186 0000 1111"}}),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut dup = 0;
    for t in tasks {
        let resp = t.await.unwrap();
        match code(&resp) {
            "<no error>" => ok += 1,
            "DUPLICATE" => dup += 1,
            other => panic!("unexpected {other}: {resp}"),
        }
    }
    assert_eq!((ok, dup), (1, 19));
    let data = app.ok(&app.admin_token, "{customers{totalCount}}", json!({})).await;
    assert_eq!(data["customers"]["totalCount"], 1);
}

#[tokio::test]
async fn stale_version_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let c = app.create_customer(&app.admin_token, json!({"name": "陈静", "kind": "INDIVIDUAL"})).await;
    let id = c["id"].clone();
    let data = app
        .ok(&app.admin_token, UPDATE, json!({"i": {"id": id, "version": 1, "region": "华东", "phone": "13600136000"}}))
        .await;
    assert_eq!(data["updateCustomer"]["version"], 2);
    assert_eq!(data["updateCustomer"]["phoneE164"], "+8613600136000");

    let resp = app.gql(Some(&app.admin_token), UPDATE, json!({"i": {"id": id, "version": 1, "region": "华北"}})).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    let data = app.ok(&app.admin_token, "query($id:ID!){customer(id:$id){region version}}", json!({"id": id})).await;
    assert_eq!(data["customer"], json!({"region": "华东", "version": 2}));
    assert_eq!(app.audit_count(id.as_str().unwrap()).await, 2);

    // null clears, omitted keeps
    let data = app.ok(&app.admin_token, UPDATE, json!({"i": {"id": id, "version": 2, "phone": null}})).await;
    assert_eq!(data["updateCustomer"]["phone"], Value::Null);
    assert_eq!(data["updateCustomer"]["region"], "华东");
}

#[tokio::test]
async fn soft_delete_and_restore() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let c = app.create_customer(t, json!({"name": "赵磊", "kind": "INDIVIDUAL", "phone": "13500135000"})).await;
    let id = c["id"].clone();

    let resp = app.gql(Some(t), "mutation($id:ID!){deleteCustomer(id:$id, version: 7){id}}", json!({"id": id})).await;
    assert_eq!(code(&resp), "CONFLICT");
    let data = app.ok(t, "mutation($id:ID!){deleteCustomer(id:$id){deletedAt version}}", json!({"id": id})).await;
    assert!(data["deleteCustomer"]["deletedAt"].is_string());

    let resp = app.gql(Some(t), "query($id:ID!){customer(id:$id){id}}", json!({"id": id})).await;
    assert_eq!(code(&resp), "NOT_FOUND");
    let data = app
        .ok(t, "{live: customers{totalCount} trash: customers(deleted:true){totalCount edges{node{id}}}}", json!({}))
        .await;
    assert_eq!(data["live"]["totalCount"], 0);
    assert_eq!(data["trash"]["edges"][0]["node"]["id"], id);

    // the phone is free while the first one is in the trash...
    let other = app.create_customer(t, json!({"name": "赵磊", "kind": "INDIVIDUAL", "phone": "13500135000"})).await;
    // ...so restoring it would duplicate
    let resp = app.gql(Some(t), "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": id})).await;
    assert_eq!(code(&resp), "DUPLICATE", "{resp}");
    app.ok(t, "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": other["id"]})).await;
    let data = app.ok(t, "mutation($id:ID!){restoreCustomer(id:$id){deletedAt version}}", json!({"id": id})).await;
    assert_eq!(data["restoreCustomer"]["deletedAt"], Value::Null);
    assert_eq!(data["restoreCustomer"]["version"], 3);
    // restoring a live customer is NOT_FOUND (nothing in the trash with that id)
    let resp = app.gql(Some(t), "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": id})).await;
    assert_eq!(code(&resp), "NOT_FOUND");
    assert_eq!(app.audit_count(id.as_str().unwrap()).await, 3);
}

async fn all_pages(app: &TestApp, order: Value, filter: Value, page: i64) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .ok(
                &app.admin_token,
                "query($f:Int,$a:String,$o:[CustomerOrder!],$w:CustomerFilter){customers(first:$f,after:$a,orderBy:$o,filter:$w){totalCount edges{cursor node{id}} pageInfo{hasNextPage endCursor}}}",
                json!({"f": page, "a": after, "o": order, "w": filter}),
            )
            .await;
        let conn = &data["customers"];
        for e in conn["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].as_str().unwrap().to_string());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return seen;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn pagination_by_non_unique_fields_neither_repeats_nor_skips() {
    let app = TestApp::spawn().await;
    let categories = ["retail", "vip", "partner"];
    let mut ids = HashSet::new();
    for i in 0..23 {
        let c = app
            .create_customer(
                &app.admin_token,
                json!({"name": format!("客户{:02}", i % 5), "kind": "INDIVIDUAL", "category": categories[i % 3], "region": if i % 2 == 0 { "华东" } else { "华南" }}),
            )
            .await;
        ids.insert(c["id"].as_str().unwrap().to_string());
    }
    for order in [
        json!([{"field": "CATEGORY"}]),
        json!([{"field": "CATEGORY", "direction": "DESC"}, {"field": "NAME"}]),
        json!([{"field": "NAME", "direction": "DESC"}, {"field": "CREATED_AT", "direction": "ASC"}]),
        json!(null),
    ] {
        for page in [1, 4, 7, 100] {
            let seen = all_pages(&app, order.clone(), Value::Null, page).await;
            assert_eq!(seen.len(), 23, "order {order} page {page}");
            assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), ids, "order {order} page {page}");
        }
    }
    // a cursor is bound to its ordering
    let data = app.ok(&app.admin_token, "{customers(first:1){pageInfo{endCursor}}}", json!({})).await;
    let resp = app
        .gql(
            Some(&app.admin_token),
            "query($a:String){customers(after:$a, orderBy:[{field:NAME}]){totalCount}}",
            json!({"a": data["customers"]["pageInfo"]["endCursor"]}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION");

    // filters: and/or, contains, in; totalCount follows the filter
    let filter = json!({"or": [{"category": {"eq": "vip"}}, {"and": [{"category": {"eq": "retail"}}, {"region": {"eq": "华东"}}]}]});
    let seen = all_pages(&app, json!([{"field": "NAME"}]), filter.clone(), 3).await;
    let expected = (0..23).filter(|i| i % 3 == 1 || (i % 3 == 0 && i % 2 == 0)).count();
    assert_eq!(seen.len(), expected);
    let data = app
        .ok(&app.admin_token, "query($w:CustomerFilter){customers(filter:$w){totalCount}}", json!({"w": filter}))
        .await;
    assert_eq!(data["customers"]["totalCount"], expected);
    let data = app
        .ok(&app.admin_token, "{a: customers(filter:{name:{contains:\"01\"}}){totalCount} b: customers(filter:{category:{in:[\"vip\",\"partner\"]}}){totalCount} c: customers(filter:{name:{contains:\"%\"}}){totalCount}}", json!({}))
        .await;
    assert_eq!(data["a"]["totalCount"], 5);
    assert_eq!(data["b"]["totalCount"], 15);
    assert_eq!(data["c"]["totalCount"], 0);
}

/// Cursors are the API's own: one from another list, another ordering, or forged with
/// values of the wrong type is VALIDATION (a forged one was INTERNAL on PostgreSQL); an
/// `in` list too long for one statement is VALIDATION (it was INTERNAL).
#[tokio::test]
async fn foreign_and_forged_cursors_and_huge_lists_are_refused() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    for n in 0..3 {
        let c = app.create_customer(t, json!({"name": format!("客户{n}"), "kind": "ORGANIZATION"})).await;
        app.ok(t, "mutation($c:ID!){createContact(input:{customerId:$c,name:\"联系人\"}){id}}", json!({"c": c["id"]}))
            .await;
    }
    let contacts = app.ok(t, "{contacts(first:1){pageInfo{endCursor}}}", json!({})).await;
    let cursor = contacts["contacts"]["pageInfo"]["endCursor"].clone();
    for list in ["deals", "customers", "feedbacks"] {
        let resp = app
            .gql(Some(t), &format!("query($a:String){{{list}(first:1,after:$a){{totalCount}}}}"), json!({"a": cursor}))
            .await;
        assert_eq!(code(&resp), "VALIDATION", "{list}: {resp}");
    }
    assert!(
        app.gql(Some(t), "query($a:String){contacts(first:1,after:$a){totalCount}}", json!({"a": cursor}))
            .await
            .get("errors")
            .is_none()
    );
    let customers = app.ok(t, "{customers(first:1){pageInfo{endCursor}}}", json!({})).await;
    let by_created = customers["customers"]["pageInfo"]["endCursor"].clone();
    let resp = app
        .gql(
            Some(t),
            "query($a:String){customers(first:1,after:$a,orderBy:[{field:NAME}]){totalCount}}",
            json!({"a": by_created}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION", "another ordering: {resp}");

    let forge = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let id = uuid::Uuid::nil();
    for (order, values) in [
        ("customer:createdAt-", json!([{"Text": "zzz"}])),
        ("customer:createdAt-", json!([{"Int": 5}])),
        ("customer:name+", json!([{"Time": "2026-01-01T00:00:00Z"}])),
        ("customer:createdAt-", json!([])),
    ] {
        let cursor = forge(json!({"After": {"v": values, "i": id, "o": order}}));
        let q = if order.contains("name") {
            "query($a:String){customers(first:1,after:$a,orderBy:[{field:NAME}]){totalCount}}"
        } else {
            "query($a:String){customers(first:1,after:$a){totalCount}}"
        };
        let resp = app.gql(Some(t), q, json!({"a": cursor})).await;
        assert_eq!(code(&resp), "VALIDATION", "{order} {values}: {resp}");
    }
    let resp = app
        .gql(
            Some(t),
            "query($a:String){goldCustomers(first:1,after:$a){totalCount}}",
            json!({"a": forge(json!({"Rank": -5}))}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");

    let names: Vec<String> = (0..2001).map(|n| format!("n{n}")).collect();
    let resp = app
        .gql(Some(t), "query($n:[String!]){customers(filter:{name:{in:$n}}){totalCount}}", json!({"n": names}))
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    let many: Vec<Value> = (0..30).map(|_| json!({"name": {"in": names[..100]}})).collect();
    let resp = app
        .gql(Some(t), "query($f:CustomerFilter){customers(filter:$f){totalCount}}", json!({"f": {"or": many}}))
        .await;
    assert_eq!(code(&resp), "VALIDATION", "3,000 values across branches: {resp}");
    let data = app
        .ok(t, "query($n:[String!]){customers(filter:{name:{in:$n}}){totalCount}}", json!({"n": names[..1000]}))
        .await;
    assert_eq!(data["customers"]["totalCount"], 0);
}

/// A sales rep's list is "own rows or the department's pool": read as two index ranges and
/// merged, it must page exactly as the one filtered query did.
#[tokio::test]
async fn a_reps_list_merges_own_rows_and_the_pool_in_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("other@example.com", "SALES", &east).await;
    let (_, far) = app.create_user("far@example.com", "SALES", &west).await;
    let pool = "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}";
    let mut expected = Vec::new();
    for i in 0..5 {
        let own = format!("自己{i}");
        app.create_customer(&rep, json!({"name": own, "kind": "INDIVIDUAL", "phone": format!("1380000{i:04}")})).await;
        expected.push(own);
        let pooled = format!("公海{i}");
        let c = app
            .create_customer(&other, json!({"name": pooled, "kind": "INDIVIDUAL", "phone": format!("1390000{i:04}")}))
            .await;
        app.ok(&admin, pool, json!({"id": c["id"]})).await;
        expected.push(pooled);
        // Neither a colleague's own customer nor another department's pool.
        app.create_customer(&other, json!({"name": format!("同事{i}"), "kind": "INDIVIDUAL"})).await;
        let w = app.create_customer(&far, json!({"name": format!("西部{i}"), "kind": "INDIVIDUAL"})).await;
        app.ok(&admin, pool, json!({"id": w["id"]})).await;
    }

    let page = "query($a:String,$o:[CustomerOrder!]){customers(first:3, after:$a, orderBy:$o){totalCount \
                pageInfo{hasNextPage endCursor} nodes{name}}}";
    let walk = |order: Value| {
        let (app, rep) = (&app, &rep);
        async move {
            let (mut names, mut after) = (Vec::<String>::new(), Value::Null);
            loop {
                let data = app.ok(rep, page, json!({"a": after, "o": order})).await;
                let c = &data["customers"];
                let total = c["totalCount"].as_u64().unwrap();
                names.extend(c["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap().to_string()));
                if c["pageInfo"]["hasNextPage"] != true {
                    break (names, total);
                }
                after = c["pageInfo"]["endCursor"].clone();
            }
        }
    };
    // Newest first (the default), oldest first, and by name (text: one filtered query).
    let (newest, total) = walk(Value::Null).await;
    assert_eq!(total, 10);
    assert_eq!(newest, expected.iter().rev().cloned().collect::<Vec<_>>());
    let (oldest, _) = walk(json!([{"field": "CREATED_AT", "direction": "ASC"}])).await;
    assert_eq!(oldest, expected);
    // (The database collates the names; the pages must hold each customer exactly once.)
    let (mut by_name, _) = walk(json!([{"field": "NAME", "direction": "ASC"}])).await;
    by_name.sort();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(by_name, sorted);
}
