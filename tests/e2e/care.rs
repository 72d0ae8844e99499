//! The care engine through the API: reminder rules at their boundaries (driven by the
//! scheduler's tick at chosen instants, never by sleeping), the frequency cap, the
//! reminder lifecycle, ownership changes, follow-up compliance, and idempotence across a
//! restart and two instances.
use crate::helpers::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

const REMINDER: &str = "id rule status dueAt reason message suppressedReason dismissedReason assigneeRole customerId interactionId version";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `d` at `hh:mm` UTC.
pub(crate) fn at(d: NaiveDate, hh: u32, mm: u32) -> DateTime<Utc> {
    d.and_hms_opt(hh, mm, 0).unwrap().and_utc()
}

/// A department with a sales rep; returns (department, rep id, rep token).
async fn rep(app: &TestApp, dept: &str, email: &str) -> (String, String, String) {
    let d = app.create_department(dept, None).await;
    let (id, token) = app.create_user(email, "SALES", &d).await;
    (d, id, token)
}

pub(crate) async fn won_deal(app: &TestApp, customer: &str, amount: &str, closed: NaiveDate, product: &str) -> Value {
    app.ok(
        &app.admin_token,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": customer, "title": "订单", "stage": "WON", "currency": "CNY", "actualCloseDate": closed.to_string(),
                     "lineItems": [{"product": product, "quantity": 1, "unitPrice": amount}]}}),
    )
    .await["createDeal"]
        .clone()
}

/// The customer's marketing consent (promotional reminders need it).
async fn consent(app: &TestApp, token: &str, customer: &Value) {
    app.ok(
        token,
        "mutation($c:ID!){setConsent(customerId:$c, channel:SMS, given:true){given}}",
        json!({"c": customer}),
    )
    .await;
}

pub(crate) async fn reminders(app: &TestApp, token: &str, status: &[&str]) -> Vec<Value> {
    let data = app
        .ok(
            token,
            &format!("query($s:[ReminderStatus!]){{myReminders(status:$s, first:100){{nodes{{{REMINDER}}}}}}}"),
            json!({"s": status}),
        )
        .await;
    data["myReminders"]["nodes"].as_array().unwrap().clone()
}

fn of_rule<'a>(list: &'a [Value], rule: &str) -> Vec<&'a Value> {
    list.iter().filter(|r| r["rule"] == rule).collect()
}

async fn count_reminders(app: &TestApp) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM reminder",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn greeting_and_survey_fall_due_exactly_2_and_7_days_after_a_won_deal() {
    let app = TestApp::spawn().await;
    let (_, _, token) = rep(&app, "华东", "rep@example.com").await;
    let customer =
        app.create_customer(&token, json!({"name": "王女士", "kind": "INDIVIDUAL", "phone": "13800000001"})).await;
    let closed = Utc::now().date_naive() - Duration::days(20);
    won_deal(&app, customer["id"].as_str().unwrap(), "1200.00", closed, "保湿面霜").await;

    // The day after: nothing yet, even late in the evening.
    app.care_tick(at(closed + Duration::days(1), 23, 59)).await;
    assert!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "DEAL_GREETING").is_empty());

    // Two days after: created at the day's start, due at 01:00 UTC (09:00 in China).
    let tick = app.care_tick(at(closed + Duration::days(2), 0, 30)).await;
    assert_eq!(tick.evaluated, vec![closed + Duration::days(2)]);
    let list = reminders(&app, &token, &["PENDING"]).await;
    let greeting = of_rule(&list, "DEAL_GREETING");
    assert_eq!(greeting.len(), 1, "{list:?}");
    let due = DateTime::parse_from_rfc3339(greeting[0]["dueAt"].as_str().unwrap()).unwrap();
    assert_eq!(due, at(closed + Duration::days(2), 1, 0));
    let message = greeting[0]["message"].as_str().unwrap();
    assert!(
        message.contains("王女士") && message.contains("保湿面霜") && message.contains("rep@example.com"),
        "{message}"
    );
    assert!(tick.delivered.is_empty(), "not due before 01:00");
    assert_eq!(
        app.care_tick(at(closed + Duration::days(2), 1, 0)).await.delivered.len(),
        1,
        "announced when due, once"
    );
    assert!(app.care_tick(at(closed + Duration::days(2), 1, 30)).await.delivered.is_empty());

    // The survey: not on day 6, exactly on day 7.
    app.care_tick(at(closed + Duration::days(6), 12, 0)).await;
    assert!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "SATISFACTION_SURVEY").is_empty());
    app.care_tick(at(closed + Duration::days(7), 1, 0)).await;
    assert_eq!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "SATISFACTION_SURVEY").len(), 1);

    // Idempotent: the rules of a day evaluated again create nothing (the unique key), a
    // restarted server (another instance on the same database) neither.
    let before = count_reminders(&app).await;
    assert_eq!(service::care::evaluate(&app.db, closed + Duration::days(2)).await.unwrap(), 0);
    assert_eq!(service::care::evaluate(&app.db, closed + Duration::days(7)).await.unwrap(), 0);
    let restarted = app.another_instance(|_| {}).await;
    let tick = restarted.care_tick(at(closed + Duration::days(7), 2, 0)).await;
    assert!(tick.evaluated.is_empty() && tick.delivered.is_empty(), "{tick:?}");
    assert_eq!(count_reminders(&app).await, before);
}

