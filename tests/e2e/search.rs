//! The search box (`docs/search.md`): every way a Chinese sales team types a customer, on
//! both stores; scope; keys that follow every write; the typed `contains` filters folded
//! the same way, never a match-all.
use crate::helpers::*;
use serde_json::{Value, json};

const SEARCH: &str = "query($q:String!,$k:[SearchKind!],$f:Int,$a:String){search(query:$q,kinds:$k,first:$f,after:$a){\
    totalCount pageInfo{hasNextPage endCursor} nodes{score kind customer{id name} contact{id name} matched{field how}}}}";

/// The hits of `q` for `token`, and the total.
async fn search(app: &TestApp, token: &str, q: &str) -> (i64, Vec<Value>) {
    let data = app.ok(token, SEARCH, json!({"q": q})).await;
    let s = &data["search"];
    (s["totalCount"].as_i64().unwrap(), s["nodes"].as_array().unwrap().clone())
}

/// The names found, best first.
async fn names(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    search(app, token, q)
        .await
        .1
        .iter()
        .map(|h| h["contact"]["name"].as_str().or(h["customer"]["name"].as_str()).unwrap().to_string())
        .collect()
}

/// The first hit's customer name and how its best field matched.
async fn first(app: &TestApp, token: &str, q: &str) -> (String, String, String) {
    let (_, hits) = search(app, token, q).await;
    let h = hits.first().unwrap_or_else(|| panic!("nothing found for {q}"));
    (
        h["customer"]["name"].as_str().unwrap().to_string(),
        h["matched"][0]["field"].as_str().unwrap().to_string(),
        h["matched"][0]["how"].as_str().unwrap().to_string(),
    )
}

async fn person(app: &TestApp, token: &str, name: &str, phone: Option<&str>) -> Value {
    app.create_customer(token, json!({"name": name, "kind": "INDIVIDUAL", "phone": phone, "region": "上海"})).await
}

