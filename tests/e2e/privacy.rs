//! Privacy (`docs/privacy.md`, `docs/access.md`): reports that cannot single out a
//! person, field groups applied record by record, staff accounts, reminders and
//! duplicates that tell no more than the caller may know.
use crate::helpers::*;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

async fn won(app: &TestApp, customer: &str, amount: &str) {
    app.ok(
        &app.admin_token,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": customer, "title": "订单", "stage": "WON", "currency": "CNY", "amount": amount,
                     "actualCloseDate": (Utc::now().date_naive() - Duration::days(3)).to_string()}}),
    )
    .await;
}

fn ids(list: &Value) -> Vec<&str> {
    list["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap()).collect()
}

/// Before: the analyst, who reads no customer, narrowed `classificationReport` with the
/// customer filter's `phone`/`email`/`name`/`id` and read a phone number off the counts
/// a digit at a time; and a group of two customers showed their revenue.
#[tokio::test]
async fn reports_cannot_single_out_a_person() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let dept = app.create_department("华东", None).await;
    let (_, analyst) = app.create_user("analyst@example.com", "ANALYST", &dept).await;
    let mut n = 0;
    for (region, count) in [("华东", 6), ("西北", 2), ("东北", 2), ("华北", 2)] {
        for _ in 0..count {
            n += 1;
            let c = app
                .create_customer(
                    t,
                    json!({"name": format!("客户{n}"), "kind": "INDIVIDUAL", "phone": format!("138000000{n:02}"), "region": region}),
                )
                .await;
            won(&app, c["id"].as_str().unwrap(), "1000.00").await;
        }
    }
    let report = "query($f:ReportFilter){classificationReport(groupBy:[REGION], filter:$f){suppressed keys{value} customerCount revenue{amount} revenueShare}}";
    // The admin reads every customer: every group, however small.
    let all = app.ok(t, report, json!({})).await["classificationReport"].as_array().unwrap().clone();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|r| r["suppressed"] == false));

    // The analyst: 华东 (6) on its own, the three groups of two pooled into one row of six.
    let rows = app.ok(&analyst, report, json!({})).await["classificationReport"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0]["keys"][0]["value"].as_str(), rows[0]["customerCount"].as_i64()), (Some("华东"), Some(6)));
    assert_eq!(rows[1]["suppressed"], true);
    assert_eq!(rows[1]["keys"][0]["value"], Value::Null);
    assert_eq!(rows[1]["customerCount"], 6);
    // Narrowed to one small region, the pool itself is too small: nothing to show.
    let one = app.ok(&analyst, report, json!({"f": {"region": {"eq": "西北"}}})).await;
    assert_eq!(one["classificationReport"], json!([]), "two customers are not shown to the analyst");
    let one = app.ok(t, report, json!({"f": {"region": {"eq": "西北"}}})).await;
    assert_eq!(one["classificationReport"][0]["customerCount"], 2, "the admin may read them");

    // Identifying and free-text fields are not in the report filter, nor substring matches.
    let resp = app.gql(Some(&analyst), report, json!({"f": {"phone": {"contains": "13800000001"}}})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("phone"), "{resp}");
    let resp = app.gql(Some(&analyst), report, json!({"f": {"region": {"contains": "北"}}})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("contains"), "{resp}");
    for bad in [json!({"phone": {"contains": "138"}}), json!({"id": {"eq": "x"}}), json!({"name": {"eq": "客户1"}})] {
        let path = format!("/reports/classification.csv?groupBy=REGION&filter={}", bad.to_string().replace('"', "%22"));
        let resp = app.client.get(app.url(&path)).bearer_auth(&analyst).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "VALIDATION", "{bad}");
    }
    // The CSV pools alike.
    let resp = app.client.get(app.url("/reports/classification.csv?groupBy=REGION")).bearer_auth(&analyst).send().await;
    let text = resp.unwrap().text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with(",suppressed"));
    assert!(lines[2].starts_with(",6,") && lines[2].ends_with(",true"), "{text}");

    // customer-grades.csv: one row per customer, but the analyst gets pseudonyms, stable
    // from one export to the next, never the record ids; the admin gets the ids.
    let export = |token: String| {
        let app = &app;
        async move {
            let resp = app.client.get(app.url("/reports/customer-grades.csv")).bearer_auth(token).send().await.unwrap();
            resp.text().await.unwrap()
        }
    };
    let first = export(analyst.clone()).await;
    assert!(first.starts_with("customer_pseudonym,"), "{first}");
    let pseudonyms: Vec<&str> = first.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(pseudonyms.len(), 12);
    assert!(pseudonyms.iter().all(|p| p.starts_with("p_") && p.len() == 24), "{pseudonyms:?}");
    assert_eq!(export(analyst.clone()).await, first, "stable across exports");
    let ids = app.ok(t, "{customers(first:100){edges{node{id}}}}", json!({})).await;
    for id in ids["customers"]["edges"].as_array().unwrap() {
        assert!(!first.contains(id["node"]["id"].as_str().unwrap()), "a record id in the analyst's export");
    }
    assert!(export(t.to_string()).await.starts_with("customer_id,"));
}