#[tokio::test]
async fn two_instances_ticking_at_once_create_each_reminder_once() {
    let app = TestApp::spawn().await;
    let (_, _, token) = rep(&app, "华南", "rep@example.com").await;
    let closed = Utc::now().date_naive() - Duration::days(30);
    for i in 0..5 {
        let c = app
            .create_customer(
                &token,
                json!({"name": format!("客户{i}"), "kind": "INDIVIDUAL", "phone": format!("1390000000{i}")}),
            )
            .await;
        won_deal(&app, c["id"].as_str().unwrap(), "500.00", closed, "口红").await;
    }
    let second = app.another_instance(|_| {}).await;
    let when = at(closed + Duration::days(2), 3, 0);
    let (a, b) = tokio::join!(app.care_tick(when), second.care_tick(when));
    assert_eq!(a.created + b.created, 5, "{a:?} {b:?}");
    assert_eq!(a.delivered.len() + b.delivered.len(), 5, "each reminder is announced by one instance");
    // Evaluating the same day on both instances again, bypassing the daily gate: the
    // unique key still keeps one reminder per occasion.
    let (x, y) = tokio::join!(
        service::care::evaluate(&app.db, when.date_naive()),
        service::care::evaluate(&second.db, when.date_naive())
    );
    assert_eq!(x.unwrap() + y.unwrap(), 0);
    assert_eq!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "DEAL_GREETING").len(), 5);
}

#[tokio::test]
async fn birthdays_across_the_year_end_and_29_february() {
    let app = TestApp::spawn().await;
    app.keep_customers_owned().await;
    let (_, _, token) = rep(&app, "华北", "rep@example.com").await;
    let person = app
        .create_customer(
            &token,
            json!({"name": "李先生", "kind": "INDIVIDUAL", "phone": "13700000001", "birthday": "1990-01-02"}),
        )
        .await;
    let org = app.create_customer(&token, json!({"name": "闰年公司", "kind": "ORGANIZATION"})).await;
    // Birthday greetings are promotional: they need marketing consent.
    for c in [&person["id"], &org["id"]] {
        consent(&app, &token, c).await;
    }
    app.ok(
        &token,
        "mutation($c:ID!){createContact(input:{customerId:$c,name:\"赵经理\",birthday:\"2000-02-29\"}){id}}",
        json!({"c": org["id"]}),
    )
    .await;

    // Three days ahead (the default): 2 January is announced on 30 December, not before.
    app.care_tick(at(day("2026-12-29"), 2, 0)).await;
    assert!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "BIRTHDAY").is_empty());
    app.care_tick(at(day("2026-12-30"), 2, 0)).await;
    let list = reminders(&app, &token, &["PENDING"]).await;
    let birthday = of_rule(&list, "BIRTHDAY");
    assert_eq!(birthday.len(), 1, "{list:?}");
    assert_eq!(birthday[0]["customerId"], person["id"]);
    assert!(birthday[0]["reason"].as_str().unwrap().contains("2027-01-02"), "{}", birthday[0]);
    assert!(birthday[0]["message"].as_str().unwrap().contains("1月2日"));

    // 29 February in a common year is kept on the 28th (announced 25 February)...
    app.care_tick(at(day("2027-02-25"), 2, 0)).await;
    let feb = of_rule(&reminders(&app, &token, &["PENDING"]).await, "BIRTHDAY")
        .into_iter()
        .filter(|r| r["reason"].as_str().unwrap().contains("赵经理"))
        .count();
    assert_eq!(feb, 1);
    // ...and on the day itself in a leap year: not on 25 February 2028, on the 26th.
    app.care_tick(at(day("2028-02-25"), 2, 0)).await;
    let count = |list: Vec<Value>| {
        list.iter().filter(|r| r["rule"] == "BIRTHDAY" && r["reason"].as_str().unwrap().contains("2028-02-29")).count()
    };
    assert_eq!(count(reminders(&app, &token, &["PENDING"]).await), 0);
    app.care_tick(at(day("2028-02-26"), 2, 0)).await;
    assert_eq!(count(reminders(&app, &token, &["PENDING"]).await), 1);
}

