//! Reports: totals equal what the same caller's lists add up to, CSV parses back to the
//! same numbers, analysts see no personal field, and the time-based reports on built data.
use crate::helpers::*;
use chrono::{Duration, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

fn cents(amount: &str) -> i64 {
    let (i, f) = amount.split_once('.').unwrap_or((amount, "0"));
    i.parse::<i64>().unwrap() * 100 + format!("{f:0<2}")[..2].parse::<i64>().unwrap()
}

async fn list_totals(app: &TestApp, token: &str) -> (i64, i64) {
    let mut after = Value::Null;
    let (mut n, mut revenue) = (0, 0);
    loop {
        let data = app
            .ok(token, "query($a:String){customers(first:100, after:$a){edges{node{revenue{amount}}} pageInfo{hasNextPage endCursor}}}", json!({"a": after}))
            .await;
        for e in data["customers"]["edges"].as_array().unwrap() {
            n += 1;
            revenue += cents(e["node"]["revenue"]["amount"].as_str().unwrap());
        }
        if !data["customers"]["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return (n, revenue);
        }
        after = data["customers"]["pageInfo"]["endCursor"].clone();
    }
}

async fn report_totals(app: &TestApp, token: &str, group_by: &str) -> (i64, i64, Vec<Value>) {
    let data = app.ok(token, &format!("{{classificationReport(groupBy:[{group_by}]){{keys{{dimension value label}} customerCount revenue{{amount}} revenueShare}}}}"), json!({})).await;
    let rows = data["classificationReport"].as_array().unwrap().clone();
    let n = rows.iter().map(|r| r["customerCount"].as_i64().unwrap()).sum();
    let revenue = rows.iter().map(|r| cents(r["revenue"]["amount"].as_str().unwrap())).sum();
    (n, revenue, rows)
}

async fn csv(app: &TestApp, token: Option<&str>, path: &str) -> (u16, String) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A minimal CSV reader (quoted cells, doubled quotes, CRLF) to parse our own output back.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn report_totals_equal_list_totals_and_csv() {
    let app = TestApp::spawn().await;
    service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 80, 3).await.unwrap();
    let manager = app.login("wang.qiang@demo.crm", service::demo::DEMO_PASSWORD).await;
    let analyst = app.login("ma.chao@demo.crm", service::demo::DEMO_PASSWORD).await;

    for token in [&app.admin_token, &manager] {
        let (n, revenue) = list_totals(&app, token).await;
        for group_by in ["TIER", "LIFECYCLE, REGION", "DEPARTMENT, OWNER", "CATEGORY"] {
            let (rn, rrev, _) = report_totals(&app, token, group_by).await;
            assert_eq!((rn, rrev), (n, revenue), "report by {group_by} vs list");
        }
    }
    // the manager's report is smaller than the whole company's
    let (all, _, _) = report_totals(&app, &app.admin_token, "TIER").await;
    let (mine, _, _) = report_totals(&app, &manager, "TIER").await;
    assert!(mine < all && mine > 0);

    // CSV parses back to the same numbers
    let (_, _, rows) = report_totals(&app, &app.admin_token, "TIER, DEPARTMENT").await;
    let (status, text) = csv(&app, Some(&app.admin_token), "/reports/classification.csv?groupBy=TIER,DEPARTMENT").await;
    assert_eq!(status, 200);
    let parsed = parse_csv(&text);
    assert_eq!(
        parsed[0],
        ["tier", "department", "department_name", "customers", "revenue_cny", "revenue_share_pct", "suppressed"]
    );
    assert_eq!(parsed.len() - 1, rows.len());
    for (csv_row, gql) in parsed[1..].iter().zip(&rows) {
        assert_eq!(csv_row[0], gql["keys"][0]["value"].as_str().unwrap());
        assert_eq!(csv_row[1], gql["keys"][1]["value"].as_str().unwrap());
        assert_eq!(csv_row[2], gql["keys"][1]["label"].as_str().unwrap());
        assert_eq!(csv_row[3], gql["customerCount"].to_string());
        assert_eq!(csv_row[4], gql["revenue"]["amount"].as_str().unwrap());
        assert_eq!(csv_row[5], gql["revenueShare"].as_str().unwrap());
    }

    // the analyst: aggregates yes, personal fields never
    // (groups under k = 5 are pooled; a pool itself under 5 is left out)
    let (an, arev, _) = report_totals(&app, &analyst, "TIER").await;
    let (_, admin_rev, _) = report_totals(&app, &app.admin_token, "TIER").await;
    assert!(an <= all && all - an < 5 && arev <= admin_rev, "{an} of {all}");
    let data = app.ok(&analyst, "{customers{totalCount}}", json!({})).await;
    assert_eq!(data["customers"]["totalCount"], 0);
    let (status, grades) = csv(&app, Some(&analyst), "/reports/customer-grades.csv").await;
    assert_eq!(status, 200);
    let parsed = parse_csv(&grades);
    assert_eq!(parsed.len() - 1, all as usize);
    for personal in ["name", "phone", "email", "address", "birthday"] {
        assert!(!parsed[0].iter().any(|h| h.contains(personal)), "{personal} in the header");
    }
    let people = app.ok(&app.admin_token, "{customers(first:100){edges{node{name phone email}}}}", json!({})).await;
    for e in people["customers"]["edges"].as_array().unwrap() {
        for field in ["name", "phone", "email"] {
            if let Some(v) = e["node"][field].as_str() {
                assert!(!grades.contains(v), "{field} {v} leaked into the export");
            }
        }
    }
    assert!(!parsed[0].iter().any(|h| h == "owner_id"), "no owner next to pseudonyms");
    let column = parsed[0].iter().position(|h| h == "revenue_cny").unwrap();
    let revenue_sum: i64 = parsed[1..].iter().map(|r| cents(&r[column])).sum();
    assert_eq!(revenue_sum, admin_rev, "the export adds up to the report");
}