/// Before: a sales rep read a public-pool customer's revenue (90,000.00) and phone while
/// that customer's deals were invisible to him; service staff read birthdays.
#[tokio::test]
async fn field_groups_follow_row_scope() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let dept = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let (_, service) = app.create_user("service@example.com", "SERVICE", &dept).await;
    let fields = "id phone email birthday softProfile{hobbies} revenue{amount}";
    let pool = app
        .create_customer(
            &rep,
            json!({"name": "公海客户", "kind": "INDIVIDUAL", "phone": "13800000001", "birthday": "1990-05-01",
                   "softProfile": {"hobbies": "钓鱼"}}),
        )
        .await;
    let pool = pool["id"].as_str().unwrap().to_string();
    app.ok(t, "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}", json!({"id": pool})).await;
    won(&app, &pool, "90000.00").await;
    let own = app
        .create_customer(
            &rep,
            json!({"name": "自己的客户", "kind": "INDIVIDUAL", "phone": "13800000002", "birthday": "1991-06-01"}),
        )
        .await;
    let own = own["id"].as_str().unwrap().to_string();
    won(&app, &own, "1000.00").await;
    let read = |token: &str, id: &str| {
        let (token, id) = (token.to_string(), id.to_string());
        let app = &app;
        async move {
            app.ok(&token, &format!("query($id:ID!){{customer(id:$id){{{fields}}}}}"), json!({"id": id})).await["customer"]
                .clone()
        }
    };

    // The rep reads the pool customer's name, not its amounts, phone or birthday.
    let p = read(&rep, &pool).await;
    assert_eq!(
        (&p["revenue"], &p["phone"], &p["birthday"], &p["softProfile"]),
        (&Value::Null, &Value::Null, &Value::Null, &Value::Null)
    );
    let o = read(&rep, &own).await;
    assert_eq!((o["revenue"]["amount"].as_str(), o["phone"].as_str()), (Some("1000.00"), Some("13800000002")));
    assert_eq!(o["birthday"], "1991-06-01");
    // Filtering and sorting by revenue cover only the rows whose revenue he sees.
    let list =
        "query($f:CustomerFilter,$o:[CustomerOrder!]){customers(filter:$f, orderBy:$o){totalCount edges{node{id}}}}";
    let all = app.ok(&rep, list, json!({})).await["customers"].clone();
    assert_eq!(all["totalCount"], 2);
    let by_revenue =
        app.ok(&rep, list, json!({"o": [{"field": "REVENUE", "direction": "DESC"}]})).await["customers"].clone();
    assert_eq!(ids(&by_revenue), [own.as_str()], "the pool customer's revenue must not rank");
    assert_eq!(by_revenue["totalCount"], 1);
    let rich = app.ok(&rep, list, json!({"f": {"revenue": {"gte": "50000"}}})).await["customers"].clone();
    assert_eq!(rich["totalCount"], 0, "a filter tells nothing about a hidden revenue");
    let by_phone = app.ok(&rep, list, json!({"f": {"phone": {"contains": "13800000001"}}})).await["customers"].clone();
    assert_eq!(by_phone["totalCount"], 0, "nor about a hidden phone number");
    // Key lists ranked by revenue hold his own customers only.
    let gold = app
        .ok(&rep, "{goldCustomers(topPercent:100){totalCount edges{node{customer{id} revenue{amount}}}}}", json!({}))
        .await;
    assert_eq!(gold["goldCustomers"]["totalCount"], 1);
    assert_eq!(gold["goldCustomers"]["edges"][0]["node"]["customer"]["id"], own.as_str());

    // Service reads every customer: contact details yes, personal details and amounts no.
    let p = read(&service, &pool).await;
    assert_eq!(p["phone"], "13800000001");
    assert_eq!((&p["birthday"], &p["revenue"]), (&Value::Null, &Value::Null));
    for (query, vars) in [
        (list, json!({"o": [{"field": "REVENUE", "direction": "DESC"}]})),
        (list, json!({"f": {"revenue": {"gte": "1"}}})),
        ("{goldCustomers(topPercent:100){totalCount}}", json!({})),
    ] {
        let resp = app.gql(Some(&service), query, vars.clone()).await;
        assert_eq!(code(&resp), "FORBIDDEN", "{vars}: {resp}");
    }

    // Grants are data: the admin gives service personal details, and it shows at once.
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){role resource action scope includePool}}";
    let grant = json!({"role": "SERVICE", "resource": "PERSONAL_DETAILS", "action": "READ", "scope": "ALL"});
    assert_eq!(code(&app.gql(Some(&service), set, json!({"i": grant})).await), "FORBIDDEN");
    app.ok(t, set, json!({"i": grant})).await;
    assert_eq!(read(&service, &pool).await["birthday"], "1990-05-01");
    let listed = app.ok(t, "{rolePermissions(role:SERVICE){resource action scope}}", json!({})).await;
    assert!(
        listed["rolePermissions"]
            .as_array()
            .unwrap()
            .contains(&json!({"resource": "PERSONAL_DETAILS", "action": "READ", "scope": "ALL"}))
    );
    // The admin role cannot lose the administration nobody else could give back.
    let resp = app
        .gql(Some(t), set, json!({"i": {"role": "ADMIN", "resource": "SETTINGS", "action": "UPDATE", "scope": "NONE"}}))
        .await;
    assert_eq!(code(&resp), "CONFLICT");
    let resp = app
        .gql(
            Some(t),
            set,
            json!({"i": {"role": "SALES", "resource": "DEAL_AMOUNT", "action": "UPDATE", "scope": "ALL"}}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION");
    let pool =
        json!({"i": {"role": "SALES", "resource": "DEAL", "action": "READ", "scope": "OWN", "includePool": true}});
    assert_eq!(code(&app.gql(Some(t), set, pool).await), "VALIDATION", "only customer READ reaches the pool");

    // What one may not read, one does not overwrite: without contact details, the rep
    // still renames his customer but cannot change its phone.
    app.ok(t, set, json!({"i": {"role": "SALES", "resource": "CONTACT_DETAILS", "action": "READ", "scope": "NONE"}}))
        .await;
    let update = "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){version phone}}";
    let resp = app.gql(Some(&rep), update, json!({"i": {"id": own, "version": 1, "phone": "13900000000"}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let renamed = app.ok(&rep, update, json!({"i": {"id": own, "version": 1, "name": "改名"}})).await;
    assert_eq!(renamed["updateCustomer"]["phone"], Value::Null);
}

/// Contacts and deals hang off a customer: their field groups follow that customer.
#[tokio::test]
async fn child_records_follow_their_customer() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let dept = app.create_department("华东", None).await;
    let (_, service) = app.create_user("service@example.com", "SERVICE", &dept).await;
    let org = app.create_customer(t, json!({"name": "某某科技有限公司", "kind": "ORGANIZATION"})).await;
    let org = org["id"].as_str().unwrap();
    let contact = "mutation($i:CreateContactInput!){createContact(input:$i){id}}";
    app.ok(
        t,
        contact,
        json!({"i": {"customerId": org, "name": "李经理", "mobile": "13800000003", "birthday": "1980-01-02",
                                     "idNumber": "11010519491231002X", "hometown": "苏州"}}),
    )
    .await;
    won(&app, org, "5000.00").await;
    let q = "query($id:ID!){customer(id:$id){contacts{edges{node{mobile birthday hometown idNumberMasked}}} deals{edges{node{amount{amount} lineItems{total{amount}}}}}}}";
    let admin = app.ok(t, q, json!({"id": org})).await["customer"].clone();
    let c = &admin["contacts"]["edges"][0]["node"];
    assert_eq!((c["mobile"].as_str(), c["idNumberMasked"].as_str()), (Some("13800000003"), Some("110***********002X")));
    assert_eq!(admin["deals"]["edges"][0]["node"]["amount"]["amount"], "5000.00");
    let seen = app.ok(&service, q, json!({"id": org})).await["customer"].clone();
    let c = &seen["contacts"]["edges"][0]["node"];
    assert_eq!(c["mobile"], "13800000003");
    assert_eq!((&c["birthday"], &c["hometown"], &c["idNumberMasked"]), (&Value::Null, &Value::Null, &Value::Null));
    assert_eq!(seen["deals"]["edges"][0]["node"]["amount"], Value::Null);
    let resp = app.gql(Some(&service), "{contacts(filter:{mobile:{eq:\"13800000003\"}}){totalCount}}", json!({})).await;
    assert_eq!(resp["data"]["contacts"]["totalCount"], 1, "service sees contact details everywhere: {resp}");
    let resp = app.gql(Some(&service), "{deals(filter:{amount:{gte:\"1\"}}){totalCount}}", json!({})).await;
    assert_eq!(code(&resp), "FORBIDDEN");
}

/// Before: every colleague read every staff member's login e-mail, role and active flag
/// through `owner`; a reminder kept showing a customer's name to an assignee the customer
/// had moved away from; a partner system learned which department owns a duplicate.
#[tokio::test]
async fn staff_reminders_and_duplicates_tell_no_more() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西南", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, integration) = app.create_user("partner@example.com", "INTEGRATION", &west).await;
    let (_, west_rep) = app.create_user("west@example.com", "SALES", &west).await;
    let c = app.create_customer(&rep, json!({"name": "王女士", "kind": "INDIVIDUAL", "phone": "13800000009"})).await;
    let c = c["id"].as_str().unwrap().to_string();

    let q = "query($id:ID!){customer(id:$id){owner{name email role active}} me{email role active}}";
    let mine = app.ok(&rep, q, json!({"id": c})).await;
    assert_eq!(mine["me"], json!({"email": "rep@example.com", "role": "SALES", "active": true}));
    let admin = app.ok(t, q, json!({"id": c})).await;
    assert_eq!(admin["customer"]["owner"]["email"], "rep@example.com");
    let (_, service) = app.create_user("service@example.com", "SERVICE", &east).await;
    let seen = app.ok(&service, q, json!({"id": c})).await;
    assert_eq!(
        seen["customer"]["owner"],
        json!({"name": "rep@example.com", "email": null, "role": null, "active": null})
    );

    // DUPLICATE: staff learn the owning department, a partner system only the key.
    let create = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}";
    let dup = json!({"i": {"name": "另一个", "kind": "INDIVIDUAL", "phone": "+86 138 0000 0009"}});
    let resp = app.gql(Some(&west_rep), create, dup.clone()).await;
    assert_eq!(code(&resp), "DUPLICATE");
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("华东"), "{resp}");
    let resp = app.gql(Some(&integration), create, dup).await;
    assert_eq!(code(&resp), "DUPLICATE");
    let text = resp["errors"][0].to_string();
    assert!(!text.contains("华东") && !text.contains(&east), "{text}");
    assert_eq!(resp["errors"][0]["extensions"]["key"], "phone", "{resp}");
}