#[tokio::test]
async fn names_are_found_as_they_are_typed() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    let hualian = app
        .create_customer(
            &t,
            json!({"name": "上海华联商贸有限公司", "kind": "ORGANIZATION", "phone": "021-6555 1234",
                   "email": "info@hualian.example"}),
        )
        .await;
    person(&app, &t, "张伟", Some("138 0013 8000")).await;
    person(&app, &t, "張偉", None).await;
    person(&app, &t, "张维", None).await;
    for name in ["曾伟", "单明", "解放", "仇英", "区华", "查理", "朴树", "盖丽", "尉迟恭"] {
        person(&app, &t, name, None).await;
    }
    app.create_customer(&t, json!({"name": "Alice Wang", "kind": "INDIVIDUAL", "email": "Alice.Wang@example.com"}))
        .await;

    // Characters anywhere, simplified and traditional alike.
    assert_eq!(names(&app, &t, "华联").await, ["上海华联商贸有限公司"]);
    assert_eq!(names(&app, &t, "華聯").await, ["上海华联商贸有限公司"]);
    let mut both = names(&app, &t, "张伟").await;
    both.sort();
    assert_eq!(both, ["张伟", "張偉"]);
    assert_eq!(first(&app, &t, "張偉").await.2, "EXACT");
    assert_eq!(
        first(&app, &t, "联商").await,
        ("上海华联商贸有限公司".into(), "ORGANIZATION".into(), "SUBSTRING".into())
    );

    // Pinyin with or without spaces, tones and case; initials; mixtures.
    for q in ["zhangwei", "Zhang Wei", "zhāng wěi", "ＺＨＡＮＧＷＥＩ"] {
        let mut found = names(&app, &t, q).await;
        found.sort();
        assert_eq!(found, ["张伟", "张维", "張偉"], "{q}");
        assert_eq!(first(&app, &t, q).await.2, "PINYIN", "{q}");
    }
    let zw = names(&app, &t, "zw").await;
    for name in ["张伟", "张维", "張偉", "曾伟"] {
        assert!(zw.contains(&name.to_string()), "zw: {zw:?}");
    }
    let (_, hits) = search(&app, &t, "zw").await;
    assert!(hits.iter().all(|h| h["matched"][0]["how"] == "INITIALS"), "{hits:?}");
    let mut mixed = names(&app, &t, "zhang伟").await;
    mixed.sort();
    assert_eq!(mixed, ["张伟", "張偉"], "张维 sounds the same but is not 伟");
    let zhang_w = names(&app, &t, "张w").await;
    assert!(zhang_w.contains(&"张维".to_string()) && zhang_w.contains(&"张伟".to_string()), "{zhang_w:?}");

    // Surnames read as surnames, and not by their common reading.
    for (q, name) in [
        ("zengwei", "曾伟"),
        ("shanming", "单明"),
        ("xiefang", "解放"),
        ("qiuying", "仇英"),
        ("ouhua", "区华"),
        ("zhali", "查理"),
        ("piaoshu", "朴树"),
        ("geli", "盖丽"),
        ("yuchigong", "尉迟恭"),
    ] {
        assert_eq!(names(&app, &t, q).await, [name], "{q}");
    }
    assert!(names(&app, &t, "cengwei").await.is_empty());
    assert!(names(&app, &t, "danming").await.is_empty());

    // Phones by any four digits in any written form; whole numbers as a switchboard hands
    // them over come first, exactly.
    for q in ["021-6555", "0216555", "+86 21 6555", "６５５５", "6555 12"] {
        assert_eq!(first(&app, &t, q).await.0, "上海华联商贸有限公司", "{q}");
    }
    assert_eq!(first(&app, &t, "021-6555").await.2, "PREFIX");
    assert_eq!(first(&app, &t, "5551").await.2, "SUBSTRING");
    for q in ["02165551234", "+862165551234", "0086 21 6555 1234"] {
        assert_eq!(first(&app, &t, q).await, ("上海华联商贸有限公司".into(), "PHONE".into(), "EXACT".into()), "{q}");
    }
    assert_eq!(first(&app, &t, "8613800138000").await, ("张伟".into(), "PHONE".into(), "EXACT".into()));
    assert_eq!(first(&app, &t, "１３８００１３８０００").await.0, "张伟");
    assert_eq!(first(&app, &t, "００１３８０００").await.0, "张伟");

    // E-mail by its start; organizations with or without region and company form.
    assert_eq!(first(&app, &t, "alice.wang@").await, ("Alice Wang".into(), "EMAIL".into(), "PREFIX".into()));
    let (_, hits) = search(&app, &t, "alice.w").await;
    assert!(hits[0]["matched"].as_array().unwrap().contains(&json!({"field": "EMAIL", "how": "PREFIX"})), "{hits:?}");
    assert_eq!(first(&app, &t, "ALICE.WANG@example.com").await.2, "EXACT");
    for q in ["华联商贸", "上海华联商贸有限公司", "华联商贸有限公司"] {
        assert_eq!(
            first(&app, &t, q).await,
            ("上海华联商贸有限公司".into(), "ORGANIZATION".into(), "EXACT".into()),
            "{q}"
        );
    }
    // A region typed is meant.
    assert_eq!(search(&app, &t, "北京华联商贸有限公司").await.0, 0);

    // One typo in five or more letters, below every exact reading.
    for q in ["zhangwie", "zhagnwei", "zhanwei", "zhanggwei", "alicewnag"] {
        let (_, hits) = search(&app, &t, q).await;
        assert!(!hits.is_empty(), "{q}");
        assert!(hits.iter().all(|h| h["matched"][0]["how"] == "FUZZY"), "{q}: {hits:?}");
    }
    assert!(names(&app, &t, "zhangw").await.len() >= 3);
    let (_, ranked) = search(&app, &t, "wei").await;
    let hows: Vec<&str> = ranked.iter().map(|h| h["matched"][0]["how"].as_str().unwrap()).collect();
    let mut sorted = hows.clone();
    let rank = |h: &&str| ["EXACT", "PREFIX", "SUBSTRING", "PINYIN", "INITIALS", "FUZZY"].iter().position(|x| x == h);
    sorted.sort_by_key(rank);
    assert_eq!(hows, sorted, "hits are ranked by how they matched");

    // Short input finds nothing rather than the book; nothing to look for is a mistake.
    assert_eq!(search(&app, &t, "z").await.0, 0);
    assert_eq!(search(&app, &t, "7").await.0, 0);
    for bad in ["", "   ", "---", "。", "张\u{0}伟", "a\u{0}@b"] {
        let resp = app.gql(Some(&t), SEARCH, json!({"q": bad})).await;
        assert_eq!(code(&resp), "VALIDATION", "{bad:?}: {resp}");
    }

    // Contacts: found with their customer.
    app.ok(
        &t,
        "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
        json!({"i": {"customerId": hualian["id"], "name": "李采购", "mobile": "139 0000 2222"}}),
    )
    .await;
    let (_, hits) = search(&app, &t, "13900002222").await;
    assert_eq!(hits[0]["kind"], "CONTACT");
    assert_eq!(hits[0]["contact"]["name"], "李采购");
    assert_eq!(hits[0]["customer"]["id"], hualian["id"]);
    assert_eq!(hits[0]["matched"][0], json!({"field": "CONTACT_MOBILE", "how": "EXACT"}));
    assert_eq!(first(&app, &t, "licaigou").await.0, "上海华联商贸有限公司");
    let only = app.ok(&t, SEARCH, json!({"q": "李采购", "k": ["CUSTOMER"]})).await;
    assert_eq!(only["search"]["totalCount"], 0);

    // Paging: Relay cursors over the ranked hits.
    let page = app.ok(&t, SEARCH, json!({"q": "wei", "f": 2})).await;
    let total = page["search"]["totalCount"].as_i64().unwrap();
    assert!(total > 2);
    assert_eq!(page["search"]["pageInfo"]["hasNextPage"], true);
    let next = app.ok(&t, SEARCH, json!({"q": "wei", "f": 100, "a": page["search"]["pageInfo"]["endCursor"]})).await;
    assert_eq!(next["search"]["nodes"].as_array().unwrap().len() as i64, total - 2);

    // The duplicate check folds names the same way.
    let dup = app
        .ok(
            &t,
            "query($i:DuplicateCheckInput!){duplicateCandidates(input:$i){reasons customer{name}}}",
            json!({"i": {"kind": "INDIVIDUAL", "name": "張偉", "region": "上海"}}),
        )
        .await;
    let found: Vec<&str> =
        dup["duplicateCandidates"].as_array().unwrap().iter().filter_map(|c| c["customer"]["name"].as_str()).collect();
    assert!(found.contains(&"张伟") && found.contains(&"張偉"), "{dup}");
}

