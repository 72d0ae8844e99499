//! The public pool and ownership limits: how many customers a rep may hold.
use crate::helpers::*;
use serde_json::{Value, json};

const POLICY: &str = "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays
    minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays} dueHourUtc
    holdingCaps{role max}}}";

const POLICY_WITH_POOL: &str = "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee
    windowDays minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays}
    dueHourUtc holdingCaps{role max} poolReturn{enabled days warnDays byTier{tier days} byCategory{category days}}}}";

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

/// Untended customers return to their department's pool once a day, audited, after a
/// warning to the owner; a category's days override the default.
#[tokio::test]
async fn untended_customers_return_to_the_pool() {
    use chrono::{Duration, Utc};
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let mut input = app.ok(&admin, POLICY_WITH_POOL, json!({})).await["carePolicy"].clone();
    let version = input.as_object_mut().unwrap().remove("version").unwrap();
    assert_eq!(
        input["poolReturn"],
        json!({"enabled": true, "days": 90, "warnDays": 7, "byTier": [], "byCategory": []}),
        "the default"
    );
    input["poolReturn"] = json!({"enabled": true, "days": 30, "warnDays": 5, "byTier": [],
        "byCategory": [{"category": "VIP", "days": 60}]});
    let update = "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){poolReturn{byCategory{category days}}}}";
    let mut bad = input.clone();
    bad["poolReturn"]["days"] = json!(0);
    let resp = app.gql(Some(&admin), update, json!({"i": bad, "v": version})).await;
    assert_eq!(invalid_fields(&resp), ["poolReturn.days", "poolReturn.warnDays"], "{resp}");
    let saved = app.ok(&admin, update, json!({"i": input, "v": version})).await;
    assert_eq!(saved["updateCarePolicy"]["poolReturn"]["byCategory"], json!([{"category": "vip", "days": 60}]));

    let stale = app.create_customer(&rep, json!({"name": "久未联系", "kind": "ORGANIZATION"})).await;
    let tended = app.create_customer(&rep, json!({"name": "常联系", "kind": "ORGANIZATION"})).await;
    let vip = app.create_customer(&rep, json!({"name": "贵宾", "kind": "ORGANIZATION", "category": "vip"})).await;
    let called = app.create_customer(&rep, json!({"name": "被提醒后联系", "kind": "ORGANIZATION"})).await;
    let log = "mutation($c:ID!){createInteraction(input:{customerId:$c, kind:CALL, summary:\"回访\"}){id}}";
    app.ok(&rep, log, json!({"c": tended["id"]})).await;
    // The stale one was handed to the rep 40 days ago (and never contacted since).
    let long_ago = Utc::now() - Duration::days(40);
    let mut q = Query::update();
    q.table(Alias::new("customer"))
        .value(Alias::new("owned_since"), long_ago)
        .and_where(Expr::col(Alias::new("id")).eq(uuid::Uuid::parse_str(stale["id"].as_str().unwrap()).unwrap()));
    app.db.execute(&q).await.unwrap();
    let mut q = Query::update();
    q.table(Alias::new("customer"))
        .value(Alias::new("owned_since"), long_ago)
        .and_where(Expr::col(Alias::new("id")).eq(uuid::Uuid::parse_str(called["id"].as_str().unwrap()).unwrap()));
    app.db.execute(&q).await.unwrap();

    let owner = |id: Value| {
        let app = &app;
        async move {
            app.ok(&app.admin_token, "query($id:ID!){customer(id:$id){ownerId}}", json!({"id": id})).await["customer"]
                ["ownerId"]
                .clone()
        }
    };
    let today = Utc::now().date_naive();
    let at = |d: chrono::NaiveDate| d.and_hms_opt(2, 0, 0).unwrap().and_utc();
    let pool_warnings = || {
        let (app, rep) = (&app, rep.clone());
        async move {
            crate::care::reminders(app, &rep, &["PENDING"])
                .await
                .into_iter()
                .filter(|r| r["rule"] == "POOL_RETURN")
                .map(|r| r["customerId"].as_str().unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    // Past its time but never warned: warned today, back in the pool five days later.
    app.care_tick(at(today)).await;
    assert!(owner(stale["id"].clone()).await.is_string(), "not without a warning");
    let id = |c: &Value| c["id"].as_str().unwrap().to_string();
    assert_eq!(pool_warnings().await, [id(&stale), id(&called)].into());
    // A contact after the warning closes it and restarts the clock.
    app.ok(&rep, log, json!({"c": called["id"]})).await;
    assert_eq!(pool_warnings().await, [id(&stale)].into());
    app.care_tick(at(today + Duration::days(4))).await;
    assert!(owner(stale["id"].clone()).await.is_string());
    app.care_tick(at(today + Duration::days(5))).await;
    assert_eq!(owner(stale["id"].clone()).await, Value::Null, "returned");
    assert_eq!(app.audit_count(stale["id"].as_str().unwrap()).await, 2, "created, returned");
    let pool = app.ok(&rep, "query($id:ID!){customer(id:$id){inPublicPool}}", json!({"id": stale["id"]})).await;
    assert_eq!(pool["customer"]["inPublicPool"], true, "in the rep's department's pool");
    assert!(pool_warnings().await.is_empty(), "its warning closed with the return");
    assert!(owner(called["id"].clone()).await.is_string(), "contacted: kept");

    // The contacted one: warned five days before its 30 days are up (once), then back.
    for d in 20..=24 {
        app.care_tick(at(today + Duration::days(d))).await;
    }
    assert!(pool_warnings().await.is_empty(), "not warned early");
    for d in 25..=27 {
        app.care_tick(at(today + Duration::days(d))).await;
    }
    assert_eq!(pool_warnings().await, [id(&tended), id(&called)].into(), "warned once each");
    assert!(owner(tended["id"].clone()).await.is_string());
    // A gift is no contact: the VIP's clock runs on (checked below).
    let gift = "mutation($c:ID!){createInteraction(input:{customerId:$c, kind:GIFT, summary:\"月饼\"}){id}}";
    app.ok(&rep, gift, json!({"c": vip["id"]})).await;
    for d in 28..=32 {
        app.care_tick(at(today + Duration::days(d))).await;
    }
    assert_eq!(owner(tended["id"].clone()).await, Value::Null);
    assert_eq!(owner(called["id"].clone()).await, Value::Null);
    // The VIP category keeps its customers 60 days.
    assert!(owner(vip["id"].clone()).await.is_string());
    for d in 50..=62 {
        app.care_tick(at(today + Duration::days(d))).await;
    }
    assert_eq!(owner(vip["id"].clone()).await, Value::Null);
}

/// `updateCarePolicy` changes only the parts it is given: a holding cap alone, the pool's
/// period alone, one reminder rule alone; the rest stays, and a stale version is CONFLICT.
#[tokio::test]
async fn care_policy_parts_change_alone() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let query = POLICY_WITH_POOL.replacen("{carePolicy", "", 1);
    let query = &query[..query.len() - 1];
    let update = format!("mutation($i:CarePolicyInput!,$v:Int!){{updateCarePolicy(input:$i, version:$v){query}}}");
    let before = app.ok(&admin, POLICY_WITH_POOL, json!({})).await["carePolicy"].clone();
    let parts = ["standards", "rules", "frequencyCap", "dueHourUtc", "holdingCaps", "poolReturn"];
    let same_but = |after: &Value, changed: &[&str]| {
        for part in parts.iter().filter(|p| !changed.contains(p)) {
            assert_eq!(after[part], before[part], "{part} stays");
        }
    };

    let capped = app
        .ok(&admin, &update, json!({"i": {"holdingCaps": [{"role": "SALES", "max": 40}]}, "v": before["version"]}))
        .await["updateCarePolicy"]
        .clone();
    assert_eq!(capped["holdingCaps"], json!([{"role": "SALES", "max": 40}]));
    same_but(&capped, &["holdingCaps"]);

    let stale =
        app.gql(Some(&admin), &update, json!({"i": {"poolReturn": {"days": 60}}, "v": before["version"]})).await;
    assert_eq!(code(&stale), "CONFLICT", "{stale}");

    let period = app.ok(&admin, &update, json!({"i": {"poolReturn": {"days": 60}}, "v": capped["version"]})).await
        ["updateCarePolicy"]
        .clone();
    assert_eq!(period["poolReturn"]["days"], 60);
    assert_eq!(period["poolReturn"]["warnDays"], before["poolReturn"]["warnDays"]);
    assert_eq!(period["poolReturn"]["enabled"], before["poolReturn"]["enabled"]);
    assert_eq!(period["holdingCaps"], capped["holdingCaps"], "the earlier change holds");

    // One rule, given whole, replaces the rule of its kind; the others stay where they were.
    let mut rule = before["rules"][0].clone();
    rule["enabled"] = json!(!rule["enabled"].as_bool().unwrap());
    let ruled =
        app.ok(&admin, &update, json!({"i": {"rules": [rule]}, "v": period["version"]})).await["updateCarePolicy"]
            .clone();
    assert_eq!(ruled["rules"].as_array().unwrap().len(), before["rules"].as_array().unwrap().len());
    assert_eq!(ruled["rules"][0], rule);
    assert_eq!(ruled["rules"].as_array().unwrap()[1..], before["rules"].as_array().unwrap()[1..]);

    // Bad parts are still refused by name.
    let bad = app.gql(Some(&admin), &update, json!({"i": {"poolReturn": {"days": 0}}, "v": ruled["version"]})).await;
    assert_eq!(code(&bad), "VALIDATION", "{bad}");
}
