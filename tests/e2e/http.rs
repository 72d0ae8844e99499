//! The HTTP guards around GraphQL: JSON-only POST, no operations over GET, no batches,
//! a body limit, depth and complexity limits, health and schema endpoints.
use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn guards_around_the_executor() {
    let app = TestApp::spawn().await;
    let c = &app.client;

    // text/plain (a CSRF "simple request") and form posts are refused before execution
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"] {
        let resp = c
            .post(app.url("/graphql"))
            .header("content-type", ct)
            .bearer_auth(&app.admin_token)
            .body(r#"{"query":"mutation{createDepartment(input:{name:\"csrf\"}){id}}"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{ct}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "BAD_REQUEST");
    }
    let data = app.ok(&app.admin_token, "{departments{name}}", json!({})).await;
    assert!(!data.to_string().contains("csrf"));

    // no operations over GET; GET without a query is the explorer
    let resp = c
        .get(app.url("/graphql?query=mutation%7BcreateDepartment(input:%7Bname:%22x%22%7D)%7Bid%7D%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = c.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("CRM GraphQL explorer"));

    // batches are refused
    let resp = c
        .post(app.url("/graphql"))
        .bearer_auth(&app.admin_token)
        .json(&json!([{"query": "{me{name}}"}, {"query": "{me{name}}"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(code(&resp.json::<Value>().await.unwrap()), "BAD_REQUEST");

    // malformed JSON
    let resp =
        c.post(app.url("/graphql")).header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(resp.status(), 400);

    // body limit (64 KiB in tests)
    let big = "a".repeat(100 * 1024);
    let resp =
        c.post(app.url("/graphql")).json(&json!({"query": format!("{{me{{name}}}} # {big}")})).send().await.unwrap();
    assert_eq!(resp.status(), 413);

    // Accept: application/json gets application/json
    let resp = c
        .post(app.url("/graphql"))
        .header("accept", "application/json")
        .bearer_auth(&app.admin_token)
        .json(&json!({"query": "{me{name}}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn depth_and_complexity_limits() {
    let app = TestApp::spawn().await;
    let deep = "{ me { department { parent { parent { parent { parent { parent { parent { parent { parent { parent { parent { name } } } } } } } } } } } } }";
    let resp = app.gql(Some(&app.admin_token), deep, json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("nested too deep"), "{resp}");
    assert_eq!(code(&resp), "BAD_REQUEST");

    let mut wide = String::from("{");
    for i in 0..300 {
        wide.push_str(&format!(" c{i}: customers(first: 100) {{ edges {{ node {{ id name phone email }} }} }}"));
    }
    wide.push('}');
    let resp = app.gql(Some(&app.admin_token), &wide, json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("complex"), "{resp}");

    // nesting of filters is bounded too
    let mut filter = json!({"name": {"eq": "x"}});
    for _ in 0..8 {
        filter = json!({"and": [filter]});
    }
    let resp = app
        .gql(Some(&app.admin_token), "query($w:CustomerFilter){customers(filter:$w){totalCount}}", json!({"w": filter}))
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
}

#[tokio::test]
async fn health_readiness_and_schema() {
    let app = TestApp::spawn().await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let served = app.client.get(app.url("/schema.graphql")).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, api::schema::sdl());
}

/// Deeply nested input values are refused before async-graphql parses them: ~50 levels of
/// `or` in a filter (or of a list literal) overflowed the worker's stack and aborted the
/// whole process, with no token needed.
#[tokio::test]
async fn deeply_nested_values_are_refused_not_fatal() {
    let app = TestApp::spawn().await;
    let mut filter = json!({"name": {"eq": "x"}});
    for _ in 0..60 {
        filter = json!({"or": [filter]});
    }
    let query = "query($f:CustomerFilter){customers(filter:$f){totalCount}}";
    let resp = app.gql(None, query, json!({"f": filter})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    let inline =
        format!("{{customers(filter:{}{{name:{{eq:\"x\"}}}}{}){{totalCount}}}}", "{or:[".repeat(60), "]}".repeat(60));
    let resp = app.gql(None, &inline, json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    let list = format!("{{customers(first:1, after:{}\"x\"{}){{totalCount}}}}", "[".repeat(2000), "]".repeat(2000));
    let resp = app.gql(Some(&app.admin_token), &list, json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    // Brackets inside strings, block strings and comments do not count.
    let quoted = format!(
        "# {}\n{{customers(filter:{{name:{{contains:\"{}\"}}}}){{totalCount}}}}",
        "[".repeat(500),
        "{[(".repeat(500)
    );
    assert_eq!(app.ok(&app.admin_token, &quoted, json!({})).await["customers"]["totalCount"], 0);
    // The server is still there, and a filter within the limits (5 levels) still works.
    let mut filter = json!({"name": {"eq": "x"}});
    for _ in 0..5 {
        filter = json!({"or": [filter]});
    }
    assert_eq!(app.ok(&app.admin_token, query, json!({"f": filter})).await["customers"]["totalCount"], 0);
}

/// Dates far outside the calendar (chrono reads years up to 262143) are VALIDATION, not a
/// panic in date arithmetic.
#[tokio::test]
async fn far_dates_are_invalid_input() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    for day in ["+262142-12-31", "99999-01-01", "2026-2-3"] {
        let resp = app
            .gql(
                Some(t),
                "query($d:Date){classificationReport(groupBy:[TIER], asOf:$d){customerCount}}",
                json!({"d": day}),
            )
            .await;
        assert!(resp["errors"][0]["message"].as_str().unwrap().contains("YYYY-MM-DD"), "{day}: {resp}");
        assert_eq!(code(&resp), "BAD_REQUEST", "{day}: {resp}");
        let resp = app
            .client
            .get(app.url(&format!("/reports/tier-migration.csv?from=2024-01-01&to={}", day.replace('+', "%2B"))))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{day}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "VALIDATION", "{day}");
    }
    let data = app.ok(t, "{classificationReport(groupBy:[TIER], asOf:\"9999-12-31\"){customerCount}}", json!({})).await;
    assert!(data["classificationReport"].is_array());
}

/// graphql-js's `getIntrospectionQuery()` (what GraphiQL's docs, graphql-codegen and Apollo
/// tooling send), about 13 deep: it was refused as "nested too deep" at the default limits.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

#[tokio::test]
async fn tooling_can_introspect_with_a_token() {
    let app = TestApp::spawn().await;
    let data = app.ok(&app.admin_token, INTROSPECTION, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    assert_eq!(data["__schema"]["subscriptionType"]["name"], "Subscription");
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "CustomerFilter"), "the whole schema is there");

    // Without a token: refused by default, allowed when configured.
    let resp = app.gql(None, INTROSPECTION, json!({})).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    let resp = app.gql(None, "{__type(name:\"Customer\"){name}}", json!({})).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    let open = TestApp::spawn_with(|c| c.anonymous_introspection = true).await;
    let resp = open.gql(None, INTROSPECTION, json!({})).await;
    assert!(resp.get("errors").is_none() && resp["data"]["__schema"].is_object(), "{resp}");

    // The depth limit still holds for everything else, and introspection has its own bound.
    let deep = format!("{{me{{department{{{}name{}}}}}}}", "parent{".repeat(11), "}".repeat(11));
    let resp = app.gql(Some(&app.admin_token), &deep, json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "14 levels outside introspection: {resp}");
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{resp}");
    let chain = format!("{{__type(name:\"Customer\"){{{}name{}}}}}", "ofType{".repeat(30), "}".repeat(30));
    let resp = app.gql(Some(&app.admin_token), &chain, json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{resp}");
}

/// Aliases multiplied work complexity did not price: 1,000 aliased `classificationReport`
/// fields ran in one request. Root fields are capped and a report costs as much as a page
/// of 100 rows with 20 fields.
#[tokio::test]
async fn aliases_and_reports_are_priced() {
    let app = TestApp::spawn().await;
    let t = &app.admin_token;
    let reports = |n: usize| {
        let fields: Vec<String> =
            (0..n).map(|i| format!("r{i}: classificationReport(groupBy:[TIER]){{customerCount}}")).collect();
        format!("{{{}}}", fields.join(" "))
    };
    let resp = app.gql(Some(t), &reports(1000), json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("root fields"), "{resp}");
    let resp = app.gql(Some(t), &reports(30), json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("complex"), "30 reports: {resp}");
    let data = app.ok(t, &reports(20), json!({})).await;
    assert_eq!(data.as_object().unwrap().len(), 20);
    // A key list ranks the whole scope whatever its page size: priced like a report.
    let lists = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("k{i}: goldCustomers(first:1){{totalCount}}")).collect();
        format!("{{{}}}", fields.join(" "))
    };
    let resp = app.gql(Some(t), &lists(30), json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().to_lowercase().contains("complex"), "30 key lists: {resp}");
    app.ok(t, &lists(20), json!({})).await;
    let many: Vec<String> = (0..101).map(|i| format!("m{i}: me{{id}}")).collect();
    let resp = app.gql(Some(t), &format!("{{{}}}", many.join(" ")), json!({})).await;
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("at most 100 root fields"), "{resp}");
    let fine: Vec<String> = (0..100).map(|i| format!("m{i}: me{{id}}")).collect();
    app.ok(t, &format!("{{{}}}", fine.join(" ")), json!({})).await;
}

/// The explorer at `GET /graphql` is whole from the server: the page, and every script and
/// style sheet it names, come from the server's origin, name no other, and may load
/// nothing else (Content-Security-Policy). `.ci/explorer.sh` renders it in Chromium.
#[tokio::test]
async fn the_explorer_comes_whole_from_the_server() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    for rule in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "style-src 'self'"] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = resp.text().await.unwrap();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap().to_string());
        }
    }
    assert_eq!(assets.len(), 2, "a script and a style sheet: {assets:?}");
    let mut texts = vec![page.clone()];
    for asset in &assets {
        assert!(asset.starts_with('/') && !asset.starts_with("//"), "same origin: {asset}");
        let resp = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            kind.starts_with(if asset.ends_with(".js") { "text/javascript" } else { "text/css" }),
            "{asset}: {kind}"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        texts.push(resp.text().await.unwrap());
    }
    for text in &texts {
        for elsewhere in ["http://", "https://", "//unpkg", "//cdn", "@import", "url("] {
            assert!(!text.contains(elsewhere), "nothing from another origin: {elsewhere}");
        }
    }
    let script = &texts[1];
    assert!(script.contains("__schema") && script.contains("login(email"), "introspection and a login form");
    assert!(!script.contains("innerHTML"), "server text is never parsed as HTML");
    let resp = app.client.get(app.url("/explorer/nothing.js")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(code(&resp.json::<Value>().await.unwrap()), "NOT_FOUND");
}