#[tokio::test]
async fn a_hit_the_caller_may_not_read_does_not_exist() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, mate) = app.create_user("mate@example.com", "SALES", &east).await;
    let (_, far) = app.create_user("far@example.com", "SALES", &west).await;
    let mine = person(&app, &rep, "王小明", Some("13700001111")).await;
    let theirs = person(&app, &far, "王小红", Some("13700002222")).await;

    // Another's customer: not returned, not counted, by name, pinyin or phone.
    for q in ["王小红", "wangxiaohong", "13700002222", "0000 2222", "wxh"] {
        assert_eq!(search(&app, &rep, q).await, (0, vec![]), "{q}");
    }
    assert_eq!(names(&app, &rep, "王小").await, ["王小明"]);
    assert_eq!(search(&app, &rep, "wangxiao").await.0, 1);
    assert_eq!(names(&app, &far, "王小").await, ["王小红"]);

    // In the department's pool, a colleague reads it, but not its phone (contact details
    // are the owner's): found by name, not by number.
    app.ok(&app.admin_token, "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}", json!({"id": mine["id"]}))
        .await;
    assert_eq!(names(&app, &mate, "王小明").await, ["王小明"]);
    assert_eq!(search(&app, &mate, "13700001111").await.0, 0);
    assert_eq!(search(&app, &far, "王小明").await.0, 0);
    // The admin sees everything.
    assert_eq!(search(&app, &app.admin_token, "13700002222").await.1[0]["customer"]["id"], theirs["id"]);

    // Within a band: the caller's own first, then the most recently contacted.
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let a = person(&app, &rep, "刘洋", None).await;
    let b = person(&app, &mate, "劉洋", None).await;
    let order = |q: &'static str, token: String| {
        let app = &app;
        async move { search(app, &token, q).await.1.iter().map(|h| h["customer"]["id"].clone()).collect::<Vec<Value>>() }
    };
    let contact = |token: String, id: Value, days: i64| {
        let app = &app;
        async move {
            let at = (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
            app.ok(
                &token,
                "mutation($c:ID!,$at:DateTime){createInteraction(input:{customerId:$c,kind:CALL,summary:\"电话\",occurredAt:$at}){id}}",
                json!({"c": id, "at": at}),
            )
            .await;
        }
    };
    assert_eq!(order("刘洋", mate.clone()).await, [b["id"].clone()], "a rep reads only their own");
    contact(rep.clone(), a["id"].clone(), 3).await;
    contact(mate.clone(), b["id"].clone(), 1).await;
    assert_eq!(order("刘洋", boss.clone()).await, [b["id"].clone(), a["id"].clone()], "b was contacted last");
    contact(rep.clone(), a["id"].clone(), 0).await;
    assert_eq!(order("liuyang", boss.clone()).await, [a["id"].clone(), b["id"].clone()], "now a was");
    let own = person(&app, &boss, "刘阳", None).await;
    assert_eq!(order("liuyang", boss.clone()).await[0], own["id"], "the caller's own first");

    // A role that reads neither customers nor contacts may not search; a cursor of
    // another list is refused.
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    let resp = app.gql(Some(&analyst), SEARCH, json!({"q": "王小明"})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let list = app.ok(&rep, "{customers(first:1){pageInfo{endCursor}}}", json!({})).await;
    let foreign = &list["customers"]["pageInfo"]["endCursor"];
    for after in [foreign.clone(), json!("not-a-cursor")] {
        let resp = app.gql(Some(&rep), SEARCH, json!({"q": "王小明", "a": after})).await;
        assert_eq!(code(&resp), "VALIDATION", "{resp}");
        assert_eq!(invalid_fields(&resp), ["after"]);
    }

    // Searching spends the matching budget duplicate checks spend: one limit for both.
    let tight = TestApp::spawn_with(|c| c.match_budget_per_hour = 3).await;
    let dept = tight.create_department("华东", None).await;
    let (_, r) = tight.create_user("r@example.com", "SALES", &dept).await;
    let check = "query{duplicateCandidates(input:{kind:INDIVIDUAL, phone:\"13700001111\"}){score}}";
    tight.ok(&r, check, json!({})).await;
    tight.ok(&r, SEARCH, json!({"q": "王小明"})).await;
    tight.ok(&r, check, json!({})).await;
    let refused = tight.gql(Some(&r), SEARCH, json!({"q": "王小明"})).await;
    assert_eq!(code(&refused), "RATE_LIMITED", "{refused}");
}

#[tokio::test]
async fn keys_follow_every_write() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    let c = person(&app, &t, "赵敏", Some("13600001111")).await;
    assert_eq!(names(&app, &t, "zhaomin").await, ["赵敏"]);

    // Renamed: the old name is gone, the new one found.
    let upd = "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id version}}";
    let v = app
        .ok(&t, upd, json!({"i": {"id": c["id"], "version": c["version"], "name": "周丽", "phone": "13600002222"}}))
        .await;
    assert!(names(&app, &t, "zhaomin").await.is_empty());
    assert_eq!(names(&app, &t, "zhouli").await, ["周丽"]);
    assert!(names(&app, &t, "13600001111").await.is_empty());
    assert_eq!(names(&app, &t, "13600002222").await, ["周丽"]);

    // Trashed, restored.
    let version = v["updateCustomer"]["version"].clone();
    app.ok(
        &t,
        "mutation($id:ID!,$v:Int){deleteCustomer(id:$id, version:$v){id}}",
        json!({"id": c["id"], "v": version}),
    )
    .await;
    assert!(names(&app, &t, "周丽").await.is_empty());
    app.ok(&t, "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": c["id"]})).await;
    assert_eq!(names(&app, &t, "周丽").await, ["周丽"]);

    // A contact added, and its customer merged away: the contact is found under the survivor.
    let org = |name: &'static str| {
        let app = &app;
        let t = t.clone();
        async move { app.create_customer(&t, json!({"name": name, "kind": "ORGANIZATION"})).await }
    };
    let survivor = org("星光贸易有限公司").await;
    let merged = org("星光商贸有限公司").await;
    app.ok(
        &t,
        "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
        json!({"i": {"customerId": merged["id"], "name": "钱多多", "mobile": "13500003333"}}),
    )
    .await;
    assert_eq!(first(&app, &t, "qianduoduo").await.0, "星光商贸有限公司");
    app.ok(
        &t,
        "mutation($s:ID!,$m:[ID!]!){mergeCustomers(survivorId:$s, mergedIds:$m){mergedIds}}",
        json!({"s": survivor["id"], "m": [merged["id"]]}),
    )
    .await;
    assert_eq!(first(&app, &t, "qianduoduo").await.0, "星光贸易有限公司");
    assert_eq!(names(&app, &t, "星光").await, ["星光贸易有限公司"]);

    // Erased: nothing of the person is found.
    app.ok(&t, "mutation($id:ID!){erasePersonalData(customerId:$id, reason:\"本人要求\"){id}}", json!({"id": c["id"]}))
        .await;
    for q in ["周丽", "13600002222", "zhouli"] {
        assert_eq!(search(&app, &t, q).await.0, 0, "{q}");
    }

    // Imported: found as soon as the import is done.
    let csv = "name,kind,phone\n猪八戒,INDIVIDUAL,13900009999\n";
    let (status, body) = crate::imports::import(&app, Some(&t), "", csv.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let found = names(&app, &t, "zhubajie").await;
    assert_eq!(found, ["猪八戒"]);

    // Rebuilt from scratch: the same answers.
    let before = search(&app, &t, "zhu").await;
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, "DELETE FROM search_term; DELETE FROM search_doc")
        .await
        .unwrap();
    assert_eq!(search(&app, &t, "zhu").await.0, 0);
    let done = service::search::index::reindex(&app.db).await.unwrap();
    assert!(done.terms > 0);
    assert_eq!(search(&app, &t, "zhu").await, before);
}

