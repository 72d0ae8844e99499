//! Staff and settings administration end to end: users (read, list, update, the version
//! race, deactivation with a successor), departments, exchange rates.
use crate::classification::wait_for_pass;
use crate::helpers::*;
use serde_json::{Value, json};

const UPDATE_USER: &str =
    "mutation($i:UpdateUserInput!){updateUser(input:$i){id name role departmentId version department{name}}}";

#[tokio::test]
async fn users_are_read_listed_and_updated_by_admins_only() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东大区", None).await;
    let west = app.create_department("西南大区", None).await;
    let (rep, rep_token) = app.create_user("li.na@example.com", "SALES", &east).await;
    let (other, _) = app.create_user("zhao.lei@example.com", "SERVICE", &west).await;

    // `user`: admins read anyone, others only themselves (another user does not exist for them).
    let q = "query($id:ID!){user(id:$id){email role department{name}}}";
    let data = app.ok(t, q, json!({"id": rep})).await;
    assert_eq!(
        data["user"],
        json!({"email": "li.na@example.com", "role": "SALES", "department": {"name": "华东大区"}})
    );
    let data = app.ok(&rep_token, q, json!({"id": rep})).await;
    assert_eq!(data["user"]["email"], "li.na@example.com");
    assert_eq!(code(&app.gql(Some(&rep_token), q, json!({"id": other})).await), "NOT_FOUND");
    assert_eq!(code(&app.gql(Some(t), q, json!({"id": "not-an-id"})).await), "VALIDATION");

    // `users`: by name, filtered, paged; admins only.
    let list = "query($f:UserFilterInput,$a:String){users(first:1,after:$a,filter:$f){totalCount edges{cursor node{email}} pageInfo{hasNextPage endCursor}}}";
    let data = app.ok(t, list, json!({"f": {"departmentId": east}})).await;
    assert_eq!(data["users"]["totalCount"], 1);
    assert_eq!(data["users"]["edges"][0]["node"]["email"], "li.na@example.com");
    let data = app.ok(t, list, json!({"f": {"role": "SERVICE", "active": true}})).await;
    assert_eq!(data["users"]["edges"][0]["node"]["email"], "zhao.lei@example.com");
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.ok(t, list, json!({"a": after})).await["users"].clone();
        assert_eq!(page["totalCount"], 3, "admin + two staff");
        seen.extend(page["edges"].as_array().unwrap().iter().map(|e| e["node"]["email"].as_str().unwrap().to_string()));
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 3);
    assert_eq!(sorted.len(), 3, "no repeats across pages: {seen:?}");
    assert_eq!(code(&app.gql(Some(&rep_token), list, json!({})).await), "FORBIDDEN");

    // `updateUser`: name, role, department and password; the version moves on.
    let data = app
        .ok(
            t,
            UPDATE_USER,
            json!({"i": {"id": rep, "version": 1, "name": " 李娜 ", "role": "MANAGER", "departmentId": west, "password": "a brand new secret"}}),
        )
        .await;
    assert_eq!(
        data["updateUser"],
        json!({"id": rep, "name": "李娜", "role": "MANAGER", "departmentId": west, "version": 2, "department": {"name": "西南大区"}})
    );
    assert_eq!(
        code(&app.gql(Some(&rep_token), "{me{id}}", json!({})).await),
        "UNAUTHENTICATED",
        "a new password ends the old sessions"
    );
    let rep_token = app.login("li.na@example.com", "a brand new secret").await;
    let resp = app
        .gql(
            None,
            "mutation{login(email:\"li.na@example.com\",password:\"correct horse battery\"){accessToken}}",
            json!({}),
        )
        .await;
    assert_eq!(code(&resp), "UNAUTHENTICATED", "the old password is gone");
    assert_eq!(
        app.audit_count(&rep).await,
        4,
        "create, update, password change, and the failed login with the old password"
    );

    // Bad input lists every field; a stale version, another role and an unknown user change nothing.
    let resp = app
        .gql(
            Some(t),
            UPDATE_USER,
            json!({"i": {"id": rep, "version": 2, "name": " ", "password": "short", "departmentId": uuid::Uuid::now_v7()}}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION");
    let fields = invalid_fields(&resp);
    assert_eq!(fields, ["name", "password", "departmentId"]);
    assert_eq!(
        code(&app.gql(Some(t), UPDATE_USER, json!({"i": {"id": rep, "version": 1, "name": "x"}})).await),
        "CONFLICT"
    );
    assert_eq!(
        code(&app.gql(Some(&rep_token), UPDATE_USER, json!({"i": {"id": other, "version": 1, "name": "x"}})).await),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(t), UPDATE_USER, json!({"i": {"id": uuid::Uuid::now_v7(), "version": 1, "name": "x"}})).await
        ),
        "NOT_FOUND"
    );
    let data = app.ok(t, "query($id:ID!){user(id:$id){name version}}", json!({"id": rep})).await;
    assert_eq!(data["user"], json!({"name": "李娜", "version": 2}));
}