/// A reminder named to a manager stays theirs after the customer moves to another
/// department, but no longer names the customer.
#[tokio::test]
async fn reminders_forget_customers_out_of_reach() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西南", None).await;
    let (_, manager) = app.create_user("manager@example.com", "MANAGER", &east).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (west_rep, _) = app.create_user("west@example.com", "SALES", &west).await;
    let policy = app.ok(t, "{carePolicy{version rules{kind enabled offsetDays tiers promotional template assignee windowDays minCount} standards{tier role kind count periodDays} frequencyCap{maxTouches days holidayWindowDays} dueHourUtc}}", json!({})).await["carePolicy"].clone();
    let mut input = policy.clone();
    let version = input.as_object_mut().unwrap().remove("version").unwrap();
    for rule in input["rules"].as_array_mut().unwrap() {
        if rule["kind"] == "SATISFACTION_SURVEY" {
            rule["assignee"] = json!("MANAGER");
        }
    }
    app.ok(
        t,
        "mutation($i:CarePolicyInput!,$v:Int!){updateCarePolicy(input:$i, version:$v){version}}",
        json!({"i": input, "v": version}),
    )
    .await;
    let c = app.create_customer(&rep, json!({"name": "王女士", "kind": "INDIVIDUAL", "phone": "13800000010"})).await;
    let c = c["id"].as_str().unwrap().to_string();
    let closed = Utc::now().date_naive() - Duration::days(20);
    app.ok(
        t,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": c, "title": "订单", "stage": "WON", "currency": "CNY", "amount": "100", "actualCloseDate": closed.to_string()}}),
    )
    .await;
    app.care_tick((closed + Duration::days(8)).and_hms_opt(2, 0, 0).unwrap().and_utc()).await;
    let mine = "{myReminders(first:10){nodes{rule reason message customer{id}}}}";
    let before = app.ok(&manager, mine, json!({})).await["myReminders"]["nodes"].clone();
    let survey =
        before.as_array().unwrap().iter().find(|r| r["rule"] == "SATISFACTION_SURVEY").expect("survey").clone();
    assert!(survey["reason"].as_str().unwrap().contains("订单"), "{survey}");
    assert_eq!(survey["customer"]["id"], c.as_str());
    let _ = rep_id;
    app.ok(t, "mutation($id:ID!,$o:ID){assignCustomer(id:$id, ownerId:$o){id}}", json!({"id": c, "o": west_rep})).await;
    let after = app.ok(&manager, mine, json!({})).await["myReminders"]["nodes"].clone();
    let survey = after
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "SATISFACTION_SURVEY")
        .expect("still named to the manager")
        .clone();
    assert_eq!(survey["customer"], Value::Null);
    assert_eq!(survey["message"], "");
    assert!(!survey["reason"].as_str().unwrap().contains("订单"), "{survey}");
}

