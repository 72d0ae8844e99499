//! The compiled read path (`service::compiled`): every answer equals the ordinary path's,
//! for every role, scope and field grant, errors included. Two servers on one database,
//! one with `CRM_COMPILED_READS` on and one off, are asked the same questions. On SQLite
//! both resolve field by field (the compiled path is PostgreSQL's), and the answers agree
//! trivially; `TEST_DATABASE_URL` runs it where it counts.
use crate::helpers::*;
use serde_json::{Value, json};

/// Departments East (with a branch East-1) and West; a manager of East, two reps of East
/// (one in the branch), a rep of West; customers of each rep with contacts and deals, one
/// in East's pool, one in the trash. Reps read their department's customers but see
/// contact details on their own only (a partial field grant); managers see none; service
/// staff of East read their own rows and East's pool (the list merged from two index
/// scans, which the compiled path leaves to the ordinary one in the default order).
async fn book(app: &TestApp) -> (Vec<(&'static str, String)>, Vec<String>) {
    let t = &app.admin_token;
    let east = app.create_department("East", None).await;
    let branch = app.create_department("East-1", Some(&east)).await;
    let west = app.create_department("West", None).await;
    let (_, manager) = app.create_user("m@east.test", "MANAGER", &east).await;
    let (_, rep) = app.create_user("r1@east.test", "SALES", &east).await;
    let (_, rep_branch) = app.create_user("r2@east.test", "SALES", &branch).await;
    let (_, rep_west) = app.create_user("r3@west.test", "SALES", &west).await;
    let (_, service) = app.create_user("s@east.test", "SERVICE", &east).await;
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    for (role, resource, scope, pool) in [
        ("SALES", "CUSTOMER", "DEPARTMENT", true),
        ("SALES", "CONTACT", "DEPARTMENT", false),
        ("SALES", "DEAL", "OWN", false),
        ("SALES", "CONTACT_DETAILS", "OWN", false),
        ("SALES", "PERSONAL_DETAILS", "OWN", false),
        ("MANAGER", "CONTACT_DETAILS", "NONE", false),
        ("SERVICE", "CUSTOMER", "OWN", true),
        ("SERVICE", "CONTACT", "OWN", false),
    ] {
        let i = json!({"role": role, "resource": resource, "action": "READ", "scope": scope, "includePool": pool});
        app.ok(t, set, json!({ "i": i })).await;
    }
    let mut ids = Vec::new();
    let mut n = 0;
    for (who, names) in [
        (&rep, ["华联超市", "O'Brien \"Q\" \\ 😀"]),
        (&rep_branch, ["李娜", "华润万家"]),
        (&rep_west, ["王芳", "陈静"]),
    ] {
        for name in names {
            n += 1;
            let c = app
                .create_customer(
                    who,
                    json!({"name": name, "kind": "ORGANIZATION", "phone": format!("1380000{n:04}"),
                           "email": format!("c{n}@example.com"), "region": "上海"}),
                )
                .await;
            let id = c["id"].as_str().unwrap().to_string();
            for k in 0..3 {
                let contact = "mutation($i:CreateContactInput!){createContact(input:$i){id}}";
                let i = json!({"customerId": id, "name": format!("联系人{n}-{k}"), "mobile": format!("1390000{n:02}{k:02}"),
                               "email": format!("p{n}{k}@example.com"), "title": "经理",
                               "hometown": "湖南", "hobbies": "钓鱼"});
                app.ok(who, contact, json!({ "i": i })).await;
                let deal = "mutation($i:CreateDealInput!){createDeal(input:$i){id}}";
                let i = json!({"customerId": id, "title": format!("订单{n}-{k}"), "amount": "100.00"});
                app.ok(who, deal, json!({ "i": i })).await;
            }
            ids.push(id);
        }
    }
    // One of East's customers to the pool, one of West's to the trash.
    app.ok(t, "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}", json!({"id": ids[1]})).await;
    app.ok(t, "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": ids[5]})).await;
    let callers = vec![
        ("admin", t.clone()),
        ("manager", manager),
        ("rep", rep),
        ("rep in a branch", rep_branch),
        ("rep of West", rep_west),
        ("service: own rows and the pool", service),
    ];
    (callers, ids)
}