#[tokio::test]
async fn holiday_greetings_and_the_frequency_cap() {
    let app = TestApp::spawn().await;
    let (_, _, token) = rep(&app, "西南", "rep@example.com").await;
    // Make the survey promotional too, so that it and a birthday compete for the cap.
    let policy = app.ok(&app.admin_token, "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays} dueHourUtc}}", json!({})).await["carePolicy"].clone();
    let mut input = policy.clone();
    input.as_object_mut().unwrap().remove("version");
    for rule in input["rules"].as_array_mut().unwrap() {
        if rule["kind"] == "SATISFACTION_SURVEY" {
            rule["promotional"] = json!(true);
        }
    }
    let stale = app
        .gql(
            Some(&app.admin_token),
            "mutation($i:CarePolicyInput!){updateCarePolicy(input:$i, version:99){version}}",
            json!({"i": input}),
        )
        .await;
    assert_eq!(code(&stale), "CONFLICT");
    let mut bad = input.clone();
    bad["frequencyCap"]["days"] = json!(0);
    let invalid = app
        .gql(
            Some(&app.admin_token),
            "mutation($i:CarePolicyInput!){updateCarePolicy(input:$i, version:1){version}}",
            json!({"i": bad}),
        )
        .await;
    assert_eq!(code(&invalid), "VALIDATION");
    let denied = app
        .gql(
            Some(&token),
            "mutation($i:CarePolicyInput!){updateCarePolicy(input:$i, version:1){version}}",
            json!({"i": input}),
        )
        .await;
    assert_eq!(code(&denied), "FORBIDDEN");
    app.ok(
        &app.admin_token,
        "mutation($i:CarePolicyInput!){updateCarePolicy(input:$i, version:1){version}}",
        json!({"i": input}),
    )
    .await;

    // A tier A individual: survey due 9 March (promotional now), birthday reminder 17 March.
    let c = app
        .create_customer(
            &token,
            json!({"name": "陈女士", "kind": "INDIVIDUAL", "phone": "13600000001", "birthday": "1985-03-20"}),
        )
        .await;
    let id = c["id"].as_str().unwrap();
    consent(&app, &token, &c["id"]).await;
    won_deal(&app, id, "90000.00", day("2026-03-02"), "貂皮大衣").await;
    app.care_tick(at(day("2026-03-09"), 2, 0)).await;
    assert_eq!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "SATISFACTION_SURVEY").len(), 1);
    app.care_tick(at(day("2026-03-17"), 2, 0)).await;
    let suppressed = reminders(&app, &token, &["SUPPRESSED"]).await;
    let birthday = of_rule(&suppressed, "BIRTHDAY");
    assert_eq!(birthday.len(), 1, "{suppressed:?}");
    let why = birthday[0]["suppressedReason"].as_str().unwrap();
    assert!(why.contains("frequency cap") && why.contains("2026-03-09") && why.contains("30 days"), "{why}");
    assert!(
        of_rule(&reminders(&app, &token, &["PENDING"]).await, "BIRTHDAY").is_empty(),
        "a suppressed reminder is not pending"
    );
    assert!(
        app.care_tick(at(day("2026-03-17"), 5, 0)).await.delivered.is_empty(),
        "a suppressed reminder is never announced"
    );

    // Holiday greetings: National Day, a day ahead, for tiers A to C; the cap does not apply.
    app.care_tick(at(day("2026-09-29"), 2, 0)).await;
    assert!(of_rule(&reminders(&app, &token, &["PENDING"]).await, "HOLIDAY").is_empty());
    app.care_tick(at(day("2026-09-30"), 2, 0)).await;
    let list = reminders(&app, &token, &["PENDING"]).await;
    let holiday = of_rule(&list, "HOLIDAY");
    assert_eq!(holiday.len(), 1, "{list:?}");
    assert!(holiday[0]["message"].as_str().unwrap().contains("国庆节"), "{}", holiday[0]);

    // A holiday added as data works the same way; a prospect (tier D) gets no greeting.
    app.ok(
        &app.admin_token,
        "mutation{addHoliday(name:\"店庆 Store anniversary\", date:\"2026-11-11\", yearly:true){id}}",
        json!({}),
    )
    .await;
    app.create_customer(&token, json!({"name": "新客", "kind": "INDIVIDUAL", "phone": "13600000002"})).await;
    app.care_tick(at(day("2026-11-10"), 2, 0)).await;
    let holiday: Vec<Value> = reminders(&app, &token, &["PENDING"])
        .await
        .into_iter()
        .filter(|r| r["rule"] == "HOLIDAY" && r["reason"].as_str().unwrap().contains("店庆"))
        .collect();
    assert_eq!(holiday.len(), 1);
    assert_eq!(holiday[0]["customerId"], c["id"]);
}