/// Every value of a text column of `table`, read straight from the database.
async fn raw_column(app: &TestApp, table: &str, column: &str) -> Vec<Option<String>> {
    use sea_orm::ConnectionTrait;
    let sql = format!("SELECT {column} AS v FROM {table} ORDER BY 1");
    let rows = app.db.query_all_raw(sea_orm::Statement::from_string(app.db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|r| r.try_get::<Option<String>>("", "v").unwrap()).collect()
}

async fn raw_update(app: &TestApp, sql: &str) {
    use sea_orm::ConnectionTrait;
    app.db.execute_unprepared(sql).await.unwrap();
}

const OLD_KEY: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const NEW_KEY: &str = "new:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

/// Before: ID numbers and addresses sat in plain text in the contact and customer tables.
#[tokio::test]
async fn sensitive_fields_are_sealed_at_rest_and_keys_rotate() {
    let app = TestApp::spawn_with(|c| c.data_key = Some(OLD_KEY.into())).await;
    let t = &app.admin_token;
    let org = app
        .create_customer(t, json!({"name": "某某贸易有限公司", "kind": "ORGANIZATION", "address": "上海市人民路1号"}))
        .await;
    let org = org["id"].as_str().unwrap().to_string();
    let create = "mutation($i:CreateContactInput!){createContact(input:$i){id idNumberMasked address}}";
    let made = app
        .ok(t, create, json!({"i": {"customerId": org, "name": "李经理", "idNumber": "11010519491231002X", "address": "苏州市中山路2号"}}))
        .await;
    assert_eq!(made["createContact"]["idNumberMasked"], "110***********002X");
    assert_eq!(made["createContact"]["address"], "苏州市中山路2号");
    let contact = made["createContact"]["id"].as_str().unwrap().to_string();

    // The raw tables hold no plain ID number or address.
    let numbers = raw_column(&app, "contact", "id_number").await;
    assert!(numbers.iter().flatten().all(|v| v.starts_with("enc1:old:") && !v.contains("1101051949")), "{numbers:?}");
    let addresses = raw_column(&app, "customer", "address").await;
    assert!(addresses.iter().flatten().all(|v| v.starts_with("enc1:old:") && !v.contains("人民路")), "{addresses:?}");
    let audit = raw_column(&app, "audit_log", "CAST(new_values AS TEXT)").await;
    assert!(
        audit.iter().flatten().all(|v| !v.contains("1101051949") && !v.contains("人民路")),
        "the audit holds sealed values only"
    );

    // The same ID number twice for one customer is a duplicate, found by its blind index.
    let dup = app
        .gql(Some(t), create, json!({"i": {"customerId": org, "name": "李经理二", "idNumber": "11010519491231002x"}}))
        .await;
    assert_eq!(code(&dup), "DUPLICATE", "{dup}");
    assert_eq!(dup["errors"][0]["extensions"]["key"], "idNumber");

    // Nor by restoring a trashed twin, nor by racing two creates.
    let twin = app
        .ok(t, create, json!({"i": {"customerId": org, "name": "孪生", "idNumber": "110101199003070011"}}))
        .await["createContact"]["id"]
        .clone();
    app.ok(t, "mutation($id:ID!){deleteContact(id:$id){id}}", json!({"id": twin})).await;
    app.ok(t, create, json!({"i": {"customerId": org, "name": "孪生二", "idNumber": "110101199003070011"}})).await;
    let restored = app.gql(Some(t), "mutation($id:ID!){restoreContact(id:$id){id}}", json!({"id": twin})).await;
    assert_eq!(code(&restored), "DUPLICATE", "{restored}");
    let race = (0..8).map(|i| {
        let app = &app;
        let org = org.clone();
        async move {
            app.gql(
                Some(&app.admin_token),
                create,
                json!({"i": {"customerId": org, "name": format!("并发{i}"), "idNumber": "110101198001010010"}}),
            )
            .await
        }
    });
    let made = futures::future::join_all(race).await.iter().filter(|r| r["errors"].is_null()).count();
    assert_eq!(made, 1, "one contact per ID number and customer, however they race");

    // The old 15-digit card of the same person is the same number.
    let old_card = app
        .gql(Some(t), create, json!({"i": {"customerId": org, "name": "李经理三", "idNumber": "110105491231002"}}))
        .await;
    assert_eq!(code(&old_card), "DUPLICATE", "{old_card}");

    // A value written before sealing (plain) still reads, until the re-seal pass.
    let second = app.ok(t, create, json!({"i": {"customerId": org, "name": "王总"}})).await["createContact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    raw_update(&app, "UPDATE contact SET id_number = '440300199001010016' WHERE name = '王总'").await;
    let read = "query($id:ID!){contact(id:$id){idNumberMasked address}}";
    assert_eq!(app.ok(t, read, json!({"id": second})).await["contact"]["idNumberMasked"], "440***********0016");

    // Rotation: a new key first, the old one still listed; the pass re-seals everything.
    let both = app.another_instance(|c| c.data_key = Some(format!("{NEW_KEY},{OLD_KEY}"))).await;
    let done = service::personal::seal::reseal(&both.db, &both.state.privacy.keys).await.unwrap();
    assert_eq!((done.contacts, done.customers), (5, 1));
    assert!(done.audit_rows >= 2, "the audit's sealed addresses move to the new key too");
    let again = service::personal::seal::reseal(&both.db, &both.state.privacy.keys).await.unwrap();
    assert_eq!((again.contacts, again.customers), (0, 0), "a second pass finds nothing to do");
    let numbers = raw_column(&app, "contact", "id_number").await;
    assert!(numbers.iter().flatten().all(|v| v.starts_with("enc1:new:")), "{numbers:?}");
    // The old key can go now.
    let new_only = app.another_instance(|c| c.data_key = Some(NEW_KEY.into())).await;
    let got = new_only.ok(&new_only.admin_token, read, json!({"id": contact})).await;
    assert_eq!(got["contact"], json!({"idNumberMasked": "110***********002X", "address": "苏州市中山路2号"}));
    let got = new_only.ok(&new_only.admin_token, read, json!({"id": second})).await;
    assert_eq!(got["contact"]["idNumberMasked"], "440***********0016");
    let trail = new_only
        .ok(
            &new_only.admin_token,
            "query($r:ID){auditLog(filter:{recordId:$r}){edges{node{newValues}}}}",
            json!({"r": org}),
        )
        .await;
    assert!(
        trail.to_string().contains("上海市人民路1号"),
        "old audit rows still read after the old key is gone: {trail}"
    );
    let dup = new_only
        .gql(
            Some(&new_only.admin_token),
            create,
            json!({"i": {"customerId": org, "name": "王总二", "idNumber": "440300199001010016"}}),
        )
        .await;
    assert_eq!(code(&dup), "DUPLICATE", "the re-sealed value was indexed: {dup}");
    // A trashed contact sealed under the old key cannot come back beside a live one with
    // the same number sealed under the new key.
    let gone =
        new_only.ok(&new_only.admin_token, "mutation($id:ID!){deleteContact(id:$id){id}}", json!({"id": second})).await;
    assert!(gone["deleteContact"]["id"].is_string());
    new_only
        .ok(
            &new_only.admin_token,
            create,
            json!({"i": {"customerId": org, "name": "王总新", "idNumber": "440300199001010016"}}),
        )
        .await;
    let back = new_only
        .gql(Some(&new_only.admin_token), "mutation($id:ID!){restoreContact(id:$id){id}}", json!({"id": second}))
        .await;
    assert_eq!(code(&back), "DUPLICATE", "{back}");
    // A server without the key a value was sealed with cannot read it, and says so.
    let wrong = app.another_instance(|c| c.data_key = Some(OLD_KEY.into())).await;
    let resp = wrong.gql(Some(&wrong.admin_token), read, json!({"id": contact})).await;
    assert_eq!(code(&resp), "INTERNAL", "{resp}");
}

/// The embedded default works without configuration (a key file beside the database);
/// PostgreSQL refuses to start without `CRM_DATA_KEY`.
#[tokio::test]
async fn a_data_key_is_required_where_it_matters() {
    let app = TestApp::spawn_with(|c| {
        if c.database_url.starts_with("sqlite:") {
            c.data_key = None;
        }
    })
    .await;
    if app.database_url.starts_with("sqlite:") {
        let path = format!("{}.key", app.database_url.trim_start_matches("sqlite://"));
        let meta = std::fs::metadata(&path).expect("a key file beside the database");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            let db = std::fs::metadata(app.database_url.trim_start_matches("sqlite://")).unwrap();
            assert_eq!(db.permissions().mode() & 0o777, 0o600, "the database holds personal data and the JWT secret");
        }
        let t = &app.admin_token;
        let c =
            app.create_customer(t, json!({"name": "张三", "kind": "INDIVIDUAL", "address": "北京市长安街1号"})).await;
        let restarted = app.another_instance(|c| c.data_key = None).await;
        let got = restarted
            .ok(&restarted.admin_token, "query($id:ID!){customer(id:$id){address}}", json!({"id": c["id"]}))
            .await;
        assert_eq!(got["customer"]["address"], "北京市长安街1号", "the restart reads the same key file");
    } else {
        let mut config = test_config(app.database_url.clone());
        config.data_key = None;
        let err = api::prepare(&config).await.err().expect("PostgreSQL without CRM_DATA_KEY must not start");
        assert!(err.contains("CRM_DATA_KEY"), "{err}");
    }
    let mut config = test_config(app.database_url.clone());
    config.data_key = Some("k1:too-short".into());
    let err = api::prepare(&config).await.err().expect("a malformed key is refused");
    assert!(err.contains("CRM_DATA_KEY") && !err.contains("too-short"), "{err}");
}

/// Before: the audit was written but could not be read; deactivations, password and ID
/// number changes, tier overrides (no new version) and `reclassifyAll` (no author) left
/// gaps in it.
#[tokio::test]
async fn the_audit_trail_is_readable_and_complete() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西南", None).await;
    let (_, manager) = app.create_user("manager@example.com", "MANAGER", &east).await;
    let (_, analyst) = app.create_user("analyst@example.com", "ANALYST", &east).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, west_rep) = app.create_user("west@example.com", "SALES", &west).await;
    let mine = app
        .create_customer(
            &rep,
            json!({"name": "东边客户", "kind": "ORGANIZATION", "phone": "13800000021", "address": "上海市1号"}),
        )
        .await;
    let mine = mine["id"].as_str().unwrap().to_string();
    let theirs = app.create_customer(&west_rep, json!({"name": "西边客户", "kind": "INDIVIDUAL"})).await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    let contact = app
        .ok(t, "mutation($c:ID!){createContact(input:{customerId:$c,name:\"李经理\",idNumber:\"11010519491231002X\"}){id version}}", json!({"c": mine}))
        .await["createContact"]
        .clone();
    let contact_id = contact["id"].as_str().unwrap();
    app.ok(
        t,
        "mutation($i:UpdateContactInput!){updateContact(input:$i){version}}",
        json!({"i": {"id": contact_id, "version": 1, "idNumber": null}}),
    )
    .await;

    // setTierOverride gives the customer a new version; a stale edit then fails.
    let before =
        app.ok(t, "query($id:ID!){customer(id:$id){version}}", json!({"id": mine})).await["customer"]["version"]
            .as_i64()
            .unwrap();
    app.ok(
        t,
        "mutation($c:ID!){setTierOverride(customerId:$c, tier:A, reason:\"战略客户\"){tier}}",
        json!({"c": mine}),
    )
    .await;
    let after =
        app.ok(t, "query($id:ID!){customer(id:$id){version}}", json!({"id": mine})).await["customer"]["version"]
            .as_i64()
            .unwrap();
    assert!(after > before, "{before} -> {after}");
    let stale = app
        .gql(
            Some(&rep),
            "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id}}",
            json!({"i": {"id": mine, "version": before, "name": "改名"}}),
        )
        .await;
    assert_eq!(code(&stale), "CONFLICT");

    // A password change and a deactivation are on the user's trail; reclassifyAll names who started it.
    let user =
        app.ok(t, "query($id:ID!){user(id:$id){version}}", json!({"id": rep_id})).await["user"]["version"].clone();
    app.ok(
        t,
        "mutation($i:UpdateUserInput!){updateUser(input:$i){id}}",
        json!({"i": {"id": rep_id, "version": user, "password": "another horse battery"}}),
    )
    .await;
    app.ok(t, "mutation($id:ID!){deactivateUser(id:$id){active}}", json!({"id": rep_id})).await;
    let run = app.ok(t, "mutation{reclassifyAll{id startedById}}", json!({})).await["reclassifyAll"].clone();
    assert!(run["startedById"].is_string());

    let log = "query($f:AuditFilter,$n:Int,$a:String){auditLog(filter:$f, first:$n, after:$a){totalCount edges{cursor node{action entity recordId actorId newValues oldValues}} pageInfo{hasNextPage endCursor}}}";
    let user_trail = app.ok(t, log, json!({"f": {"recordId": rep_id}})).await["auditLog"].clone();
    let actions: Vec<&str> =
        user_trail["edges"].as_array().unwrap().iter().map(|e| e["node"]["action"].as_str().unwrap()).collect();
    for expected in ["create", "password_change", "deactivate"] {
        assert!(actions.contains(&expected), "{expected} missing: {actions:?}");
    }
    assert!(!user_trail.to_string().contains("argon2"), "no password hash in the audit");
    let runs =
        app.ok(t, log, json!({"f": {"entity": "classification_run", "action": "start"}})).await["auditLog"].clone();
    assert_eq!(runs["totalCount"], 1);
    let contact_trail = app.ok(t, log, json!({"f": {"recordId": contact_id}})).await["auditLog"].clone();
    let change = contact_trail["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["action"] == "id_number_change")
        .expect("id number change");
    assert_eq!(change["node"]["newValues"]["id_number"], "cleared");
    assert!(!contact_trail.to_string().contains("1101051949"));

    // Pages: newest first, cursors continue without repeating.
    let first = app.ok(t, log, json!({"n": 3})).await["auditLog"].clone();
    assert_eq!(first["edges"].as_array().unwrap().len(), 3);
    let next = app.ok(t, log, json!({"n": 3, "a": first["pageInfo"]["endCursor"]})).await["auditLog"].clone();
    let a: Vec<&Value> = first["edges"].as_array().unwrap().iter().map(|e| &e["node"]).collect();
    assert!(next["edges"].as_array().unwrap().iter().all(|e| !a.contains(&&e["node"])));

    // The manager reads the trail of the east customers only, and not staff rows.
    let seen = app.ok(&manager, log, json!({"n": 100})).await["auditLog"].clone();
    let records: Vec<&str> =
        seen["edges"].as_array().unwrap().iter().map(|e| e["node"]["recordId"].as_str().unwrap()).collect();
    assert!(records.contains(&mine.as_str()) && records.contains(&contact_id));
    assert!(!records.contains(&theirs.as_str()), "another department's customer");
    assert!(!records.contains(&rep_id.as_str()), "staff rows need an ALL grant");
    // Others may not read it at all.
    for token in [&analyst, &west_rep] {
        assert_eq!(code(&app.gql(Some(token), log, json!({})).await), "FORBIDDEN");
    }
    // Values are masked per field grants: with contact details taken from managers, the
    // phone reads "[hidden]"; the admin sees it, and the sealed address opened.
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    app.ok(t, set, json!({"i": {"role": "MANAGER", "resource": "CONTACT_DETAILS", "action": "READ", "scope": "NONE"}}))
        .await;
    let create_row = |list: &Value| {
        list["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["action"] == "create" && e["node"]["entity"] == "customer")
            .unwrap()["node"]
            .clone()
    };
    let masked = create_row(&app.ok(&manager, log, json!({"f": {"recordId": mine}})).await["auditLog"]);
    assert_eq!(masked["newValues"]["phone"], "[hidden]");
    assert_eq!(masked["newValues"]["address"], "[hidden]");
    assert_eq!(masked["newValues"]["name"], "东边客户");
    let plain = create_row(&app.ok(t, log, json!({"f": {"recordId": mine}})).await["auditLog"]);
    assert_eq!(
        (plain["newValues"]["phone"].as_str(), plain["newValues"]["address"].as_str()),
        (Some("13800000021"), Some("上海市1号"))
    );

    // Amounts nested in a deal's audit values ({deal, lineItems}) and in an export are
    // masked too once managers lose amounts.
    app.ok(
        t,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": mine, "title": "订单", "currency": "CNY", "lineItems": [{"product": "茶叶", "quantity": 2, "unitPrice": "3888.50", "unitCost": "1000"}]}}),
    )
    .await;
    app.ok(t, set, json!({"i": {"role": "MANAGER", "resource": "DEAL_AMOUNT", "action": "READ", "scope": "NONE"}}))
        .await;
    let deals = app.ok(&manager, log, json!({"f": {"entity": "deal"}})).await["auditLog"].to_string();
    assert!(deals.contains("[hidden]") && !deals.contains("388850") && !deals.contains("777700"), "{deals}");
    let export =
        app.ok(&manager, "mutation($c:ID!){exportPersonalData(customerId:$c)}", json!({"c": mine})).await.to_string();
    assert!(
        !export.contains("388850") && !export.contains("13800000021"),
        "the export follows the field groups: {export}"
    );

    // Widening the manager's AUDIT or PERSONAL_DATA grant does not widen the field groups:
    // another department's phone stays hidden.
    app.ok(
        t,
        "mutation($c:ID!){updateCustomer(input:{id:$c, version:1, phone:\"13700000099\"}){id}}",
        json!({"c": theirs}),
    )
    .await;
    app.ok(
        t,
        set,
        json!({"i": {"role": "MANAGER", "resource": "CONTACT_DETAILS", "action": "READ", "scope": "DEPARTMENT"}}),
    )
    .await;
    for resource in ["AUDIT", "PERSONAL_DATA"] {
        app.ok(t, set, json!({"i": {"role": "MANAGER", "resource": resource, "action": "READ", "scope": "ALL"}})).await;
    }
    let west = app.ok(&manager, log, json!({"f": {"recordId": theirs}})).await.to_string();
    assert!(west.contains("[hidden]") && !west.contains("13700000099"), "{west}");
    let export =
        app.ok(&manager, "mutation($c:ID!){exportPersonalData(customerId:$c)}", json!({"c": theirs})).await.to_string();
    assert!(!export.contains("13700000099"), "{export}");
    let resp = app
        .gql(Some(t), set, json!({"i": {"role": "MANAGER", "resource": "AUDIT", "action": "UPDATE", "scope": "ALL"}}))
        .await;
    assert_eq!(code(&resp), "VALIDATION", "the audit trail takes READ only");
}

/// Export and erase of one person's data; consent gates promotional reminders.
#[tokio::test]
async fn a_person_can_be_exported_and_erased() {
    let app = TestApp::spawn().await;
    app.keep_customers_owned().await;
    let t = &app.admin_token;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西南", None).await;
    let (_, manager) = app.create_user("manager@example.com", "MANAGER", &east).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, west_manager) = app.create_user("wm@example.com", "MANAGER", &west).await;
    let c = app
        .create_customer(&rep, json!({"name": "王女士", "kind": "INDIVIDUAL", "phone": "13800000031", "email": "wang@example.cn",
                                       "birthday": "1985-03-20", "address": "杭州市西湖路3号", "softProfile": {"hobbies": "茶艺"}}))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    won(&app, &id, "88000.00").await;
    app.ok(&rep, "mutation($i:CreateInteractionInput!){createInteraction(input:$i){id}}",
           json!({"i": {"customerId": id, "kind": "CALL", "direction": "OUTBOUND", "summary": "王女士说她下月搬家到苏州"}})).await;
    app.ok(
        &rep,
        "mutation($i:CreateFeedbackInput!){createFeedback(input:$i){id}}",
        json!({"i": {"customerId": id, "kind": "COMPLAINT", "channel": "PHONE", "content": "王女士投诉送货太慢"}}),
    )
    .await;

    // Consent: without it no promotional reminder (the birthday greeting) is created.
    let tick =
        |d: &str| (chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()).and_hms_opt(2, 0, 0).unwrap().and_utc();
    app.care_tick(tick("2027-03-17")).await;
    let rules = "{myReminders(first:50){nodes{rule customer{id}}}}";
    let birthday =
        |v: &Value| v["myReminders"]["nodes"].as_array().unwrap().iter().filter(|r| r["rule"] == "BIRTHDAY").count();
    assert_eq!(birthday(&app.ok(&rep, rules, json!({})).await), 0, "no consent, no birthday greeting");
    let consent = "mutation($c:ID!,$g:Boolean!){setConsent(customerId:$c, channel:WECHAT, given:$g, source:\"门店登记表\"){channel given givenAt withdrawnAt source}}";
    let given = app.ok(&rep, consent, json!({"c": id, "g": true})).await;
    assert_eq!(given["setConsent"]["given"], true);
    app.care_tick(tick("2028-03-17")).await;
    assert_eq!(birthday(&app.ok(&rep, rules, json!({})).await), 1, "consent given: the greeting is created");
    let withdrawn = app.ok(&rep, consent, json!({"c": id, "g": false})).await["setConsent"].clone();
    assert_eq!((withdrawn["given"].as_bool(), withdrawn["withdrawnAt"].is_string()), (Some(false), true));
    app.care_tick(tick("2029-03-17")).await;
    assert_eq!(birthday(&app.ok(&rep, rules, json!({})).await), 1, "withdrawn: no new greeting");

    // Export: admins and the east manager; not the west manager (not found) nor the rep.
    let export = "mutation($c:ID!){exportPersonalData(customerId:$c)}";
    let doc = app.ok(&manager, export, json!({"c": id})).await["exportPersonalData"].clone();
    assert_eq!(doc["customer"]["name"], "王女士");
    assert_eq!(doc["customer"]["address"], "杭州市西湖路3号", "sealed fields are opened in the export");
    assert_eq!(doc["deals"].as_array().unwrap().len(), 1);
    assert_eq!(doc["interactions"][0]["summary"], "王女士说她下月搬家到苏州");
    assert_eq!(doc["feedback"].as_array().unwrap().len(), 1);
    assert_eq!(doc["consents"][0]["channel"], "WECHAT");
    assert!(!doc["reminders"].as_array().unwrap().is_empty());
    assert!(doc["audit"].as_array().unwrap().iter().any(|a| a["action"] == "consent_withdrawn"));
    assert_eq!(code(&app.gql(Some(&west_manager), export, json!({"c": id})).await), "NOT_FOUND");
    assert_eq!(code(&app.gql(Some(&rep), export, json!({"c": id})).await), "FORBIDDEN");
    let resp = app.client.get(app.url(&format!("/personal-data/{id}.json"))).bearer_auth(t).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let downloaded: Value = resp.json().await.unwrap();
    assert_eq!(downloaded["customer"]["id"], id.as_str());
    let resp = app.client.get(app.url(&format!("/personal-data/{id}.json"))).bearer_auth(&rep).send().await.unwrap();
    assert_eq!(resp.status(), 403);

    // A legal hold stops the erasure.
    let erase = "mutation($c:ID!,$r:String!){erasePersonalData(customerId:$c, reason:$r){name phone email birthday address softProfile{hobbies} erasedAt tier revenue{amount}}}";
    let hold =
        "mutation($c:ID!,$h:Boolean!,$r:String){setLegalHold(customerId:$c, hold:$h, reason:$r){legalHold{reason}}}";
    assert_eq!(code(&app.gql(Some(&manager), hold, json!({"c": id, "h": true, "r": "诉讼"})).await), "FORBIDDEN");
    app.ok(t, hold, json!({"c": id, "h": true, "r": "合同纠纷诉讼"})).await;
    let held = app.gql(Some(&manager), erase, json!({"c": id, "r": "本人要求删除"})).await;
    assert_eq!(code(&held), "CONFLICT", "{held}");
    app.ok(t, hold, json!({"c": id, "h": false})).await;
    assert_eq!(code(&app.gql(Some(&manager), erase, json!({"c": id, "r": " "})).await), "VALIDATION");
    assert_eq!(code(&app.gql(Some(&rep), erase, json!({"c": id, "r": "本人要求"})).await), "FORBIDDEN");

    // The erasure: personal fields gone everywhere, the facts kept.
    let erased =
        app.ok(&manager, erase, json!({"c": id, "r": "本人2026-11-24书面要求删除"})).await["erasePersonalData"].clone();
    assert_eq!(erased["name"], "[erased]");
    for field in ["phone", "email", "birthday", "address", "softProfile"] {
        assert_eq!(erased[field], Value::Null, "{field}");
    }
    assert!(erased["erasedAt"].is_string());
    assert_eq!(
        (erased["tier"].as_str(), erased["revenue"]["amount"].as_str()),
        (Some("A"), Some("88000.00")),
        "the facts stay"
    );
    let report = app.ok(t, "{classificationReport(groupBy:[TIER]){customerCount revenue{amount}}}", json!({})).await;
    assert!(report.to_string().contains("88000.00"), "reports stay true: {report}");
    let after = app.ok(t, export, json!({"c": id})).await["exportPersonalData"].to_string();
    for personal in ["王女士", "13800000031", "wang@example.cn", "1985-03-20", "西湖路", "茶艺", "搬家", "送货太慢"]
    {
        assert!(!after.contains(personal), "{personal} survived the erasure");
    }
    assert!(
        after.contains("erase_personal_data") && after.contains("本人2026-11-24书面要求删除"),
        "the erasure is audited"
    );
    // The rendered reminder texts and the raw audit table hold nothing either.
    let raw = raw_column(&app, "audit_log", "CAST(new_values AS TEXT)").await;
    assert!(
        raw.iter().flatten().all(|v| !v.contains("王女士") && !v.contains("13800000031")),
        "raw audit rows scrubbed"
    );
    let reasons = raw_column(&app, "reminder", "reason").await;
    assert!(reasons.iter().flatten().all(|r| !r.contains("王女士")), "{reasons:?}");
    // An erased person takes no new consent; a hold's reason is bounded; a download path
    // that is no customer id is not found.
    assert_eq!(code(&app.gql(Some(&rep), consent, json!({"c": id, "g": true})).await), "CONFLICT");
    let long = "长".repeat(501);
    assert_eq!(code(&app.gql(Some(t), hold, json!({"c": id, "h": true, "r": long})).await), "VALIDATION");
    let resp = app.client.get(app.url("/personal-data/not-an-id.json")).bearer_auth(t).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(code(&resp.json::<Value>().await.unwrap()), "NOT_FOUND");

    // Free texts of the kept facts and the consent's source went too.
    let deal = app
        .ok(
            t,
            "query($c:ID!){customer(id:$c){deals{edges{node{title amount{amount}}}} consents{source given}}}",
            json!({"c": id}),
        )
        .await;
    assert_eq!(
        deal["customer"]["deals"]["edges"][0]["node"],
        json!({"title": "[erased]", "amount": {"amount": "88000.00"}})
    );
    assert_eq!(deal["customer"]["consents"][0]["source"], Value::Null);
    // The phone number is free again.
    app.create_customer(&rep, json!({"name": "新客户", "kind": "INDIVIDUAL", "phone": "13800000031"})).await;
}