/// Eight admins send an update with the version they all read: exactly one applies, the
/// other seven get CONFLICT, on SQLite and on PostgreSQL. Ten rounds, each on the version
/// the previous one left: a check-then-write without a version guard lets several apply
/// whenever two transactions overlap.
#[tokio::test]
async fn concurrent_updates_of_one_user_apply_once() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("总部销售", None).await;
    let (id, _) = app.create_user("wang.fang@example.com", "SALES", &dept).await;
    for round in 0..10 {
        let version = round + 1;
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut tasks = Vec::new();
        for n in 0..8 {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let token = app.admin_token.clone();
            let start = start.clone();
            let body = json!({"query": UPDATE_USER, "variables": {"i": {"id": id, "version": version, "name": format!("王芳{round}-{n}")}}});
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                let resp: Value =
                    client.post(url).bearer_auth(token).json(&body).send().await.unwrap().json().await.unwrap();
                resp
            }));
        }
        let mut applied = Vec::new();
        let mut conflicts = 0;
        for task in tasks {
            let resp = task.await.unwrap();
            match resp.get("errors") {
                None => applied.push(resp["data"]["updateUser"]["name"].as_str().unwrap().to_string()),
                Some(_) => {
                    assert_eq!(code(&resp), "CONFLICT", "{resp}");
                    conflicts += 1;
                }
            }
        }
        assert_eq!((applied.len(), conflicts), (1, 7), "round {round}: {applied:?}");
        let data = app.ok(&app.admin_token, "query($id:ID!){user(id:$id){name version}}", json!({"id": id})).await;
        assert_eq!(data["user"], json!({"name": applied[0], "version": version + 1}));
    }
    assert_eq!(app.audit_count(&id).await, 11, "create + one update a round");
}

#[tokio::test]
async fn deactivation_hands_customers_to_a_successor() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东大区", None).await;
    let west = app.create_department("西南大区", None).await;
    let (leaver, leaver_token) = app.create_user("sun.li@example.com", "SALES", &east).await;
    let (successor, successor_token) = app.create_user("zhou.jie@example.com", "SALES", &west).await;
    let a =
        app.create_customer(&leaver_token, json!({"name": "陈静", "kind": "INDIVIDUAL", "phone": "13800138001"})).await;
    let b =
        app.create_customer(&leaver_token, json!({"name": "刘洋", "kind": "INDIVIDUAL", "phone": "13800138002"})).await;

    let deactivate = "mutation($id:ID!,$s:ID){deactivateUser(id:$id,successorId:$s){active version}}";
    let resp = app.gql(Some(t), deactivate, json!({"id": leaver, "s": leaver})).await;
    assert_eq!(code(&resp), "VALIDATION", "the successor must be another user");
    let resp = app.gql(Some(&successor_token), deactivate, json!({"id": leaver, "s": successor})).await;
    assert_eq!(code(&resp), "FORBIDDEN");

    let data = app.ok(t, deactivate, json!({"id": leaver, "s": successor})).await;
    assert_eq!(data["deactivateUser"], json!({"active": false, "version": 2}));
    for c in [&a, &b] {
        let data = app
            .ok(
                &successor_token,
                "query($id:ID!){customer(id:$id){ownerId departmentId version}}",
                json!({"id": c["id"]}),
            )
            .await;
        assert_eq!(data["customer"], json!({"ownerId": successor, "departmentId": west, "version": 2}));
        assert_eq!(app.audit_count(c["id"].as_str().unwrap()).await, 2, "create + the hand-over");
    }
    let resp = app.gql(Some(&leaver_token), "{me{id}}", json!({})).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED");

    // A deactivated user cannot take customers over.
    let (third, _) = app.create_user("qian.wei@example.com", "SALES", &east).await;
    let resp = app.gql(Some(t), deactivate, json!({"id": third, "s": leaver})).await;
    assert_eq!(code(&resp), "VALIDATION");
}

#[tokio::test]
async fn departments_form_a_tree() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东大区", None).await;
    let shanghai = app.create_department("上海分公司", Some(&east)).await;
    let q = "query($id:ID!){department(id:$id){name parentId parent{name}}}";
    let data = app.ok(t, q, json!({"id": shanghai})).await;
    assert_eq!(data["department"], json!({"name": "上海分公司", "parentId": east, "parent": {"name": "华东大区"}}));
    let data = app.ok(t, "{departments{name}}", json!({})).await;
    let names: Vec<&str> =
        data["departments"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"华东大区") && names.contains(&"上海分公司"), "{names:?}");
    assert_eq!(code(&app.gql(Some(t), q, json!({"id": uuid::Uuid::now_v7()})).await), "NOT_FOUND");

    let create = "mutation($n:String!,$p:ID){createDepartment(input:{name:$n,parentId:$p}){id}}";
    let resp = app.gql(Some(t), create, json!({"n": "上海分公司", "p": east})).await;
    assert_eq!(code(&resp), "DUPLICATE");
    let resp = app.gql(Some(t), create, json!({"n": " ", "p": uuid::Uuid::now_v7()})).await;
    assert_eq!(code(&resp), "VALIDATION");
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    assert_eq!(code(&app.gql(Some(&rep), create, json!({"n": "杭州分公司", "p": east})).await), "FORBIDDEN");
}