#[tokio::test]
async fn csv_errors_and_formula_injection() {
    let app = TestApp::spawn().await;
    app.create_customer(
        &app.admin_token,
        json!({"name": "注入测试", "kind": "INDIVIDUAL", "region": "=HYPERLINK(\"http://evil\")"}),
    )
    .await;
    let (status, text) = csv(&app, None, "/reports/classification.csv?groupBy=TIER").await;
    assert_eq!((status, text.contains("UNAUTHENTICATED")), (401, true));
    let (status, _) = csv(&app, Some(&app.admin_token), "/reports/nothing.csv").await;
    assert_eq!(status, 404);
    let (status, text) = csv(&app, Some(&app.admin_token), "/reports/classification.csv?groupBy=COLOUR").await;
    assert_eq!((status, text.contains("VALIDATION")), (400, true));
    let (status, text) =
        csv(&app, Some(&app.admin_token), "/reports/tier-migration.csv?from=2026-13-01&to=2026-01-01").await;
    assert_eq!((status, text.contains("VALIDATION")), (400, true));

    let (_, text) = csv(&app, Some(&app.admin_token), "/reports/classification.csv?groupBy=REGION").await;
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "{text}");
    let parsed = parse_csv(&text);
    assert_eq!(parsed[1][0], "'=HYPERLINK(\"http://evil\")");

    // a service rep has no report access
    let dept = app.create_department("客服", None).await;
    let (_, service) = app.create_user("s@example.com", "SERVICE", &dept).await;
    let (status, _) = csv(&app, Some(&service), "/reports/customer-grades.csv").await;
    assert_eq!(status, 403);
    let resp = app.gql(Some(&service), "{classificationReport(groupBy:[TIER]){customerCount}}", json!({})).await;
    assert_eq!(code(&resp), "FORBIDDEN");
}