/// Before: the analyst read one VIP customer's revenue as the difference of two
/// unfiltered reports (by category, by lifecycle: the VIP's group of one was dropped, the
/// rest shown), or of a report filtered to "everyone but the VIP" and the whole.
#[tokio::test]
async fn reports_resist_differencing() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let dept = app.create_department("华东", None).await;
    let (_, analyst) = app.create_user("analyst@example.com", "ANALYST", &dept).await;
    let customer = |n: usize, category: &'static str| {
        let app = &app;
        async move {
            let input = json!({"name": format!("客户{n}"), "kind": "INDIVIDUAL", "category": category});
            app.create_customer(&app.admin_token, input).await["id"].as_str().unwrap().to_string()
        }
    };
    // Six small buyers, one VIP (90,000.00), six targets without deals. (Category
    // "other": a retail customer reaching tier A would be promoted to "vip".)
    for n in 0..6 {
        let c = customer(n, "other").await;
        won(&app, &c, "1000.00").await;
    }
    let vip = customer(6, "other").await;
    won(&app, &vip, "90000.00").await;
    for n in 7..13 {
        customer(n, "partner").await;
    }
    let report = |group: &'static str, filter: Value| {
        let app = &app;
        let analyst = analyst.clone();
        async move {
            let q = format!(
                "query($f:ReportFilter){{classificationReport(groupBy:[{group}], filter:$f){{suppressed keys{{value}} customerCount revenue{{amount}}}}}}"
            );
            app.ok(&analyst, &q, json!({"f": filter})).await["classificationReport"].as_array().unwrap().clone()
        }
    };
    let by_category = report("CATEGORY", Value::Null).await;
    assert_eq!(by_category.len(), 2, "{by_category:?}");
    // By lifecycle the VIP (one buyer) is pooled; a pool of one buyer would tell its
    // revenue by difference with the total, so the other groups join it until it sums
    // at least five buyers. No row leaves the VIP's figure to subtract.
    let by_lifecycle = report("LIFECYCLE", Value::Null).await;
    let amounts: Vec<&str> = by_lifecycle.iter().filter_map(|r| r["revenue"]["amount"].as_str()).collect();
    assert!(!amounts.contains(&"90000.00") && !amounts.contains(&"6000.00"), "{by_lifecycle:?}");
    // A filter leaving out only a few customers of the scope answers nothing.
    let all_but_vip = report("TIER", json!({"lifecycleStage": {"in": ["CUSTOMER", "TARGET"]}})).await;
    assert_eq!(all_but_vip, Vec::<Value>::new(), "the complement (one VIP) is too small");
    // The admin, who may read every customer, sees everything as it is.
    let admin = app.ok(t, "{classificationReport(groupBy:[LIFECYCLE]){keys{value} revenue{amount}}}", json!({})).await;
    assert!(admin.to_string().contains("90000.00"));
}

