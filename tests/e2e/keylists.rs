//! The key customer lists of seed 001 on hand-built data, within the caller's scope.
use crate::helpers::*;
use chrono::{Datelike, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

async fn org(app: &TestApp, token: &str, name: &str) -> Value {
    app.create_customer(token, json!({"name": name, "kind": "ORGANIZATION"})).await["id"].clone()
}

async fn won(app: &TestApp, token: &str, customer: &Value, amount: &str, closed: NaiveDate, products: &[&str]) {
    let lines: Vec<Value> =
        products.iter().map(|p| json!({"product": p, "quantity": 1, "unitPrice": amount})).collect();
    let input = if lines.is_empty() {
        json!({"customerId": customer, "title": "单", "stage": "WON", "amount": amount, "actualCloseDate": closed.to_string()})
    } else {
        json!({"customerId": customer, "title": "单", "stage": "WON", "lineItems": lines, "actualCloseDate": closed.to_string()})
    };
    app.ok(token, "mutation($i:CreateDealInput!){createDeal(input:$i){id}}", json!({"i": input})).await;
}

fn ago(days: i64) -> NaiveDate {
    Utc::now().date_naive() - Duration::days(days)
}

async fn names(app: &TestApp, token: &str, list: &str, args: &str) -> Vec<(String, Value)> {
    let q = format!(
        "{{l: {list}{args} {{totalCount edges{{node{{rank count revenue{{amount}} orderedThisYear customer{{name}}}}}}}}}}"
    );
    let data = app.ok(token, &q, json!({})).await;
    let edges = data["l"]["edges"].as_array().unwrap();
    assert_eq!(data["l"]["totalCount"].as_u64().unwrap() as usize, edges.len(), "{list}: totalCount");
    edges.iter().map(|e| (e["node"]["customer"]["name"].as_str().unwrap().to_string(), e["node"].clone())).collect()
}

fn just_names(rows: &[(String, Value)]) -> Vec<&str> {
    rows.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn key_lists() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();

    // gold: 20 buyers, revenue 1,000 .. 20,000; the top 5% is one customer
    for i in 1..=20 {
        let c = org(&app, &t, &format!("买家{i:02}")).await;
        won(&app, &t, &c, &format!("{}", i * 1000), ago(10), &[]).await;
    }
    assert_eq!(just_names(&names(&app, &t, "goldCustomers", "").await), ["买家20"]);
    let top = names(&app, &t, "goldCustomers", "(topPercent: 10)").await;
    assert_eq!(just_names(&top), ["买家20", "买家19"]);
    assert_eq!(top[0].1["revenue"]["amount"], "20000.00");

    // drag: bought 400 days ago, nothing since
    let silent = org(&app, &t, "沉睡客户").await;
    won(&app, &t, &silent, "5000", ago(400), &[]).await;
    let recent = org(&app, &t, "活跃客户").await;
    won(&app, &t, &recent, "5000", ago(300), &[]).await;
    assert_eq!(just_names(&names(&app, &t, "dragCustomers", "").await), ["沉睡客户"]);

    // last year's top customers and whether they ordered this year
    let today = Utc::now().date_naive();
    let last_year = NaiveDate::from_ymd_opt(today.year() - 1, 6, 1).unwrap();
    let this_year = NaiveDate::from_ymd_opt(today.year(), 1, 2).unwrap();
    let loyal = org(&app, &t, "老大客户").await;
    won(&app, &t, &loyal, "500000", last_year, &[]).await;
    won(&app, &t, &loyal, "1000", this_year, &[]).await;
    let lapsed = org(&app, &t, "流失大客户").await;
    won(&app, &t, &lapsed, "300000", last_year, &[]).await;
    let rows = names(&app, &t, "lastYearTopCustomers", "(top: 2)").await;
    assert_eq!(just_names(&rows), ["老大客户", "流失大客户"]);
    assert_eq!(
        (rows[0].1["orderedThisYear"].as_bool(), rows[1].1["orderedThisYear"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(rows[0].1["revenue"]["amount"], "500000.00");

    // big customers who complained repeatedly
    let complain = |c: Value| {
        let app = &app;
        let t = t.clone();
        async move {
            app.ok(&t, "mutation($c:ID!){createFeedback(input:{customerId:$c,kind:COMPLAINT,channel:PHONE,content:\"投诉\"}){id}}", json!({"c": c})).await;
        }
    };
    let big = org(&app, &t, "大客户投诉").await;
    won(&app, &t, &big, "90000", ago(5), &[]).await;
    let small = org(&app, &t, "小客户投诉").await;
    won(&app, &t, &small, "100", ago(5), &[]).await;
    let once = org(&app, &t, "大客户一次").await;
    won(&app, &t, &once, "90000", ago(5), &[]).await;
    for c in [&big, &big, &small, &small, &once] {
        complain(c.clone()).await;
    }
    let rows = names(&app, &t, "complainingKeyCustomers", "").await;
    assert_eq!(just_names(&rows), ["大客户投诉"]);
    assert_eq!(rows[0].1["count"], 2);

    // cross-sell: buyers of one or two products
    let narrow = org(&app, &t, "单品客户").await;
    won(&app, &t, &narrow, "100", ago(3), &["茶叶"]).await;
    let broad = org(&app, &t, "多品客户").await;
    won(&app, &t, &broad, "100", ago(3), &["茶叶", "围巾", "大衣"]).await;
    let rows = names(&app, &t, "crossSellCandidates", "").await;
    assert_eq!(just_names(&rows), ["单品客户"]);
    assert_eq!(rows[0].1["count"], 1);

    // organizations with fewer than 3 contacts (every org above has none)
    let staffed = org(&app, &t, "联系人齐全").await;
    for name in ["甲", "乙", "丙"] {
        app.ok(
            &t,
            "mutation($c:ID!,$n:String!){createContact(input:{customerId:$c,name:$n}){id}}",
            json!({"c": staffed, "n": name}),
        )
        .await;
    }
    app.create_customer(&t, json!({"name": "个人客户", "kind": "INDIVIDUAL"})).await;
    let rows = names(&app, &t, "organizationsWithFewContacts", "(first: 100)").await;
    assert!(!just_names(&rows).contains(&"联系人齐全") && !just_names(&rows).contains(&"个人客户"));
    assert_eq!(rows.len(), 29);

    // paging through a list: no row twice, none missing
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .ok(&t, "query($a:String){organizationsWithFewContacts(first: 7, after: $a){edges{node{rank}} pageInfo{hasNextPage endCursor}}}", json!({"a": after}))
            .await;
        let l = &data["organizationsWithFewContacts"];
        seen.extend(l["edges"].as_array().unwrap().iter().map(|e| e["node"]["rank"].as_i64().unwrap()));
        if !l["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = l["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, (1..=29).collect::<Vec<i64>>());

    // scope: a rep's lists hold the rep's customers only
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let mine = org(&app, &rep, "我的客户").await;
    won(&app, &rep, &mine, "100", ago(2), &["茶叶"]).await;
    assert_eq!(just_names(&names(&app, &rep, "organizationsWithFewContacts", "").await), ["我的客户"]);
    assert_eq!(just_names(&names(&app, &rep, "crossSellCandidates", "").await), ["我的客户"]);
    // Gold is the top 5% of the buyers whose amounts the rep sees: his one buyer is it.
    assert_eq!(just_names(&names(&app, &rep, "goldCustomers", "").await), ["我的客户"]);

    // A pool customer the rep may read, with contacts the rep may not: they are not counted.
    let rep_id = app.ok(&rep, "{me{id}}", json!({})).await["me"]["id"].clone();
    let pooled = org(&app, &t, "公海客户").await;
    let assign = "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}";
    app.ok(&t, assign, json!({"id": pooled, "o": rep_id})).await;
    app.ok(&t, assign, json!({"id": pooled, "o": null})).await;
    for name in ["甲", "乙"] {
        app.ok(
            &t,
            "mutation($c:ID!,$n:String!){createContact(input:{customerId:$c,name:$n}){id}}",
            json!({"c": pooled, "n": name}),
        )
        .await;
    }
    let data = app.ok(&rep, "query($id:ID!){customer(id:$id){contacts{totalCount}}}", json!({"id": pooled})).await;
    assert_eq!(data["customer"]["contacts"]["totalCount"], 0);
    let rows = names(&app, &rep, "organizationsWithFewContacts", "").await;
    let row = rows.iter().find(|(n, _)| n == "公海客户").expect("the pool customer is listed");
    assert_eq!(row.1["count"], 0, "contacts the rep may not read are not counted");
}