const ONE: &str = "query($id:ID!){customer(id:$id){__typename id name kind email phone phoneE164 region \
    lifecycleStage tier wonDealCount ownerId departmentId inPublicPool version \
    contacts(first:2){__typename totalCount edges{__typename node{__typename name mobile email officePhone title \
    hometown hobbies dealRole}}} \
    deals{nodes{id title stage customerId}}}}";

/// (query, variables) asked of both servers.
fn questions(ids: &[String], cursor: &str) -> Vec<(String, Value)> {
    let mut q: Vec<(String, Value)> = ids.iter().map(|id| (ONE.to_string(), json!({ "id": id }))).collect();
    q.push((ONE.into(), json!({"id": "00000000-0000-0000-0000-000000000000"})));
    q.push((ONE.into(), json!({"id": "not-an-id"})));
    for (query, vars) in [
        (
            "{customers(first:3,orderBy:[{field:NAME}]){totalCount __typename edges{__typename node{id name email phone}} nodes{n:name}}}",
            json!({}),
        ),
        (
            "{customers{edges{node{name contacts(first:10){edges{node{name mobile}}} deals(first:10){edges{node{id}}}}}}}",
            json!({}),
        ),
        (
            "query($f:Int){customers(first:$f){totalCount nodes{id contacts(first:$f){totalCount nodes{id}}}}}",
            json!({"f": 2}),
        ),
        ("query($f:Int){customers(first:$f){nodes{id contacts(first:$f){nodes{id}}}}}", json!({"f": null})),
        ("{customers(deleted:true){totalCount nodes{id name contacts{totalCount}}}}", json!({})),
        (
            "{customers(filter:{name:{contains:\"华\"}},orderBy:[{field:NAME,direction:DESC}]){totalCount nodes{id name}}}",
            json!({}),
        ),
        ("query($a:String){customers(first:2,after:$a){totalCount nodes{id}}}", json!({ "a": cursor })),
        ("{customers(first:500){totalCount}}", json!({})),
        ("{customers(after:\"xyz\"){totalCount}}", json!({})),
        ("{customers{nodes{id contacts(first:101){totalCount}}}}", json!({})),
        ("{customers{nodes{id pool:inPublicPool contacts(first:0){totalCount edges{node{id}}}}}}", json!({})),
        ("{customers(first:0){totalCount nodes{id}}}", json!({})),
        ("{customers(deleted:true){nodes{phone contacts{nodes{id}} deals{totalCount}}}}", json!({})),
        ("{customers{nodes{c:contacts(first:1){nodes{id}} d:contacts(first:2){nodes{id name}}}}}", json!({})),
        // Root fields asked twice under one key are merged by async-graphql: not compiled.
        ("{customers{totalCount} customers{nodes{id}}}", json!({})),
        (
            "query{...A ...B} fragment A on Query{customers{totalCount}} fragment B on Query{customers{nodes{id}}}",
            json!({}),
        ),
        ("query($id:ID!){customer(id:$id){id} customer(id:$id){name}}", json!({ "id": ids[0] })),
        ("{customers{nodes{id}} customers{pageInfo{hasNextPage}}}", json!({})),
        ("{a:customers(first:1){nodes{id}} b:customers(first:2){totalCount}}", json!({})),
        // Variables: missing, defaulted, null, of the wrong type.
        ("query($v:Int){customers{nodes{contacts(first:$v){totalCount}}}}", json!({})),
        ("query($v:Int){customers{nodes{contacts(first:$v){totalCount nodes{id}}}}}", json!({"v": 2})),
        ("query($v:Int=1){customers{nodes{contacts(first:$v){nodes{id}}}}}", json!({})),
        ("query($v:Int=1){customers{nodes{contacts(first:$v){nodes{id}}}}}", json!({"v": null})),
        ("query($v:Int){customers{nodes{contacts(first:$v){nodes{id}}}}}", json!({"v": "2"})),
        ("query($v:Int){customers{nodes{contacts(first:$v){nodes{id}}}}}", json!({"v": 3_000_000_000_i64})),
    ] {
        q.push((query.to_string(), vars));
    }
    // More keys than one `json_build_object` takes (50 pairs).
    let many = |f: &dyn Fn(usize) -> String| (0..51).map(f).collect::<Vec<_>>().join(" ");
    q.push((format!("{{customers{{{}}}}}", many(&|i| format!("t{i}:totalCount"))), json!({})));
    q.push((format!("{{customers(first:1){{edges{{{}}}}}}}", many(&|i| format!("a{i}:__typename"))), json!({})));
    q.push((format!("{{customers{{nodes{{id contacts{{{}}}}}}}}}", many(&|i| format!("n{i}:nodes{{id}}"))), json!({})));
    q.push((
        format!("query($id:ID!){{customer(id:$id){{{}}}}}", many(&|i| format!("f{i}:name"))),
        json!({"id": ids[0]}),
    ));
    q
}