/// Before: a NUL character in any text (a name, a filter, a reason) made PostgreSQL fail
/// and the API answer INTERNAL, or HTTP 500 on the CSV routes.
#[tokio::test]
async fn nul_characters_are_refused_not_a_server_error() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let create = "mutation($n:String!){createCustomer(input:{name:$n, kind:INDIVIDUAL}){id}}";
    assert_eq!(code(&app.gql(Some(t), create, json!({"n": "a\u{0}b"})).await), "VALIDATION");
    let allowed = |resp: &Value| resp["errors"].is_null() || code(resp) == "VALIDATION";
    let list = "query($f:CustomerFilter){customers(filter:$f){totalCount}}";
    let resp = app.gql(Some(t), list, json!({"f": {"name": {"contains": "a\u{0}"}}})).await;
    assert!(allowed(&resp), "{resp}");
    let resp =
        app.gql(Some(t), "query($a:String){auditLog(filter:{action:$a}){totalCount}}", json!({"a": "x\u{0}"})).await;
    assert!(allowed(&resp), "{resp}");
    let path = "/reports/classification.csv?groupBy=TIER&filter=%7B%22region%22%3A%7B%22eq%22%3A%22%5Cu0000%22%7D%7D";
    let resp = app.client.get(app.url(path)).bearer_auth(t).send().await.unwrap();
    assert!(resp.status() == 200 || resp.status() == 400, "{}", resp.status());
}