#[tokio::test]
async fn exchange_rates_are_settings_that_regrade() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let set = "mutation($c:String!,$r:String!){setExchangeRate(currency:$c,rate:$r){currency rate}}";
    let data = app.ok(t, set, json!({"c": "usd", "r": "7.1"})).await;
    assert_eq!(data["setExchangeRate"], json!({"currency": "USD", "rate": "7.100000"}));
    let run = wait_for_pass(&app).await;
    assert_eq!(run["reason"], "POLICY_CHANGE");
    app.ok(t, set, json!({"c": "USD", "r": "7.25"})).await;
    wait_for_pass(&app).await;
    let data = app.ok(t, "{exchangeRates{currency rate}}", json!({})).await;
    let usd: Vec<&Value> =
        data["exchangeRates"].as_array().unwrap().iter().filter(|r| r["currency"] == "USD").collect();
    assert_eq!(usd, [&json!({"currency": "USD", "rate": "7.250000"})]);

    for (c, r) in [("USD", "0"), ("USD", "-1"), ("USD", "abc"), ("DOLLARS", "7")] {
        assert_eq!(code(&app.gql(Some(t), set, json!({"c": c, "r": r})).await), "VALIDATION", "{c} {r}");
    }
    let east = app.create_department("华东大区", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    assert_eq!(code(&app.gql(Some(&rep), set, json!({"c": "EUR", "r": "7.8"})).await), "FORBIDDEN");
    assert_eq!(code(&app.gql(None, "{exchangeRates{currency}}", json!({})).await), "UNAUTHENTICATED");
}

/// The last active admin cannot be demoted (or deactivated): nobody could manage users or
/// settings any more. Two admins demoting each other at the same moment: one wins.
#[tokio::test]
async fn the_last_admin_stays() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let root = app.ok(t, "{me{id version}}", json!({})).await["me"].clone();
    let demote = |id: &Value, version: &Value| json!({"i": {"id": id, "version": version, "role": "MANAGER"}});
    let resp = app.gql(Some(t), UPDATE_USER, demote(&root["id"], &root["version"])).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    let renamed =
        app.ok(t, UPDATE_USER, json!({"i": {"id": root["id"], "version": root["version"], "name": "总管理员"}})).await;
    assert_eq!(renamed["updateUser"]["name"], "总管理员");

    let hq = app.create_department("总部", None).await;
    let (second, second_token) = app.create_user("second.admin@example.com", "ADMIN", &hq).await;
    let data = app.ok(t, "{users(first:100, filter:{role:ADMIN}){nodes{id version}}}", json!({})).await;
    let admins = data["users"]["nodes"].as_array().unwrap().clone();
    let version_of = |id: &Value| admins.iter().find(|a| &a["id"] == id).unwrap()["version"].clone();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for (token, target) in [(t.clone(), json!(second)), (second_token.clone(), root["id"].clone())] {
        let (client, url, start) = (app.client.clone(), app.url("/graphql"), start.clone());
        let body = json!({"query": UPDATE_USER, "variables": demote(&target, &version_of(&target))});
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let resp: Value =
                client.post(url).bearer_auth(token).json(&body).send().await.unwrap().json().await.unwrap();
            resp
        }));
    }
    let mut applied = 0;
    for task in tasks {
        let resp = task.await.unwrap();
        match resp.get("errors") {
            None => applied += 1,
            // CONFLICT (the last admin), or FORBIDDEN when its own demotion committed first.
            Some(_) => assert!(["CONFLICT", "FORBIDDEN"].contains(&code(&resp)), "{resp}"),
        }
    }
    assert_eq!(applied, 1);
    // Whichever of the two is still an admin counts the admins: exactly one.
    let query = "{users(first:100, filter:{role:ADMIN, active:true}){totalCount}}";
    let mut counted = Vec::new();
    for token in [t, &second_token] {
        let resp = app.gql(Some(token), query, json!({})).await;
        if resp.get("errors").is_none() {
            counted.push(resp["data"]["users"]["totalCount"].as_i64().unwrap());
        }
    }
    assert_eq!(counted, [1], "one active admin remains, and only it may list users");
}