#[tokio::test]
async fn reminders_follow_their_customer_and_are_completed_snoozed_or_dismissed() {
    let app = TestApp::spawn().await;
    let (dept, _, first) = rep(&app, "东北", "one@example.com").await;
    let (second_id, second) = app.create_user("two@example.com", "SALES", &dept).await;
    let closed = Utc::now().date_naive() - Duration::days(10);
    let mut customers = Vec::new();
    for i in 0..3 {
        let c = app
            .create_customer(
                &first,
                json!({"name": format!("客户{i}"), "kind": "INDIVIDUAL", "phone": format!("1350000000{i}")}),
            )
            .await;
        won_deal(&app, c["id"].as_str().unwrap(), "800.00", closed, "围巾").await;
        customers.push(c);
    }
    app.care_tick(at(closed + Duration::days(2), 2, 0)).await;
    assert_eq!(reminders(&app, &first, &["PENDING"]).await.len(), 3);

    // The customer changes owner: its reminder goes with it.
    app.ok(
        &app.admin_token,
        "mutation($id:ID!,$o:ID){assignCustomer(id:$id, ownerId:$o){id}}",
        json!({"id": customers[0]["id"], "o": second_id}),
    )
    .await;
    assert_eq!(reminders(&app, &first, &["PENDING"]).await.len(), 2);
    let moved = reminders(&app, &second, &["PENDING"]).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["customerId"], customers[0]["id"]);
    let gone = app
        .gql(
            Some(&first),
            "mutation($id:ID!){dismissReminder(id:$id, reason:\"x\"){id}}",
            json!({"id": moved[0]["id"]}),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND", "the former owner no longer has it");

    // Complete: logs the interaction in the same step.
    let done = app
        .ok(
            &second,
            &format!("mutation($id:ID!){{completeReminder(id:$id, interaction:{{kind:WECHAT, summary:\"发了问候\"}}){{reminder{{{REMINDER}}} interaction{{id kind customerId}}}}}}"),
            json!({"id": moved[0]["id"]}),
        )
        .await["completeReminder"]
        .clone();
    assert_eq!(done["reminder"]["status"], "DONE");
    assert_eq!(done["reminder"]["interactionId"], done["interaction"]["id"]);
    assert_eq!(done["interaction"]["customerId"], customers[0]["id"]);
    let again = app
        .gql(
            Some(&second),
            "mutation($id:ID!){completeReminder(id:$id, interaction:{kind:CALL, summary:\"again\"}){reminder{id}}}",
            json!({"id": moved[0]["id"]}),
        )
        .await;
    assert_eq!(code(&again), "CONFLICT");
    let bad = app
        .gql(
            Some(&first),
            "mutation($id:ID!){completeReminder(id:$id, interaction:{kind:CALL, summary:\" \"}){reminder{id}}}",
            json!({"id": reminders(&app, &first, &["PENDING"]).await[0]["id"]}),
        )
        .await;
    assert_eq!(code(&bad), "VALIDATION");

    // Snooze: gone from the due list until its new time, announced again then.
    let mine = reminders(&app, &first, &["PENDING"]).await;
    let until = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let past = app
        .gql(
            Some(&first),
            "mutation($id:ID!,$u:DateTime!){snoozeReminder(id:$id, until:$u){id}}",
            json!({"id": mine[0]["id"], "u": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code(&past), "VALIDATION");
    let snoozed = app
        .ok(
            &first,
            &format!("mutation($id:ID!,$u:DateTime!){{snoozeReminder(id:$id, until:$u){{{REMINDER}}}}}"),
            json!({"id": mine[0]["id"], "u": until}),
        )
        .await;
    assert_eq!(snoozed["snoozeReminder"]["status"], "SNOOZED");
    let tick = app.care_tick(Utc::now() + Duration::hours(2)).await;
    assert!(tick.delivered.iter().any(|id| id.to_string() == mine[0]["id"].as_str().unwrap()), "{tick:?}");
    let back = reminders(&app, &first, &["PENDING"]).await;
    assert!(back.iter().any(|r| r["id"] == mine[0]["id"]), "a snoozed reminder comes back pending when due");

    // Dismiss: a reason is required.
    let blank = app
        .gql(
            Some(&first),
            "mutation($id:ID!){dismissReminder(id:$id, reason:\"  \"){id}}",
            json!({"id": mine[1]["id"]}),
        )
        .await;
    assert_eq!(code(&blank), "VALIDATION");
    let dismissed = app
        .ok(
            &first,
            &format!("mutation($id:ID!){{dismissReminder(id:$id, reason:\"客户出国\"){{{REMINDER}}}}}"),
            json!({"id": mine[1]["id"]}),
        )
        .await;
    assert_eq!(dismissed["dismissReminder"]["status"], "DISMISSED");
    assert_eq!(dismissed["dismissReminder"]["dismissedReason"], "客户出国");
    assert_eq!(reminders(&app, &first, &["DISMISSED"]).await.len(), 1);
}

#[tokio::test]
async fn overdue_contact_repeated_complaints_and_follow_up_compliance() {
    let app = TestApp::spawn().await;
    let (dept, rep_id, token) = rep(&app, "华中", "rep@example.com").await;
    let (_, other) = app.create_user("other@example.com", "SALES", &dept).await;
    let big = app.create_customer(&token, json!({"name": "大客户公司", "kind": "ORGANIZATION"})).await;
    let small = app.create_customer(&token, json!({"name": "小客户公司", "kind": "ORGANIZATION"})).await;
    let today = Utc::now().date_naive();
    won_deal(&app, big["id"].as_str().unwrap(), "100000.00", today, "设备").await;
    app.ok(
        &token,
        "mutation($c:ID!){createInteraction(input:{customerId:$c, kind:VISIT, summary:\"拜访\"}){id}}",
        json!({"c": big["id"]}),
    )
    .await;

    let report = |as_of: NaiveDate, token: String| {
        let app = &app;
        async move {
            let mut report = app.ok(
                &token,
                "query($d:Date){followUpCompliance(asOf:$d){asOf totalCustomers owners{ownerId customers expected met overdue contactsLogged complianceRate}
                  customers(first:10){nodes{overdue customer{id name tier} expectations{role kind expected periodDays logged lastContactAt dueBy overdue met}}}}}",
                json!({"d": as_of.to_string()}),
            )
            .await["followUpCompliance"]
                .clone();
            // The per-customer rows are a connection; the assertions below read its nodes.
            report["customers"] = report["customers"]["nodes"].clone();
            report
        }
    };
    // Tier A: the rep visits 3 times a month (every 10 days), calls twice (every 15).
    let soon = report(today + Duration::days(5), token.clone()).await;
    assert_eq!(soon["totalCustomers"], 1, "only tiers with standards (the other customer is D)");
    let visit = soon["customers"][0]["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["role"] == "SALES" && e["kind"] == "VISIT")
        .unwrap()
        .clone();
    assert_eq!(
        (visit["expected"].clone(), visit["logged"].clone(), visit["overdue"].clone()),
        (json!(3), json!(1), json!(false))
    );
    assert_eq!(visit["dueBy"], json!((today + Duration::days(10)).to_string()));
    let late = report(today + Duration::days(12), token.clone()).await;
    let owner = &late["owners"][0];
    assert_eq!(owner["ownerId"], json!(rep_id));
    assert_eq!(owner["customers"], 1);
    assert_eq!(owner["expected"], 4, "A has four standards: rep visits and calls, manager and executive visits");
    assert!(owner["overdue"].as_i64().unwrap() >= 1);
    assert_eq!(late["customers"][0]["overdue"], true);
    // Another rep's compliance holds none of these customers.
    assert_eq!(report(today + Duration::days(12), other.clone()).await["totalCustomers"], 0);
    // The customer rows page like every other connection: counted, with cursors of their own.
    let page = "query($d:Date,$a:String,$o:Boolean!){followUpCompliance(asOf:$d){customers(first:1,after:$a,overdueOnly:$o){totalCount edges{cursor node{customer{id}}} pageInfo{hasNextPage endCursor}}}}";
    let late_day = (today + Duration::days(12)).to_string();
    let first =
        app.ok(&token, page, json!({"d": late_day, "o": true})).await["followUpCompliance"]["customers"].clone();
    assert_eq!(first["totalCount"], 1);
    assert_eq!(first["edges"][0]["node"]["customer"]["id"], big["id"]);
    assert_eq!(first["pageInfo"]["hasNextPage"], false);
    let after = first["pageInfo"]["endCursor"].clone();
    let rest =
        app.ok(&token, page, json!({"d": late_day, "o": true, "a": after})).await["followUpCompliance"]["customers"]
            .clone();
    assert_eq!(rest["edges"], json!([]));
    let early =
        app.ok(&token, page, json!({"d": today.to_string(), "o": true})).await["followUpCompliance"]["customers"]
            .clone();
    assert_eq!(early["totalCount"], 0, "nothing is overdue on the first day");
    let foreign = app.ok(&token, "{customers(first:1){pageInfo{endCursor}}}", json!({})).await["customers"]["pageInfo"]
        ["endCursor"]
        .clone();
    let resp = app.gql(Some(&token), page, json!({"d": late_day, "o": false, "a": foreign})).await;
    assert_eq!(code(&resp), "VALIDATION", "a cursor of another list: {resp}");
    let unknown = app
        .gql(
            Some(&token),
            "{followUpCompliance(departmentId:\"0190a8a0-0000-7000-8000-000000000000\"){asOf}}",
            json!({}),
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND");
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &dept).await;
    let denied = app.gql(Some(&analyst), "{followUpCompliance{asOf}}", json!({})).await;
    assert_eq!(code(&denied), "FORBIDDEN");

    // The scheduler raises the overdue visit once, to the owner.
    app.care_tick(at(today + Duration::days(12), 2, 0)).await;
    let overdue: Vec<Value> =
        reminders(&app, &token, &["PENDING"]).await.into_iter().filter(|r| r["rule"] == "OVERDUE_CONTACT").collect();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert!(overdue[0]["reason"].as_str().unwrap().contains("visit"), "{}", overdue[0]);

    // Two complaints from a tier A customer raise a reminder; from a tier D customer none.
    for c in [&big, &big, &small, &small] {
        app.ok(&token, "mutation($c:ID!){createFeedback(input:{customerId:$c,kind:COMPLAINT,channel:PHONE,content:\"质量问题\"}){id}}", json!({"c": c["id"]})).await;
    }
    app.care_tick(Utc::now()).await;
    let complaints: Vec<Value> =
        reminders(&app, &token, &["PENDING"]).await.into_iter().filter(|r| r["rule"] == "REPEATED_COMPLAINT").collect();
    assert_eq!(complaints.len(), 1, "{complaints:?}");
    assert_eq!(complaints[0]["customerId"], big["id"]);
    assert!(complaints[0]["message"].as_str().unwrap().contains("投诉2次"), "{}", complaints[0]);
}

#[tokio::test]
async fn templates_and_holidays_are_data() {
    let app = TestApp::spawn().await;
    let data = app
        .ok(
            &app.admin_token,
            "{messageTemplates{key body version} holidays{name date yearly on(year:2027)}}",
            json!({}),
        )
        .await;
    let keys: Vec<&str> =
        data["messageTemplates"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"deal_greeting") && keys.contains(&"holiday"), "{keys:?}");
    let spring = data["holidays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"].as_str().unwrap().contains("春节") && h["on"] == "2027-02-06");
    assert!(spring.is_some(), "Spring Festival 2027 is in the calendar");

    let unknown = app
        .gql(
            Some(&app.admin_token),
            "mutation{saveMessageTemplate(key:\"promo\", body:\"{customer} {price}\"){key}}",
            json!({}),
        )
        .await;
    assert_eq!(code(&unknown), "VALIDATION");
    assert!(unknown["errors"][0]["message"].as_str().unwrap().contains("price"));
    app.ok(
        &app.admin_token,
        "mutation{saveMessageTemplate(key:\"promo\", body:\"{customer}，新品到店\"){key version}}",
        json!({}),
    )
    .await;
    let stale = app
        .gql(Some(&app.admin_token), "mutation{saveMessageTemplate(key:\"promo\", body:\"x\"){key}}", json!({}))
        .await;
    assert_eq!(code(&stale), "CONFLICT", "replacing needs the version");
    let saved = app
        .ok(
            &app.admin_token,
            "mutation{saveMessageTemplate(key:\"promo\", body:\"{customer}，新品\", version:1){version}}",
            json!({}),
        )
        .await;
    assert_eq!(saved["saveMessageTemplate"]["version"], 2);
    let leap = app
        .gql(
            Some(&app.admin_token),
            "mutation{addHoliday(name:\"x\", date:\"2028-02-29\", yearly:true){id}}",
            json!({}),
        )
        .await;
    assert_eq!(code(&leap), "VALIDATION");
    let added =
        app.ok(&app.admin_token, "mutation{addHoliday(name:\"店庆\", date:\"2027-05-18\"){id}}", json!({})).await;
    let twice = app
        .gql(Some(&app.admin_token), "mutation{addHoliday(name:\"店庆\", date:\"2027-05-18\"){id}}", json!({}))
        .await;
    assert_eq!(code(&twice), "DUPLICATE");
    assert_eq!(twice["errors"][0]["extensions"]["key"], "holiday");
    app.ok(&app.admin_token, "mutation($id:ID!){deleteHoliday(id:$id){id}}", json!({"id": added["addHoliday"]["id"]}))
        .await;
    let gone = app
        .gql(
            Some(&app.admin_token),
            "mutation($id:ID!){deleteHoliday(id:$id){id}}",
            json!({"id": added["addHoliday"]["id"]}),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND");
    let d = app.create_department("d", None).await;
    let (_, token) = app.create_user("rep@example.com", "SALES", &d).await;
    let denied = app.gql(Some(&token), "mutation{addHoliday(name:\"x\", date:\"2028-03-01\"){id}}", json!({})).await;
    assert_eq!(code(&denied), "FORBIDDEN");
}

