//! Exports of the records as CSV: scope and field grants as in the API, filters, and a
//! rep's own file imported back line for line.
use crate::helpers::*;
use crate::imports::{counts, import};
use serde_json::json;

/// GETs an export; returns the status and the text.
pub(crate) async fn export(app: &TestApp, token: Option<&str>, path: &str) -> (u16, String) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The rows of our own CSV (quoted cells, doubled quotes, CRLF) keyed by the header.
pub(crate) fn rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut records = table(text);
    let header = records.remove(0);
    records.into_iter().map(|r| header.iter().cloned().zip(r).collect()).collect()
}

/// The lines of our own CSV as cells, the header's first.
pub(crate) fn table(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut cell, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut cell)),
            ('\r', false) => {}
            ('\n', false) => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => cell.push(c),
        }
    }
    records
}

#[tokio::test]
async fn exports_follow_scope_and_field_grants_and_import_back() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("west@example.com", "SALES", &west).await;
    let (_, service) = app.create_user("care@example.com", "SERVICE", &east).await;
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    app.create_customer(
        &rep,
        json!({"name": "陈明", "kind": "INDIVIDUAL", "phone": "13800000011", "birthday": "1985-03-04",
               "address": "杭州市西湖区, 文三路 1 号"}),
    )
    .await;
    let org = app
        .create_customer(&rep, json!({"name": "杭州丝绸有限公司", "kind": "ORGANIZATION", "email": "silk@example.com"}))
        .await;
    let pool =
        app.create_customer(&rep, json!({"name": "池塘客户", "kind": "INDIVIDUAL", "phone": "13800000012"})).await;
    // Cells a spreadsheet would read as formulas: exported guarded, imported back as they were.
    app.create_customer(
        &rep,
        json!({"name": "=往返测试", "kind": "INDIVIDUAL", "phone": "+86 139-4444-0003", "region": "-华东"}),
    )
    .await;
    app.ok(&admin, "mutation($id:ID!){assignCustomer(id:$id,ownerId:null){id}}", json!({"id": pool["id"]})).await;
    app.create_customer(&other, json!({"name": "西部客户", "kind": "INDIVIDUAL", "phone": "13900000013"})).await;
    app.ok(
        &rep,
        "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
        json!({"i": {"customerId": org["id"], "name": "周经理", "mobile": "13700000014", "birthday": "1980-01-02"}}),
    )
    .await;
    app.ok(
        &rep,
        "mutation($i:CreateDealInput!){createDeal(input:$i){id}}",
        json!({"i": {"customerId": org["id"], "title": "丝绸订单", "amount": "88000.50"}}),
    )
    .await;

    // The rep: own customers with every field, the department's pool without contact
    // details (a rep sees who to call once the customer is theirs), nothing of the west.
    let (status, text) = export(&app, Some(&rep), "/exports/customers.csv").await;
    assert_eq!(status, 200, "{text}");
    let mine = rows(&text);
    let by_name = |rows: &[std::collections::HashMap<String, String>], n: &str| {
        rows.iter().find(|r| r["name"] == n).cloned().unwrap_or_else(|| panic!("{n} in {rows:?}"))
    };
    let listed = app.ok(&rep, "{customers{nodes{name}}}", json!({})).await;
    assert_eq!(mine.len(), 4, "{text} {listed}");
    assert!(text.contains("'=往返测试") && text.contains("'+86 139-4444-0003"), "guarded: {text}");
    let chen = by_name(&mine, "陈明");
    assert_eq!(
        (chen["phone"].as_str(), chen["birthday"].as_str(), chen["address"].as_str()),
        ("13800000011", "1985-03-04", "杭州市西湖区, 文三路 1 号")
    );
    assert_eq!((chen["owner"].as_str(), chen["department"].as_str()), ("rep@example.com", "华东"));
    let pooled = by_name(&mine, "池塘客户");
    assert_eq!((pooled["phone"].as_str(), pooled["owner"].as_str()), ("", ""));
    assert!(!text.contains("西部客户"));

    // Service reads every customer and their contact details, but no birthdays and no
    // deal amounts.
    let (_, text) = export(&app, Some(&service), "/exports/customers.csv").await;
    let all = rows(&text);
    assert_eq!(all.len(), 5);
    assert_eq!(by_name(&all, "陈明")["birthday"], "");
    assert_eq!(by_name(&all, "陈明")["phone"], "13800000011");
    let (_, deals) = export(&app, Some(&service), "/exports/deals.csv").await;
    let deal = &rows(&deals)[0];
    assert_eq!(
        (deal["title"].as_str(), deal["amount"].as_str(), deal["customerName"].as_str()),
        ("丝绸订单", "", "杭州丝绸有限公司")
    );
    let (_, deals) = export(&app, Some(&rep), "/exports/deals.csv").await;
    assert_eq!(rows(&deals)[0]["amount"], "88000.50");
    let (_, contacts) = export(&app, Some(&service), "/exports/contacts.csv").await;
    let zhou = &rows(&contacts)[0];
    assert_eq!((zhou["mobile"].as_str(), zhou["birthday"].as_str()), ("13700000014", ""));
    let (_, contacts) = export(&app, Some(&other), "/exports/contacts.csv").await;
    assert!(rows(&contacts).is_empty(), "{contacts}");

    // A filter narrows the file, as in the GraphQL list; bad ones are refused up front.
    let (status, text) = export(
        &app,
        Some(&service),
        "/exports/customers.csv?filter=%7B%22kind%22%3A%7B%22eq%22%3A%22ORGANIZATION%22%7D%7D",
    )
    .await;
    assert_eq!((status, rows(&text).len()), (200, 1), "{text}");
    let (status, text) = export(&app, Some(&service), "/exports/customers.csv?filter=%7Bnope").await;
    assert_eq!((status, text.contains("VALIDATION")), (400, true), "{text}");
    let (status, text) = export(&app, Some(&analyst), "/exports/customers.csv").await;
    assert_eq!((status, text.contains("FORBIDDEN")), (403, true), "{text}");
    let (status, _) = export(&app, None, "/exports/customers.csv").await;
    assert_eq!(status, 401);
    let (status, text) = export(&app, Some(&rep), "/exports/users.csv").await;
    assert_eq!((status, text.contains("NOT_FOUND")), (404, true), "{text}");
    let log = app.ok(&admin, "{auditLog(filter:{action:\"export\"}){nodes{entity actorId}}}", json!({})).await;
    assert!(log["auditLog"]["nodes"].as_array().unwrap().len() >= 6, "every export is audited: {log}");
    // A misspelt action is refused by name, not answered with an empty trail.
    let typo = app.gql(Some(&admin), "{auditLog(filter:{action:\"exprot\"}){nodes{entity}}}", json!({})).await;
    assert_eq!((code(&typo), invalid_fields(&typo)), ("VALIDATION", vec!["filter.action"]), "{typo}");
    let typo = app.gql(Some(&admin), "{auditLog(filter:{entity:\"customr\"}){nodes{entity}}}", json!({})).await;
    assert_eq!((code(&typo), invalid_fields(&typo)), ("VALIDATION", vec!["filter.entity"]), "{typo}");

    // The rep's file imports back as it is, line for line: their own customers UNCHANGED,
    // the department's pool customer (readable, not theirs to change) SKIPPED, not DUPLICATE.
    let (_, text) = export(&app, Some(&rep), "/exports/customers.csv").await;
    for dry in [true, false] {
        let (status, back) = import(&app, Some(&rep), &format!("dryRun={dry}"), text.clone().into_bytes()).await;
        assert_eq!(status, 200, "{back}");
        assert_eq!(counts(&back["importRun"]), [0, 0, 3, 0, 0, 0], "{back}");
        assert_eq!(back["importRun"]["skipped"], 1, "{back}");
        let skipped = &back["problems"][0];
        assert_eq!((&skipped["outcome"], &skipped["recordId"]), (&json!("SKIPPED"), &pool["id"]), "{back}");
        assert!(skipped["message"].as_str().unwrap().contains("pool"), "{back}");
        let id = back["importRun"]["id"].clone();
        let run = app
            .ok(
                &rep,
                "query($id:ID!){importRun(id:$id){skipped lines(outcomes:[SKIPPED]){nodes{line recordId}}}}",
                json!({"id": id}),
            )
            .await;
        assert_eq!(run["importRun"]["skipped"], 1);
        assert_eq!(run["importRun"]["lines"]["nodes"][0]["recordId"], pool["id"]);
    }
    // Matched on its phone alone, a pool customer is SKIPPED without its id: which pool
    // customer holds a phone is a contact detail the rep may not read.
    let guess = "name,phone\r\n随便,13800000012\r\n";
    let (_, back) = import(&app, Some(&rep), "dryRun=true", guess.as_bytes().to_vec()).await;
    assert_eq!(back["problems"][0]["outcome"], "SKIPPED", "{back}");
    assert!(back["problems"][0]["recordId"].is_null(), "{back}");
}