/// Second review: a cell of a two-dimension report was the difference of a one-dimension
/// one; a past `asOf` worked as a creation-date filter; a rep's own customers padded the
/// pool that protects the others.
#[tokio::test]
async fn reports_resist_margins_days_and_padding() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let dept = app.create_department("华北", None).await;
    let (_, analyst) = app.create_user("analyst@example.com", "ANALYST", &dept).await;
    let (_, s1) = app.create_user("s1@example.com", "SALES", &dept).await;
    let (_, s2) = app.create_user("s2@example.com", "SALES", &dept).await;
    // s1: seven buyers in 北区; s2: one buyer (4,321.00) in 北区; eight more elsewhere.
    for n in 0..7 {
        let c =
            app.create_customer(&s1, json!({"name": format!("甲{n}"), "kind": "INDIVIDUAL", "region": "北区"})).await;
        won(&app, c["id"].as_str().unwrap(), "4000.00").await;
    }
    let target = app.create_customer(&s2, json!({"name": "目标", "kind": "INDIVIDUAL", "region": "北区"})).await;
    won(&app, target["id"].as_str().unwrap(), "4321.00").await;
    for n in 0..8 {
        let c = app.create_customer(t, json!({"name": format!("乙{n}"), "kind": "INDIVIDUAL", "region": "南区"})).await;
        won(&app, c["id"].as_str().unwrap(), "1000.00").await;
    }
    let rows = |token: String, group: &'static str| {
        let app = &app;
        async move {
            let q = format!(
                "{{classificationReport(groupBy:[{group}]){{suppressed keys{{value}} customerCount revenue{{amount}}}}}}"
            );
            app.ok(&token, &q, json!({})).await["classificationReport"].as_array().unwrap().clone()
        }
    };
    let amount = |r: &Value| r["revenue"]["amount"].as_str().unwrap().parse::<f64>().unwrap();
    let by_region = rows(analyst.clone(), "REGION").await;
    let by_region_owner = rows(analyst.clone(), "REGION, OWNER").await;
    let north = by_region.iter().find(|r| r["keys"][0]["value"] == "北区").map(amount);
    for cell in by_region_owner.iter().filter(|r| r["keys"][0]["value"] == "北区") {
        if let Some(north) = north {
            assert!(
                (north - amount(cell) - 4321.0).abs() > 0.001,
                "北区 minus a cell is the target: {by_region_owner:?}"
            );
        }
    }
    // The target's cell (北区, s2) is never shown on its own.
    assert!(by_region_owner.iter().all(|r| (amount(r) - 4321.0).abs() > 0.001), "{by_region_owner:?}");

    // A day in the past that leaves out a few customers created since answers nothing;
    // yesterday leaves out all sixteen (nothing to single out in an empty scope either).
    let q = "query($d:Date){classificationReport(groupBy:[TIER], asOf:$d){customerCount}}";
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(!app.ok(&analyst, q, json!({"d": today})).await["classificationReport"].as_array().unwrap().is_empty());

    // A rep who may read the company's reports: his own customers do not pad the pool
    // that hides s2's single customer.
    app.ok(
        t,
        "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}",
        json!({"i": {"role": "SALES", "resource": "REPORT", "action": "READ", "scope": "ALL"}}),
    )
    .await;
    let seen = rows(s1.clone(), "OWNER").await;
    for r in &seen {
        assert!((amount(r) - 28000.0 - 4321.0).abs() > 0.001, "his own plus the target: {seen:?}");
        assert!((amount(r) - 4321.0).abs() > 0.001, "{seen:?}");
    }
    let _ = s2;
}