/// Contacts logged far in the past would count toward compliance and appraisals: staff may
/// backdate at most `maxBackdateDays` (default 7), admins any date.
#[tokio::test]
async fn backdated_contacts_are_bounded() {
    let app = TestApp::spawn().await;
    let (_, _, token) = rep(&app, "华中", "rep@example.com").await;
    let c = app.create_customer(&token, json!({"name": "武汉光谷商贸有限公司", "kind": "ORGANIZATION"})).await;
    let log = "mutation($i:CreateInteractionInput!){createInteraction(input:$i){id}}";
    let when = |days: i64| (Utc::now() - Duration::days(days)).to_rfc3339();
    let input =
        |days: i64| json!({"i": {"customerId": c["id"], "kind": "VISIT", "summary": "拜访", "occurredAt": when(days)}});
    let resp = app.gql(Some(&token), log, input(8)).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    assert_eq!(invalid_fields(&resp), ["occurredAt"]);
    app.ok(&token, log, input(6)).await;
    app.ok(&app.admin_token, log, input(400)).await;

    let query = "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays} dueHourUtc maxBackdateDays}}";
    let policy = app.ok(&app.admin_token, query, json!({})).await["carePolicy"].clone();
    assert_eq!(policy["maxBackdateDays"], 7);
    let mut policy_input = policy.clone();
    policy_input.as_object_mut().unwrap().remove("version");
    let update =
        "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){version maxBackdateDays}}";
    policy_input["maxBackdateDays"] = json!(-1);
    let resp = app.gql(Some(&app.admin_token), update, json!({"i": policy_input, "v": policy["version"]})).await;
    assert_eq!(invalid_fields(&resp), ["maxBackdateDays"], "{resp}");
    policy_input["maxBackdateDays"] = json!(30);
    let saved = app.ok(&app.admin_token, update, json!({"i": policy_input, "v": policy["version"]})).await;
    assert_eq!(saved["updateCarePolicy"]["maxBackdateDays"], 30);
    app.ok(&token, log, input(20)).await;
    // Omitted in a later update: unchanged.
    policy_input.as_object_mut().unwrap().remove("maxBackdateDays");
    let saved =
        app.ok(&app.admin_token, update, json!({"i": policy_input, "v": saved["updateCarePolicy"]["version"]})).await;
    assert_eq!(saved["updateCarePolicy"]["maxBackdateDays"], 30);
}