#[tokio::test]
async fn contains_filters_fold_and_never_match_everything() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    app.create_customer(&t, json!({"name": "上海华联商贸有限公司", "kind": "ORGANIZATION", "phone": "021-6555 1234"}))
        .await;
    person(&app, &t, "张伟", Some("13800138000")).await;
    let list = "query($f:CustomerFilter){customers(filter:$f){totalCount nodes{name}}}";
    let count = |f: Value| {
        let app = &app;
        let t = t.clone();
        async move { app.gql(Some(&t), list, json!({"f": f})).await }
    };
    for needle in ["张", "-", "  ", "", "abc"] {
        let resp = count(json!({"phone": {"contains": needle}})).await;
        assert_eq!(code(&resp), "VALIDATION", "{needle:?}: {resp}");
        assert_eq!(invalid_fields(&resp), ["filter.phone.contains"]);
    }
    for needle in ["", "   "] {
        let resp = count(json!({"name": {"contains": needle}})).await;
        assert_eq!(code(&resp), "VALIDATION", "{needle:?}: {resp}");
    }
    for (needle, name) in [
        ("００１３８０００", "张伟"),
        ("021-6555", "上海华联商贸有限公司"),
        ("0216555", "上海华联商贸有限公司"),
        ("+86 21 6555", "上海华联商贸有限公司"),
        ("6555 1234", "上海华联商贸有限公司"),
    ] {
        let resp = count(json!({"phone": {"contains": needle}})).await;
        assert_eq!(resp["data"]["customers"]["totalCount"], 1, "{needle}: {resp}");
        assert_eq!(resp["data"]["customers"]["nodes"][0]["name"], name);
    }
    let resp = count(json!({"name": {"contains": "华联"}})).await;
    assert_eq!(resp["data"]["customers"]["totalCount"], 1);
    // Stored text keeps its width: full-width brackets are found as typed, and folded.
    app.create_customer(&t, json!({"name": "华为技术（深圳）有限公司", "kind": "ORGANIZATION"})).await;
    for needle in ["（深圳）", "技术（"] {
        let resp = count(json!({"name": {"contains": needle}})).await;
        assert_eq!(resp["data"]["customers"]["totalCount"], 1, "{needle}: {resp}");
    }
    let resp = count(json!({"name": {"contains": "a\u{0}"}})).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
}