/// Second review: on PostgreSQL a change racing an erasure wrote the erased name back
/// into the audit log or a consent's source.
#[tokio::test]
async fn an_erasure_is_not_undone_by_a_racing_change() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    for round in 0..3 {
        let name = format!("赵六{round}");
        let phone = format!("1390000000{round}");
        let c = app.create_customer(t, json!({"name": name, "kind": "INDIVIDUAL", "phone": phone})).await;
        let id = c["id"].as_str().unwrap().to_string();
        let consent = "mutation($c:ID!,$g:Boolean!,$s:String){setConsent(customerId:$c, channel:SMS, given:$g, source:$s){given}}";
        app.ok(t, consent, json!({"c": id, "g": true, "s": "展会登记赵六"})).await;
        let erase = app.gql(
            Some(t),
            "mutation($c:ID!){erasePersonalData(customerId:$c, reason:\"本人要求\"){id}}",
            json!({"c": id}),
        );
        let hold = app.gql(Some(t), "mutation($c:ID!){setLegalHold(customerId:$c, hold:false){id}}", json!({"c": id}));
        let withdraw = app.gql(Some(t), consent, json!({"c": id, "g": false}));
        let tier = app.gql(
            Some(t),
            "mutation($c:ID!){setTierOverride(customerId:$c, tier:B, reason:\"测试\"){id}}",
            json!({"c": id}),
        );
        let (e, _, _, _) = tokio::join!(erase, hold, withdraw, tier);
        assert!(e["errors"].is_null(), "{e}");
        let old = raw_column(&app, "audit_log", "CAST(old_values AS TEXT)").await;
        let new = raw_column(&app, "audit_log", "CAST(new_values AS TEXT)").await;
        for v in old.iter().chain(&new).flatten() {
            assert!(!v.contains(&name) && !v.contains(&phone) && !v.contains("展会登记赵六"), "round {round}: {v}");
        }
        let sources = raw_column(&app, "consent", "source").await;
        assert!(sources.iter().flatten().all(|s| !s.contains("赵六")), "{sources:?}");
    }
}