/// An answer with its errors in one order: fields resolve concurrently, so two errors of
/// one request arrive in either order on either path.
fn settled(mut answer: Value) -> Value {
    if let Some(errors) = answer.get_mut("errors").and_then(Value::as_array_mut) {
        errors.sort_by_key(|e| e.to_string());
    }
    answer
}

#[tokio::test]
async fn compiled_answers_equal_the_ordinary_path_for_every_role() {
    let app = TestApp::spawn().await;
    let (callers, ids) = book(&app).await;
    let ordinary = app.another_instance(|c| c.compiled_reads = false).await;
    assert!(ordinary.state.compiled.is_none());
    let postgres = app.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    assert_eq!(app.state.compiled.is_some(), postgres, "compiled on PostgreSQL only");
    let first = ordinary.ok(&app.admin_token, "{customers(first:2){edges{cursor}}}", json!({})).await;
    let cursor = first["customers"]["edges"][1]["cursor"].as_str().unwrap().to_string();
    for (who, token) in &callers {
        for (query, vars) in questions(&ids, &cursor) {
            let theirs = settled(ordinary.gql(Some(token), &query, vars.clone()).await);
            let ours = settled(app.gql(Some(token), &query, vars.clone()).await);
            assert_eq!(ours, theirs, "{who}: {query} {vars}");
            // Again: from the statement kept for this caller (and, without variables, a
            // document already validated).
            let again = settled(app.gql(Some(token), &query, vars.clone()).await);
            assert_eq!(again, theirs, "{who}, again: {query} {vars}");
        }
    }
    // It is the compiled path that answered: one statement for a page with two nested lists.
    let nested = "{customers{edges{node{name contacts(first:10){edges{node{name mobile}}} deals{nodes{id}}}}}}";
    let (a, compiled) = app.counted(&app.admin_token, nested, json!({})).await;
    let (b, resolved) = ordinary.counted(&app.admin_token, nested, json!({})).await;
    assert_eq!(a, b);
    if postgres {
        assert_eq!(compiled, 1, "one statement");
        assert!(resolved >= 3, "the ordinary path reads the page and each nested list: {resolved}");
    }
    // Selections the compiled path leaves to the ordinary one still answer alike.
    for query in [
        "{customers{edges{cursor node{id}} pageInfo{hasNextPage}}}",
        "{customers{nodes{...F}}} fragment F on Customer{id name}",
        "{customers{nodes{id name @include(if:false) address revenue{amount}}}}",
        "{customers{nodes{id contacts(after:\"x\"){totalCount}}}}",
    ] {
        let theirs = ordinary.gql(Some(&app.admin_token), query, json!({})).await;
        let ours = app.gql(Some(&app.admin_token), query, json!({})).await;
        assert_eq!(ours, theirs, "{query}");
    }
    // A lookup whose document ran once, with ID variables only, is answered without the
    // GraphQL executor (`schema::compiled::direct`): the same JSON. Operations that take
    // the executor beside them answer alike too.
    let id = &ids[0];
    let direct = [
        ("query($id:ID!){c:customer(id:$id){id name contacts(first:1){totalCount nodes{name}}}}".to_string(), true),
        (format!("{{customer(id:\"{id}\"){{__typename id deals{{totalCount}}}}}}"), true),
        ("query Named($id:ID!){customer(id:$id){id}}".to_string(), true),
        ("query($id:ID!,$n:Int){customer(id:$id){contacts(first:$n){totalCount}}}".to_string(), false),
        ("query($id:ID!){customer(id:$id) @include(if:true){id}}".to_string(), false),
        ("query($id:ID!){customer(id:$id){id} me{id}}".to_string(), false),
        ("query($id:ID!){customer(id:$id){id ...on Customer{name}}}".to_string(), false),
    ];
    let before = direct_answers(&app).await;
    for (query, _) in &direct {
        let vars = json!({ "id": id, "n": 1 });
        let theirs = ordinary.gql(Some(&callers[1].1), query, vars.clone()).await;
        for _ in 0..2 {
            let ours = app.gql(Some(&callers[1].1), query, vars.clone()).await;
            assert_eq!(ours, theirs, "{query}");
        }
        assert!(theirs["data"].as_object().is_some_and(|d| d.values().all(|v| v.is_object())), "{theirs}");
    }
    // An anonymous operation asked under a name is refused, validated or not.
    let named = json!({"query": direct[0].0, "variables": {"id": id}, "operationName": "Lookup"});
    for server in [&app, &ordinary] {
        let post = server.client.post(server.url("/graphql")).bearer_auth(&callers[1].1).json(&named);
        let answer: Value = post.send().await.unwrap().json().await.unwrap();
        assert!(answer.get("data").is_none_or(Value::is_null), "{answer}");
        assert!(answer["errors"][0]["message"].as_str().unwrap().contains("Lookup"), "{answer}");
    }
    if postgres {
        let whole = direct.iter().filter(|(_, whole)| *whole).count() as u64;
        assert!(direct_answers(&app).await >= before + whole, "each lookup, asked again, answered whole");
    }
    // A kept statement is the caller's rights': when they change, the next request is
    // built anew. The rep read East's customers; now only their own and East's pool.
    let (who, rep) = &callers[2];
    assert_eq!(*who, "rep");
    let page = "{customers{totalCount nodes{id name phone contacts{nodes{mobile}}}}}";
    let before = app.ok(rep, page, json!({})).await;
    assert_eq!(before["customers"]["totalCount"], 4, "East and its branch: {before}");
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    let i = json!({"role": "SALES", "resource": "CUSTOMER", "action": "READ", "scope": "OWN", "includePool": true});
    app.ok(&app.admin_token, set, json!({ "i": i })).await;
    let after = app.ok(rep, page, json!({})).await;
    assert_eq!(after["customers"]["totalCount"], 2, "their own and the pool: {after}");
    if postgres {
        // The other instance learns of the change by a notification (PostgreSQL's; an
        // embedded SQLite instance is one server and tells only itself).
        let mut theirs = ordinary.ok(rep, page, json!({})).await;
        for _ in 0..50 {
            if theirs == after {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            theirs = ordinary.ok(rep, page, json!({})).await;
        }
        assert_eq!(after, theirs);
    }
}

/// `crm_direct_answers_total` of the process (one recorder for every server of the tests).
async fn direct_answers(app: &TestApp) -> u64 {
    let scrape = app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let text = scrape.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("crm_direct_answers_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}