/// Follow-ups: an interaction's `nextFollowUpOn` plans one for the customer's owner,
/// `createFollowUp` one for whoever sets it; managers see their team's reminders and
/// what is overdue per person.
#[tokio::test]
async fn follow_ups_are_planned_and_managers_see_their_team() {
    let app = TestApp::spawn().await;
    let north = app.create_department("华北", None).await;
    let south = app.create_department("华南", None).await;
    let (_, manager) = app.create_user("boss@example.com", "MANAGER", &north).await;
    let (r1_id, r1) = app.create_user("r1@example.com", "SALES", &north).await;
    let (r2_id, r2) = app.create_user("r2@example.com", "SALES", &north).await;
    let (_, r3) = app.create_user("r3@example.com", "SALES", &south).await;
    let c1 = app.create_customer(&r1, json!({"name": "一号公司", "kind": "ORGANIZATION"})).await;
    let c2 = app.create_customer(&r2, json!({"name": "二号公司", "kind": "ORGANIZATION"})).await;
    let c3 = app.create_customer(&r3, json!({"name": "南方公司", "kind": "ORGANIZATION"})).await;
    let today = Utc::now().date_naive();
    // Follow-ups fall due at midnight UTC of their day, so that one for today is due the
    // moment it is set whatever the hour the test runs (at the default 01:00 it was not,
    // between 00:00 and 01:00 UTC).
    let version = app.ok(&app.admin_token, "{carePolicy{version}}", json!({})).await["carePolicy"]["version"].clone();
    app.ok(
        &app.admin_token,
        "mutation($v:Int!){updateCarePolicy(input:{dueHourUtc:0}, version:$v){version}}",
        json!({"v": version}),
    )
    .await;

    // A visit planning the next one: a FOLLOW_UP for the owner, on that day.
    let log = "mutation($c:ID!,$n:Date){createInteraction(input:{customerId:$c, kind:VISIT, summary:\"谈续约\",
        nextFollowUpOn:$n}){id}}";
    app.ok(&r1, log, json!({"c": c1["id"], "n": (today + Duration::days(3)).to_string()})).await;
    let mine = reminders(&app, &r1, &["PENDING"]).await;
    let planned = of_rule(&mine, "FOLLOW_UP");
    assert_eq!(planned.len(), 1, "{mine:?}");
    assert!(planned[0]["message"].as_str().unwrap().contains("谈续约"), "{}", planned[0]);
    assert_eq!(planned[0]["assigneeRole"], "OWNER");
    assert!(planned[0]["dueAt"].as_str().unwrap().starts_with(&(today + Duration::days(3)).to_string()));

    // A follow-up set by hand, for oneself; mistakes named.
    let set =
        "mutation($c:ID!,$d:Date!,$n:String!){createFollowUp(customerId:$c,dueOn:$d,note:$n){id rule message dueAt}}";
    let made = app.ok(&r2, set, json!({"c": c2["id"], "d": today.to_string(), "n": "寄样品"})).await;
    assert_eq!(made["createFollowUp"]["rule"], "FOLLOW_UP");
    let resp =
        app.gql(Some(&r2), set, json!({"c": c2["id"], "d": (today - Duration::days(1)).to_string(), "n": " "})).await;
    assert_eq!(invalid_fields(&resp), ["note", "dueOn"], "{resp}");
    let resp = app.gql(Some(&r2), set, json!({"c": c3["id"], "d": today.to_string(), "n": "看看"})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    app.ok(&r3, set, json!({"c": c3["id"], "d": today.to_string(), "n": "南方"})).await;

    // The manager's team view: north's reminders only, per person, overdue first. (r2's
    // follow-up fell due the moment it was set; a breath later it is overdue.)
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let load = "{teamLoad{personId open overdue followUps followUpsOverdue}}";
    let data = app.ok(&manager, load, json!({})).await;
    assert_eq!(
        data["teamLoad"],
        json!([
            {"personId": r2_id, "open": 1, "overdue": 1, "followUps": 1, "followUpsOverdue": 1},
            {"personId": r1_id, "open": 1, "overdue": 0, "followUps": 1, "followUpsOverdue": 0}
        ])
    );
    let team = "query($p:ID,$o:Boolean!,$r:[ReminderRule!]){teamReminders(personId:$p, overdueOnly:$o, rules:$r){totalCount nodes{customerId}}}";
    let all = app.ok(&manager, team, json!({"o": false})).await;
    assert_eq!(all["teamReminders"]["totalCount"], 2);
    let overdue = app.ok(&manager, team, json!({"o": true, "r": ["FOLLOW_UP"]})).await;
    assert_eq!(overdue["teamReminders"]["nodes"], json!([{"customerId": c2["id"]}]));
    let one = app.ok(&manager, team, json!({"p": r1_id, "o": false})).await;
    assert_eq!(one["teamReminders"]["nodes"], json!([{"customerId": c1["id"]}]));
    let unknown = app
        .gql(Some(&manager), "{teamLoad(departmentId:\"0190a8a0-0000-7000-8000-000000000000\"){open}}", json!({}))
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    // A rep has no team view, nor a service agent reading every customer, nor a key.
    assert_eq!(code(&app.gql(Some(&r1), load, json!({})).await), "FORBIDDEN");
    let (_, service) = app.create_user("svc@example.com", "SERVICE", &north).await;
    assert_eq!(code(&app.gql(Some(&service), load, json!({})).await), "FORBIDDEN");
    let key = app
        .ok(
            &app.admin_token,
            "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret}}",
            json!({"i": {"name": "同步", "role": "MANAGER", "departmentId": north}}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code(&app.gql(Some(&key), load, json!({})).await), "FORBIDDEN");
    let resp = app.gql(Some(&key), set, json!({"c": c2["id"], "d": today.to_string(), "n": "机器"})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "follow-ups are for people: {resp}");
    let resp = app.gql(Some(&r1), log, json!({"c": c1["id"], "n": "9999-12-31"})).await;
    assert_eq!(invalid_fields(&resp), ["nextFollowUpOn"], "{resp}");

    // The owner's follow-up follows the customer to its new owner.
    let assign = "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}";
    app.ok(&manager, assign, json!({"id": c1["id"], "o": r2_id})).await;
    let data = app.ok(&manager, load, json!({})).await;
    assert_eq!(data["teamLoad"][0]["open"], 2, "{data}");
    assert_eq!(of_rule(&reminders(&app, &r2, &["PENDING"]).await, "FOLLOW_UP").len(), 2);

    // They fall due like every reminder and are announced once.
    let tick = app.care_tick(at(today + Duration::days(4), 2, 0)).await;
    assert_eq!(tick.delivered.len(), 3, "{tick:?}");
}