#[tokio::test]
async fn tier_migration_staff_activity_and_feedback() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    let dept = app.create_department("华东", None).await;
    let other = app.create_department("西南", None).await;
    let (rep_id, rep) = app.create_user("rep@example.com", "SALES", &dept).await;
    let (_, manager) = app.create_user("m@example.com", "MANAGER", &dept).await;
    app.create_user("far@example.com", "SALES", &other).await;

    // tier history: D -> B five days ago, B -> A two days ago
    let c = app.create_customer(&rep, json!({"name": "迁移客户", "kind": "ORGANIZATION"})).await["id"].clone();
    app.ok(
        &rep,
        "mutation($c:ID!){createDeal(input:{customerId:$c,title:\"a\",stage:WON,amount:\"60000\"}){id}}",
        json!({"c": c}),
    )
    .await;
    app.ok(
        &rep,
        "mutation($c:ID!){createDeal(input:{customerId:$c,title:\"b\",stage:WON,amount:\"30000\"}){id}}",
        json!({"c": c}),
    )
    .await;
    let backend = app.db.get_database_backend();
    let now = Utc::now();
    let id = uuid::Uuid::parse_str(c.as_str().unwrap()).unwrap();
    let set = |sql: &str, values: Vec<sea_orm::Value>| {
        sea_orm::Statement::from_sql_and_values(backend, pg(backend, sql), values)
    };
    app.db
        .execute_raw(set(
            "UPDATE customer SET created_at = ? WHERE id = ?",
            vec![(now - Duration::days(10)).into(), id.into()],
        ))
        .await
        .unwrap();
    app.db
        .execute_raw(set(
            "UPDATE classification_history SET at = ? WHERE customer_id = ? AND field = 'TIER' AND to_value = 'B'",
            vec![(now - Duration::days(5)).into(), id.into()],
        ))
        .await
        .unwrap();
    app.db
        .execute_raw(set(
            "UPDATE classification_history SET at = ? WHERE customer_id = ? AND field = 'TIER' AND to_value = 'A'",
            vec![(now - Duration::days(2)).into(), id.into()],
        ))
        .await
        .unwrap();
    let day = |n: i64| (now - Duration::days(n)).date_naive().to_string();
    let cell = |cells: &Value, from: &str, to: &str| {
        cells.as_array().unwrap().iter().find(|c| c["from"] == from && c["to"] == to).unwrap()["count"]
            .as_i64()
            .unwrap()
    };
    let m = app
        .ok(
            &t,
            "query($f:Date!,$t:Date!){tierMigration(from:$f,to:$t){from to count}}",
            json!({"f": day(7), "t": day(3)}),
        )
        .await;
    assert_eq!(m["tierMigration"].as_array().unwrap().len(), 16);
    assert_eq!(cell(&m["tierMigration"], "D", "B"), 1);
    let m = app
        .ok(
            &t,
            "query($f:Date!,$t:Date!){tierMigration(from:$f,to:$t){from to count}}",
            json!({"f": day(4), "t": day(0)}),
        )
        .await;
    assert_eq!(cell(&m["tierMigration"], "B", "A"), 1);
    let (_, csv_text) =
        csv(&app, Some(&t), &format!("/reports/tier-migration.csv?from={}&to={}", day(4), day(0))).await;
    assert!(csv_text.contains("B,A,1\r\n"), "{csv_text}");

    // staff activity: calls, a callback (the customer had bought), a visit, a message, deals won
    let log = |kind: &str, direction: &str| json!({"i": {"customerId": c, "kind": kind, "direction": direction, "summary": "记录"}});
    let q = "mutation($i:CreateInteractionInput!){createInteraction(input:$i){id}}";
    for (kind, dir) in [("CALL", "OUTBOUND"), ("CALL", "INBOUND"), ("VISIT", "OUTBOUND"), ("WECHAT", "OUTBOUND")] {
        app.ok(&rep, q, log(kind, dir)).await;
    }
    let data = app.ok(&manager, "query($f:Date!,$t:Date!){staffActivity(from:$f,to:$t){userId calls visits messages callbacks dealsWon revenueWon{amount}}}", json!({"f": day(1), "t": day(0)})).await;
    let rows = data["staffActivity"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "the manager sees the department: {rows:?}");
    let row = rows.iter().find(|r| r["userId"] == rep_id.as_str()).unwrap();
    assert_eq!(
        row,
        &json!({"userId": rep_id, "calls": 2, "visits": 1, "messages": 1, "callbacks": 1, "dealsWon": 2, "revenueWon": {"amount": "90000.00"}})
    );
    let data = app
        .ok(&rep, "query($f:Date!,$t:Date!){staffActivity(from:$f,to:$t){userId}}", json!({"f": day(1), "t": day(0)}))
        .await;
    assert_eq!(data["staffActivity"].as_array().unwrap().len(), 1, "a rep sees only themselves");

    // feedback summary: average rating, NPS and median resolution
    let fb = "mutation($i:CreateFeedbackInput!){createFeedback(input:$i){id version}}";
    let mut ids = Vec::new();
    for (kind, rating, nps) in [("PRAISE", 5, 10), ("SURVEY", 4, 9), ("COMPLAINT", 2, 3)] {
        let d = app.ok(&t, fb, json!({"i": {"customerId": c, "kind": kind, "channel": "WECHAT", "content": "反馈", "rating": rating, "nps": nps}})).await;
        ids.push(d["createFeedback"].clone());
    }
    app.ok(
        &t,
        "mutation($i:UpdateFeedbackInput!){updateFeedback(input:$i){id}}",
        json!({"i": {"id": ids[2]["id"], "version": 1, "status": "RESOLVED"}}),
    )
    .await;
    let data = app.ok(&t, "query($f:Date!,$t:Date!){a: feedbackSummary(from:$f,to:$t){count ratedCount averageRating nps npsAnswers medianResolutionMinutes} b: feedbackSummary(from:$f,to:$t,groupBy:[KIND]){keys{value} count}}", json!({"f": day(1), "t": day(0)})).await;
    assert_eq!(
        data["a"],
        json!([{"count": 3, "ratedCount": 3, "averageRating": "3.67", "nps": 33, "npsAnswers": 3, "medianResolutionMinutes": 0}])
    );
    assert_eq!(data["b"].as_array().unwrap().len(), 3);
    let (_, text) =
        csv(&app, Some(&t), &format!("/reports/feedback-summary.csv?from={}&to={}&groupBy=KIND", day(1), day(0))).await;
    assert_eq!(
        parse_csv(&text)[0],
        ["kind", "count", "rated", "average_rating", "nps", "nps_answers", "median_resolution_minutes"]
    );
}

