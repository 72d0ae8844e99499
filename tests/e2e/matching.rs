//! Matching is not an existence oracle: one budget per person for every path that matches
//! against records the caller cannot read (duplicate candidates, import lines), aliases
//! counted; import runs are not kept forever (issue: fair and deadlock-free under load).
use crate::helpers::*;
use serde_json::{Value, json};

fn candidates(n: usize) -> String {
    format!(
        "{{{}}}",
        (0..n)
            .map(|i| format!("c{i}: duplicateCandidates(input:{{kind:INDIVIDUAL, phone:\"1390000{i:04}\"}}){{score}} "))
            .collect::<String>()
    )
}

fn codes(resp: &Value) -> Vec<&str> {
    resp["errors"].as_array().into_iter().flatten().filter_map(|e| e["extensions"]["code"].as_str()).collect()
}

#[tokio::test]
async fn duplicate_candidates_spend_a_budget_counted_per_alias() {
    let app = TestApp::spawn_with(|c| c.match_budget_per_hour = 150).await;
    let dept = app.create_department("华北", None).await;
    let (_, rep) = app.create_user("rep3@example.com", "SALES", &dept).await;
    let first = app.gql(Some(&rep), &candidates(100), json!({})).await;
    assert!(first.get("errors").is_none(), "{first}");
    let second = app.gql(Some(&rep), &candidates(100), json!({})).await;
    let limited = codes(&second);
    assert_eq!(limited.len(), 50, "the aliases past the budget are refused: {limited:?}");
    assert!(limited.iter().all(|c| *c == "RATE_LIMITED"));
    assert!(second["errors"][0]["extensions"]["retryAfter"].as_u64().unwrap() >= 1);
    // An import by the same person draws from the same budget.
    let csv = "name,phone\r\n张三,13800138000\r\n";
    let resp = app
        .client
        .post(app.url("/imports/customers?dryRun=true"))
        .bearer_auth(&rep)
        .header("content-type", "text/csv")
        .body(csv.as_bytes().to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{body}");
    assert_eq!(body["importRun"]["status"], "FAILED", "{body}");
    // Someone who may read every customer learns nothing from matching: not charged.
    for _ in 0..3 {
        let admin = app.gql(Some(&app.admin_token), &candidates(100), json!({})).await;
        assert!(admin.get("errors").is_none(), "{admin}");
    }
}

#[tokio::test]
async fn import_lines_spend_the_budget_and_a_run_past_it_stops_where_it_was() {
    let app = TestApp::spawn_with(|c| c.match_budget_per_hour = 700).await;
    let dept = app.create_department("西北", None).await;
    let (_, rep) = app.create_user("rep4@example.com", "SALES", &dept).await;
    let mut csv = String::from("name,phone\r\n");
    for n in 0..1200 {
        csv.push_str(&format!("客户{n},137{n:08}\r\n"));
    }
    let resp = app
        .client
        .post(app.url("/imports/customers?dryRun=true"))
        .bearer_auth(&rep)
        .header("content-type", "text/csv")
        .body(csv.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let body: Value = resp.json().await.unwrap();
    // The first chunk (500 lines) fit the budget, the second did not.
    assert_eq!(body["importRun"]["linesRead"], 500, "{body}");
    assert!(body["importRun"]["error"].as_str().unwrap_or("").contains("matching budget"), "{body}");
}

#[tokio::test]
async fn import_runs_past_their_retention_are_removed_with_their_lines() {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let resp = app
            .client
            .post(app.url("/imports/customers?dryRun=true"))
            .bearer_auth(&admin)
            .header("content-type", "text/csv")
            .body("name\r\n张三\r\n李四\r\n".as_bytes().to_vec())
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        runs.push(uuid::Uuid::parse_str(body["importRun"]["id"].as_str().unwrap()).unwrap());
    }
    let now = chrono::Utc::now();
    entity::import_run::Entity::update_many()
        .col_expr(entity::import_run::Column::FinishedAt, Expr::value(now - chrono::Duration::days(31)))
        .filter(entity::import_run::Column::Id.eq(runs[0]))
        .exec(&app.db)
        .await
        .unwrap();
    let removed = service::transfer::import::prune(&app.db, now, 30).await.unwrap();
    assert_eq!(removed, 3, "the old run and its two lines");
    let left: Vec<uuid::Uuid> =
        entity::import_run::Entity::find().all(&app.db).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(left, [runs[1]]);
    let lines = entity::import_line::Entity::find()
        .filter(entity::import_line::Column::RunId.eq(runs[0]))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(lines, 0);
}