/// A broad query read page by page (each page's statement stops before the last match)
/// gives the hits, scores, matched fields and total of the same query read whole.
#[tokio::test]
async fn a_broad_query_pages_as_it_reads_whole() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    let surnames = ["张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙"];
    for (i, s) in surnames.iter().enumerate() {
        let phone = format!("139 1000 {i:04}");
        if i % 3 == 0 {
            let c = app
                .create_customer(
                    &t,
                    json!({"name": format!("{s}伟商贸有限公司"), "kind": "ORGANIZATION", "phone": phone}),
                )
                .await;
            app.ok(
                &t,
                "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
                json!({"i": {"customerId": c["id"], "name": format!("{s}伟明")}}),
            )
            .await;
        } else {
            person(&app, &t, &format!("{s}伟"), Some(&phone)).await;
        }
        person(&app, &t, &format!("{s}维"), None).await;
    }
    let whole = app.ok(&t, SEARCH, json!({"q": "wei", "f": 100})).await;
    let all = whole["search"]["nodes"].as_array().unwrap().clone();
    let total = whole["search"]["totalCount"].as_i64().unwrap();
    assert_eq!(total as usize, all.len());
    // 8 people named …伟, 12 named …维, 4 contacts …伟明 (a company is read from its start).
    assert_eq!(total, 8 + 12 + 4, "{whole}");
    let mut paged: Vec<Value> = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = app.ok(&t, SEARCH, json!({"q": "wei", "f": 3, "a": after})).await;
        assert_eq!(page["search"]["totalCount"], total, "{page}");
        paged.extend(page["search"]["nodes"].as_array().unwrap().iter().cloned());
        if page["search"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["search"]["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(paged, all);
    // Without a total asked for, the same page.
    let bare = "query($q:String!){search(query:$q,first:3){nodes{score kind customer{id name} contact{id name} matched{field how}}}}";
    let page = app.ok(&t, bare, json!({"q": "wei"})).await;
    assert_eq!(page["search"]["nodes"].as_array().unwrap()[..], all[..3]);
}