fn pg(backend: sea_orm::DatabaseBackend, sql: &str) -> String {
    if backend != sea_orm::DatabaseBackend::Postgres {
        return sql.to_string();
    }
    let mut n = 0;
    sql.chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("${n}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One filter, three ways in: the customer list, the GraphQL report and the CSV report
/// read the same JSON shape and build it in one place (`service/src/kernel/filter.rs`).
#[tokio::test]
async fn report_filters_match_list_filters_in_graphql_and_csv() {
    let app = TestApp::spawn().await;
    service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 60, 5).await.unwrap();
    let t = &app.admin_token;
    let filter = json!({"or": [{"tier": {"in": ["A", "B"]}}, {"kind": {"eq": "ORGANIZATION"}, "region": {"in": ["华东", "华南"]}}]});
    let data = app.ok(t, "query($f:CustomerFilter){customers(filter:$f){totalCount}}", json!({"f": filter})).await;
    let listed = data["customers"]["totalCount"].as_i64().unwrap();
    assert!(listed > 0, "the demo data has such customers");
    let data = app
        .ok(
            t,
            "query($f:ReportFilter){classificationReport(groupBy:[TIER], filter:$f){customerCount}}",
            json!({"f": filter}),
        )
        .await;
    let reported: i64 =
        data["classificationReport"].as_array().unwrap().iter().map(|r| r["customerCount"].as_i64().unwrap()).sum();
    assert_eq!(reported, listed);
    let path = format!("/reports/classification.csv?groupBy=TIER&filter={}", urlencode(&filter.to_string()));
    let (status, text) = csv(&app, Some(t), &path).await;
    assert_eq!(status, 200, "{text}");
    let from_csv: i64 = parse_csv(&text)[1..].iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(from_csv, listed);

    // Refused alike: identifying, free-text and amount fields, unknown fields and
    // operators, bad values. The GraphQL input type has no such fields at all.
    let gql = "query($f:ReportFilter){classificationReport(groupBy:[TIER], filter:$f){customerCount}}";
    let resp = app.gql(Some(t), gql, json!({"f": {"and": [{"revenue": {"gte": "1"}}]}})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("revenue"), "{resp}");
    for (bad, field) in [
        (json!({"revenue": {"gte": "1"}}), "filter.revenue"),
        (json!({"phone": {"contains": "138"}}), "filter.phone"),
        (json!({"email": {"eq": "a@b.cn"}}), "filter.email"),
        (json!({"name": {"contains": "王"}}), "filter.name"),
        (json!({"id": {"eq": "0193a1c2-0000-7000-8000-000000000000"}}), "filter.id"),
        (json!({"region": {"contains": "华"}}), "filter.region"),
        (json!({"secret": {"eq": "x"}}), "filter.secret"),
        (json!({"tier": {"contains": "A"}}), "filter.tier"),
        (json!({"tier": {"eq": "Z"}}), "filter.tier"),
        (json!({"ownerId": {"eq": "not-a-uuid"}}), "filter.ownerId"),
    ] {
        let path = format!("/reports/classification.csv?groupBy=TIER&filter={}", urlencode(&bad.to_string()));
        let (status, text) = csv(&app, Some(t), &path).await;
        assert_eq!(status, 400, "{bad}: {text}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(code(&body), "VALIDATION", "{bad}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("invalid input: {field}: ")), "{bad}: {message}");
    }
    let deep = (0..7).fold(json!({"tier": {"eq": "A"}}), |f, _| json!({"and": [f]}));
    let resp = app.gql(Some(t), "query($f:CustomerFilter){customers(filter:$f){totalCount}}", json!({"f": deep})).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    let (status, _) = csv(&app, Some(t), "/reports/classification.csv?groupBy=TIER&filter=%7Bnot%20json").await;
    assert_eq!(status, 400);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
