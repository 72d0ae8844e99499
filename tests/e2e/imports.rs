//! Imports of a customer book from CSV: per-line outcomes, upsert on natural keys that
//! never overwrites someone else's record, dry runs, re-runs, encodings, header mapping.
use crate::helpers::*;
use serde_json::{Value, json};

/// POSTs a CSV file to `/imports/customers?<query>`; returns the status and the JSON.
async fn import(app: &TestApp, token: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    import_to(app, "customers", token, query, body).await
}

/// POSTs a CSV file to `/imports/<kind>?<query>`.
async fn import_to(app: &TestApp, kind: &str, token: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = app.client.post(app.url(&format!("/imports/{kind}?{query}"))).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.header("content-type", "text/csv").send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn counts(run: &Value) -> [i64; 6] {
    ["created", "updated", "unchanged", "duplicate", "invalid", "failed"].map(|k| run[k].as_i64().unwrap())
}

const RUN: &str = "query($id:ID!,$o:[ImportOutcome!]){importRun(id:$id){status dryRun linesRead created updated \
                   unchanged duplicate invalid failed encoding startedBy{email} \
                   lines(outcomes:$o,first:100){nodes{line outcome recordId customerId message problems{field message}}}}}";

async fn customer_count(app: &TestApp) -> i64 {
    app.ok(&app.admin_token, "{customers{totalCount}}", json!({})).await["customers"]["totalCount"].as_i64().unwrap()
}

#[tokio::test]
async fn an_import_creates_updates_and_reports_every_line() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("west@example.com", "SALES", &west).await;
    let theirs = app
        .create_customer(
            &other,
            json!({"name": "赵敏", "kind": "INDIVIDUAL", "phone": "13900009999", "region": "成都"}),
        )
        .await;
    let mine = app.create_customer(&rep, json!({"name": "王芳", "kind": "INDIVIDUAL", "phone": "13800000001"})).await;
    let before = customer_count(&app).await;

    // A spreadsheet's export: a byte order mark, Chinese headers, a quoted address with a
    // comma and a line break, dates as 1990/5/6, labels for enums.
    let file = "\u{feff}姓名,类型,手机,邮箱,地区,性别,生日,地址\r\n\
                李雷,个人,13800000002,lilei@example.com,上海,男,1990/5/6,\"上海市徐汇区, 漕溪北路\n88号\"\r\n\
                王芳,个人,138 0000 0001,,北京,,,\r\n\
                赵六,个人,+86 139-0000-9999,,,,,\r\n\
                韩梅梅,个人,12345,not-an-email,,未知,1990-02-30,\r\n\
                李雷,个人,13800000002,lilei@example.com,上海,男,1990/5/6,\"上海市徐汇区, 漕溪北路\n88号\"\r\n\
                上海恒达贸易有限公司,企业,,info@hengda.example,上海,,,\r\n";

    // The dry run says what would happen and writes nothing.
    let (status, dry) = import(&app, Some(&rep), "dryRun=true&fileName=book.csv", file.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{dry}");
    let run = &dry["importRun"];
    assert_eq!((run["status"].as_str(), run["dryRun"].as_bool()), (Some("DONE"), Some(true)), "{dry}");
    assert_eq!(run["linesRead"], 6);
    // Line 7 repeats line 2: it finds the record line 2 (would have) created.
    assert_eq!(counts(run), [2, 1, 1, 1, 1, 0], "{dry}");
    assert_eq!(customer_count(&app).await, before, "a dry run writes no customer");
    let dry_lines = app.ok(&rep, RUN, json!({"id": run["id"], "o": ["CREATED"]})).await;
    for line in dry_lines["importRun"]["lines"]["nodes"].as_array().unwrap() {
        assert!(line["recordId"].is_null(), "a rolled-back record has no id: {line}");
    }

    let (status, real) = import(&app, Some(&rep), "fileName=book.csv", file.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{real}");
    let run = &real["importRun"];
    assert_eq!((run["status"].as_str(), run["dryRun"].as_bool()), (Some("DONE"), Some(false)));
    assert_eq!(counts(run), [2, 1, 1, 1, 1, 0], "{real}");
    assert_eq!(run["encoding"], "UTF-8");
    assert_eq!(customer_count(&app).await, before + 2);

    // The problems come back at once, in file order, with their line numbers (the quoted
    // line break makes line 3 of the file start at physical line 4).
    let problems = real["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{real}");
    assert_eq!((problems[0]["line"].as_i64(), problems[0]["outcome"].as_str()), (Some(5), Some("DUPLICATE")));
    let message = problems[0]["message"].as_str().unwrap();
    assert!(message.contains("西部"), "the owning department is named: {message}");
    assert!(!message.contains("赵敏") && !message.contains(theirs["id"].as_str().unwrap()), "{message}");
    assert_eq!(problems[1]["outcome"], "INVALID");
    let fields: Vec<&str> =
        problems[1]["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    for f in ["gender", "birthday", "phone", "email"] {
        assert!(fields.contains(&f), "{f} listed: {fields:?}");
    }
    // One name for one thing: the message of an INVALID line sums up its problems too.
    let summary = problems[1]["message"].as_str().unwrap_or_else(|| panic!("INVALID has a message: {real}"));
    assert!(summary.contains("bad cells") && summary.contains("birthday"), "{summary}");

    // Someone else's record is reported, never overwritten; mine is updated.
    let q = "query($id:ID!){customer(id:$id){name region phone version}}";
    let theirs_now = app.ok(&other, q, json!({"id": theirs["id"]})).await;
    assert_eq!(theirs_now["customer"]["name"], "赵敏");
    assert_eq!(theirs_now["customer"]["version"], 1);
    let mine_now = app.ok(&rep, q, json!({"id": mine["id"]})).await;
    assert_eq!(mine_now["customer"]["region"], "北京");
    assert_eq!(mine_now["customer"]["name"], "王芳");

    // The created records are the importer's, with every field, and audited as imports.
    let found = app
        .ok(
            &rep,
            "{customers(filter:{name:{eq:\"李雷\"}}){nodes{id kind gender birthday address email region ownerId}}}",
            json!({}),
        )
        .await;
    let lilei = &found["customers"]["nodes"][0];
    assert_eq!(lilei["gender"], "MALE");
    assert_eq!(lilei["birthday"], "1990-05-06");
    assert_eq!(lilei["address"], "上海市徐汇区, 漕溪北路\n88号");
    let history = app
        .ok(
            &app.admin_token,
            "query($id:ID!){auditLog(filter:{recordId:$id}){nodes{action}}}",
            json!({"id": lilei["id"]}),
        )
        .await;
    assert_eq!(history["auditLog"]["nodes"][0]["action"], "import", "{history}");

    // The run is pollable, every line kept with its outcome.
    let id = run["id"].as_str().unwrap();
    let polled = app.ok(&rep, RUN, json!({"id": id})).await;
    let lines = polled["importRun"]["lines"]["nodes"].as_array().unwrap();
    let outcomes: Vec<&str> = lines.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["CREATED", "UPDATED", "DUPLICATE", "INVALID", "UNCHANGED", "CREATED"]);
    assert_eq!(lines[0]["recordId"], lilei["id"]);
    // GraphQL says recordId as the HTTP answer does; the old customerId is the same value.
    assert_eq!(lines[0]["customerId"], lines[0]["recordId"]);
    assert_eq!(lines[1]["recordId"], mine["id"]);
    assert!(lines[2]["recordId"].is_null(), "no id of a record one may not touch");
    assert_eq!(lines[3]["message"], problems[1]["message"], "the same message over HTTP and GraphQL");
    assert_eq!(polled["importRun"]["startedBy"]["email"], "east@example.com");
    let invalid = app.ok(&rep, RUN, json!({"id": id, "o": ["INVALID"]})).await;
    assert_eq!(invalid["importRun"]["lines"]["nodes"].as_array().unwrap().len(), 1);
    // Another user does not see my run; an administrator does.
    let resp = app.gql(Some(&other), RUN, json!({"id": id})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    app.ok(&app.admin_token, RUN, json!({"id": id})).await;
    let runs = app.ok(&rep, "{importRuns{nodes{id dryRun}}}", json!({})).await;
    assert_eq!(runs["importRuns"]["nodes"].as_array().unwrap().len(), 2, "the dry run is listed too");
    assert_eq!(runs["importRuns"]["nodes"][0]["id"], id, "newest first");

    // Running the same file again changes nothing and says so.
    let (_, again) = import(&app, Some(&rep), "", file.as_bytes().to_vec()).await;
    assert_eq!(counts(&again["importRun"]), [0, 0, 4, 1, 1, 0], "{again}");
    assert_eq!(customer_count(&app).await, before + 2);
}

#[tokio::test]
async fn imports_read_gb18030_map_headers_and_type_custom_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    app.ok(
        &admin,
        "mutation($i:CategoryInput!){saveCategory(input:$i,version:1){version}}",
        json!({"i": {"key": "retail", "name": "零售客户", "fields": [
            {"key": "points", "label": "积分", "type": "NUMBER", "min": "0"},
            {"key": "member", "label": "会员", "type": "BOOLEAN"},
            {"key": "tags", "label": "标签", "type": "MULTI_CHOICE", "choices": ["茶", "酒", "礼盒"]},
            {"key": "since", "label": "入会日期", "type": "DATE"}
        ]}}),
    )
    .await;

    // Excel on a Chinese Windows saves CSV in GB18030 (GBK), without a byte order mark.
    let text = "客户全称,积分,会员,标签,custom.since,备注\r\n\
                周杰,1200,是,茶、礼盒,2024/1/8,老客户\r\n\
                吴敏,-5,否,咖啡,2024-02-30,\r\n";
    let (gbk, _, _) = encoding_rs::GB18030.encode(text);
    let gbk = gbk.into_owned();

    // An unmapped header is refused before anything starts, listing it.
    let (status, resp) = import(&app, Some(&admin), "", gbk.clone()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");
    let fields = resp["errors"][0]["extensions"]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2, "{resp}");
    assert!(resp.to_string().contains("客户全称") && resp.to_string().contains("备注"), "{resp}");
    assert!(
        app.ok(&admin, "{importRuns{nodes{id}}}", json!({})).await["importRuns"]["nodes"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let (status, done) = import(&app, Some(&admin), "map=客户全称:name,备注:-", gbk.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["importRun"]["encoding"], "gb18030", "sniffed: not valid UTF-8");
    assert_eq!(counts(&done["importRun"]), [1, 0, 0, 0, 1, 0], "{done}");
    let bad = &done["problems"][0];
    assert_eq!(bad["line"], 3);
    let fields: Vec<&str> = bad["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert_eq!(fields.len(), 3, "{bad}");
    for f in ["customFields.points", "customFields.tags", "customFields.since"] {
        assert!(fields.contains(&f), "{f}: {fields:?}");
    }
    let zhou = app.ok(&admin, "{customers(filter:{name:{eq:\"周杰\"}}){nodes{customFields}}}", json!({})).await;
    assert_eq!(
        zhou["customers"]["nodes"][0]["customFields"],
        json!({"points": 1200, "member": true, "tags": ["茶", "礼盒"], "since": "2024-01-08"})
    );

    // The same file read as UTF-8 on request: every line has bytes that are not UTF-8.
    let (status, wrong) = import(&app, Some(&admin), "encoding=utf-8&map=客户全称:name,备注:-&dryRun=1", gbk).await;
    assert_eq!(status, 400, "the header itself is unreadable: {wrong}");
    assert_eq!(code(&wrong), "VALIDATION");

    // Who may import, and what is not a file.
    let (status, resp) = import(&app, None, "", b"name\r\nx\r\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (401, "UNAUTHENTICATED"));
    let dept = app.create_department("数据部", None).await;
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &dept).await;
    let (status, resp) = import(&app, Some(&analyst), "", b"name\r\nx\r\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (403, "FORBIDDEN"), "{resp}");
    let (status, resp) = import(&app, Some(&admin), "", Vec::new()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");
    let (status, resp) = import(&app, Some(&admin), "", b"phone\r\n13800000000\r\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "no name column: {resp}");
    let (status, resp) = import(&app, Some(&admin), "encoding=latin1", b"name\r\nx\r\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");
    let (status, resp) = import(&app, Some(&admin), "", b"name,name\r\nx,y\r\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "two columns for one field: {resp}");
}

#[tokio::test]
async fn a_large_file_is_imported_in_chunks_and_a_limit_stops_a_larger_one() {
    let app = TestApp::spawn_with(|c| c.import_max_bytes = 200_000).await;
    let admin = app.admin_token.clone();
    let mut file = String::from("name,phone,kind\n");
    for i in 0..1200 {
        file.push_str(&format!("客户{i},1380{i:07},INDIVIDUAL\n"));
    }
    // A line in the third chunk repeats one of the first: on a dry run (each chunk rolled
    // back) it still reads as the update it will be.
    file.push_str("客户零,13800000005,INDIVIDUAL\n");
    let (status, dry) = import(&app, Some(&admin), "dryRun=true", file.clone().into_bytes()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(counts(&dry["importRun"]), [1200, 1, 0, 0, 0, 0], "{dry}");
    // The same repeat as an organisation is refused on a dry run as on a real one.
    let (_, odd) =
        import(&app, Some(&admin), "dryRun=true", format!("{file}客户零,13800000006,ORGANIZATION\n").into_bytes())
            .await;
    assert_eq!(counts(&odd["importRun"]), [1200, 1, 0, 0, 1, 0], "{odd}");
    let id = dry["importRun"]["id"].as_str().unwrap();
    let last = app.ok(&admin, RUN, json!({"id": id, "o": ["UPDATED"]})).await;
    let line = &last["importRun"]["lines"]["nodes"][0];
    assert_eq!(line["line"], 1202);
    assert!(line["message"].as_str().unwrap().contains("line 7"), "{line}");

    let (status, done) = import(&app, Some(&admin), "", file.clone().into_bytes()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(counts(&done["importRun"]), [1200, 1, 0, 0, 0, 0], "{done}");
    assert_eq!(customer_count(&app).await, 1200);
    let page = app
        .ok(
            &admin,
            "query($id:ID!){importRun(id:$id){lines(first:100){totalCount pageInfo{hasNextPage endCursor}}}}",
            json!({"id": done["importRun"]["id"]}),
        )
        .await;
    assert_eq!(page["importRun"]["lines"]["totalCount"], 1201);
    assert_eq!(page["importRun"]["lines"]["pageInfo"]["hasNextPage"], true);

    // Past the limit: the run stops where the limit fell; what came before stays.
    let mut big = String::from("name,phone\n");
    for i in 0..10000 {
        big.push_str(&format!("大客户{i},1390{i:07}\n"));
    }
    let (status, resp) = import(&app, Some(&admin), "", big.clone().into_bytes()).await;
    assert_eq!((status, code(&resp)), (413, "PAYLOAD_TOO_LARGE"), "declared too large: {resp}");
    // Sent without a length, in pieces: the run stops where the limit falls.
    let half = big.len() / 2;
    let stopped = chunked_upload(
        &app,
        &admin,
        "encoding=utf-8",
        &[&big.as_bytes()[..half], &big.as_bytes()[half..]],
        |_| async {},
    )
    .await;
    assert_eq!(stopped["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE", "{stopped}");
    assert_eq!(stopped["importRun"]["status"], "FAILED", "{stopped}");

    // An upload that stalls: before its header, refused; after it, the run ends FAILED.
    let slow = TestApp::spawn_with(|c| c.import_idle_ms = 300).await;
    let stall = |_| async { tokio::time::sleep(std::time::Duration::from_millis(900)).await };
    let early = chunked_upload(&slow, &slow.admin_token, "", &[b"na", b"me\nx\n"], stall).await;
    assert_eq!(early["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{early}");
    let late = chunked_upload(&slow, &slow.admin_token, "encoding=utf-8", &[b"name\nA\n", b"B\n"], stall).await;
    assert_eq!(late["importRun"]["status"], "FAILED", "{late}");
    assert!(late["importRun"]["error"].as_str().unwrap().contains("stalled"), "{late}");
}

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
    let header = records.remove(0);
    records.into_iter().map(|r| header.iter().cloned().zip(r).collect()).collect()
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

/// An upload over a raw socket, in chunked transfer encoding: each piece is sent as it
/// comes, `between` runs after each piece but the last; returns the response's JSON.
async fn chunked_upload<F, Fut>(app: &TestApp, token: &str, query: &str, pieces: &[&[u8]], mut between: F) -> Value
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /imports/customers?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before the whole body is sent (a limit, a stall):
    // writing then fails, and the answer is read all the same.
    'send: {
        for (i, piece) in pieces.iter().enumerate() {
            let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            if stream.write_all(&framed).await.is_err() {
                break 'send;
            }
            if i + 1 < pieces.len() {
                between(i).await;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    let body = &text[text.find('{').expect("a JSON body")..text.rfind('}').unwrap() + 1];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What a review found: records cut where the network cut the body, a stray byte that
/// turned a UTF-8 file into GB18030 mojibake, a quote left open, old Mac line ends,
/// another department's template fields, rights revoked during an upload.
#[tokio::test]
async fn uploads_hold_whatever_the_bytes_and_the_rights_do() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();

    // A piece of the body ending right after a comma: the record goes on in the next.
    let pause = |_| async { tokio::time::sleep(std::time::Duration::from_millis(30)).await };
    let done = chunked_upload(
        &app,
        &admin,
        "encoding=utf-8",
        &["name,region,industry\n分块测试,".as_bytes(), "上海,零售\n".as_bytes()],
        pause,
    )
    .await;
    assert_eq!(counts(&done["importRun"]), [1, 0, 0, 0, 0, 0], "{done}");
    let found = app.ok(&admin, "{customers(filter:{name:{eq:\"分块测试\"}}){nodes{region industry}}}", json!({})).await;
    assert_eq!(found["customers"]["nodes"][0], json!({"region": "上海", "industry": "零售"}));

    // One Latin-1 byte in a UTF-8 file: that line is reported, the others read as UTF-8.
    let mut file = "name,phone,region\n张三,13800138000,上海\nJos".as_bytes().to_vec();
    file.push(0xe9);
    file.extend_from_slice(",,\n李四,13800138001,北京\n".as_bytes());
    let (_, resp) = import(&app, Some(&admin), "", file).await;
    assert_eq!(resp["importRun"]["encoding"], "UTF-8", "{resp}");
    assert_eq!(counts(&resp["importRun"]), [2, 0, 0, 0, 1, 0], "{resp}");
    assert_eq!(resp["problems"][0]["line"], 3);
    let found = app.ok(&admin, "{customers(filter:{name:{in:[\"张三\",\"李四\"]}}){totalCount}}", json!({})).await;
    assert_eq!(found["customers"]["totalCount"], 2, "names read as UTF-8");

    // A quote left open swallows the rest of the file: that line is reported, not saved.
    let (_, resp) = import(&app, Some(&admin), "", b"name,phone\nA1,\n\"A2,\nA3,x\nA4,y\n".to_vec()).await;
    assert_eq!(counts(&resp["importRun"]), [1, 0, 0, 0, 1, 0], "{resp}");
    assert_eq!(resp["problems"][0]["line"], 3, "{resp}");
    assert!(resp["problems"][0]["problems"][0]["message"].as_str().unwrap().contains("not closed"), "{resp}");

    // Old Mac line ends (CR only) count as lines.
    let (_, resp) = import(&app, Some(&admin), "", b"name,phone\rB1,\rB2,bad\rB3,\r".to_vec()).await;
    assert_eq!(counts(&resp["importRun"]), [2, 0, 0, 0, 1, 0], "{resp}");
    assert_eq!(resp["problems"][0]["line"], 3, "{resp}");

    // Another department's category fields are not a rep's to map (nor to learn of).
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    app.ok(
        &admin,
        "mutation($i:CategoryInput!){saveCategory(input:$i){version}}",
        json!({"i": {"key": "west_key", "name": "西部重点", "departmentId": west,
                     "fields": [{"key": "secret_tier", "label": "西部机密等级", "type": "TEXT"}]}}),
    )
    .await;
    let (status, resp) = import(&app, Some(&rep), "", "name,西部机密等级\n某人,高\n".as_bytes().to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");
    assert!(!resp.to_string().contains("secret_tier"), "{resp}");
    let (_, text) = export(&app, Some(&rep), "/exports/customers.csv").await;
    assert!(!text.contains("secret_tier"), "{text}");

    // Rights revoked while the file is uploading: the run stops at the next chunk.
    let (_, manager) = app.create_user("m@example.com", "MANAGER", &east).await;
    let mut first = String::from("name,phone\n");
    for i in 0..600 {
        first.push_str(&format!("经理客户{i},1370000{i:04}\n"));
    }
    let revoke = |_| {
        let app = &app;
        let (admin, manager) = (admin.clone(), manager.clone());
        async move {
            // The first chunk lands (polled as a client would), then the grant goes.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let runs = app.ok(&manager, "{importRuns{nodes{status linesRead}}}", json!({})).await;
                if runs["importRuns"]["nodes"][0]["linesRead"].as_i64().unwrap_or(0) >= 500 {
                    assert_eq!(runs["importRuns"]["nodes"][0]["status"], "RUNNING");
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the first chunk never landed: {runs}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            app.ok(
                &admin,
                "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}",
                json!({"i": {"role": "MANAGER", "resource": "CUSTOMER", "action": "CREATE", "scope": "NONE"}}),
            )
            .await;
        }
    };
    let stopped = chunked_upload(
        &app,
        &manager,
        "encoding=utf-8",
        &[first.as_bytes(), "迟到客户,13600000000\n".as_bytes()],
        revoke,
    )
    .await;
    let run = &stopped["importRun"];
    assert_eq!(run["status"], "FAILED", "{stopped}");
    assert!(run["error"].as_str().unwrap().contains("permissions changed"), "{stopped}");
    assert_eq!(run["created"], 500, "the chunk before the change stays: {stopped}");
}

/// An east rep's organisation (杭州丝绸) and a west rep's (西部贸易), for contact and
/// deal files; returns the east department, the east rep's token and their customer.
async fn silk_and_the_west(app: &TestApp) -> (String, String, Value) {
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("west@example.com", "SALES", &west).await;
    let silk = app
        .create_customer(&rep, json!({"name": "杭州丝绸有限公司", "kind": "ORGANIZATION", "phone": "0571-88880000"}))
        .await;
    app.create_customer(&other, json!({"name": "西部贸易有限公司", "kind": "ORGANIZATION"})).await;
    (east, rep, silk)
}

#[tokio::test]
async fn contacts_import_linked_by_their_customer() {
    let app = TestApp::spawn().await;
    let (east, rep, silk) = silk_and_the_west(&app).await;
    let create = "mutation($i:CreateContactInput!){createContact(input:$i){id version}}";
    let zhou = app
        .ok(&rep, create, json!({"i": {"customerId": silk["id"], "name": "周经理", "mobile": "13700000014"}}))
        .await["createContact"]
        .clone();
    let contacts = |token: String| {
        let app = &app;
        let id = silk["id"].clone();
        async move {
            let q = "query($id:ID!){customer(id:$id){contacts{nodes{name title mobile version dealRole}}}}";
            app.ok(&token, q, json!({"id": id})).await["customer"]["contacts"]["nodes"].as_array().unwrap().clone()
        }
    };

    let file = "客户名称,联系人,职务,手机,邮箱,角色,生日\n\
                杭州丝绸有限公司,周经理,采购总监,137 0000 0014,,决策者,\n\
                杭州丝绸有限公司,钱会计,财务,13700000015,qian@silk.example,,\n\
                西部贸易有限公司,孙经理,,13700000016,,,\n\
                不存在的公司,李四,,,,,\n\
                杭州丝绸有限公司,错号,,12345,,,1990-02-30\n";
    let (status, dry) = import_to(&app, "contacts", Some(&rep), "dryRun=true", file.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(counts(&dry["importRun"]), [1, 1, 0, 1, 2, 0], "{dry}");
    assert_eq!(contacts(rep.clone()).await.len(), 1, "a dry run writes nothing");

    let (_, done) = import_to(&app, "contacts", Some(&rep), "", file.as_bytes().to_vec()).await;
    assert_eq!(counts(&done["importRun"]), [1, 1, 0, 1, 2, 0], "{done}");
    let problems = done["problems"].as_array().unwrap();
    assert!(problems[0]["message"].as_str().unwrap().contains("西部"), "someone else's customer: {done}");
    assert_eq!(problems[1]["problems"][0]["field"], "customer");
    let fields: Vec<&str> =
        problems[2]["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"birthday") && fields.contains(&"mobile"), "{fields:?}");
    let now = contacts(rep.clone()).await;
    assert_eq!(now.len(), 2, "{now:?}");
    let updated = now.iter().find(|c| c["name"] == "周经理").unwrap();
    assert_eq!((updated["title"].as_str(), updated["dealRole"].as_str()), (Some("采购总监"), Some("DECISION_MAKER")));
    let version = updated["version"].clone();
    assert_eq!(version, zhou["version"].as_i64().unwrap() + 1);

    // Again: nothing changes, no version moves.
    let (_, again) = import_to(&app, "contacts", Some(&rep), "", file.as_bytes().to_vec()).await;
    assert_eq!(counts(&again["importRun"]), [0, 0, 2, 1, 2, 0], "{again}");
    let now = contacts(rep.clone()).await;
    assert_eq!(now.iter().find(|c| c["name"] == "周经理").unwrap()["version"], version);

    // The contact export imports back as it is.
    let (_, text) = export(&app, Some(&rep), "/exports/contacts.csv").await;
    let (_, back) = import_to(&app, "contacts", Some(&rep), "", text.into_bytes()).await;
    assert_eq!(counts(&back["importRun"]), [0, 0, 2, 0, 0, 0], "{back}");

    // A file must say whose contacts they are; unknown kinds are not routes.
    let (status, resp) =
        import_to(&app, "contacts", Some(&rep), "", "联系人,手机\n某人,13700000019\n".as_bytes().to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");
    let (status, resp) = import_to(&app, "deals-and-more", Some(&rep), "", b"name\nx\n".to_vec()).await;
    assert_eq!((status, code(&resp)), (404, "NOT_FOUND"), "{resp}");
    let runs = app.ok(&rep, "{importRuns(first:1){nodes{kind}}}", json!({})).await;
    assert_eq!(runs["importRuns"]["nodes"][0]["kind"], "CONTACTS");

    // Two contacts of one name and nothing else to tell them apart: reported, not guessed.
    for _ in 0..2 {
        app.ok(&rep, create, json!({"i": {"customerId": silk["id"], "name": "李工"}})).await;
    }
    let (_, twins) = import_to(
        &app,
        "contacts",
        Some(&rep),
        "",
        "客户名称,联系人,职务\n杭州丝绸有限公司,李工,工程师\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(counts(&twins["importRun"]), [0, 0, 0, 1, 0, 0], "{twins}");
    // A name with another mobile than the stored one is another person.
    let (_, namesake) = import_to(
        &app,
        "contacts",
        Some(&rep),
        "dryRun=1",
        "客户名称,联系人,手机\n杭州丝绸有限公司,钱会计,13700000099\n".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(counts(&namesake["importRun"]), [1, 0, 0, 0, 0, 0], "{namesake}");

    // A colleague who may add contacts to a customer but not see its contact details
    // learns nothing from a guessed mobile: it matches nothing (before: FAILED, "the
    // number is on file").
    let (_, colleague) = app.create_user("colleague@example.com", "SALES", &east).await;
    let grant = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    for action in ["READ", "CREATE", "UPDATE"] {
        app.ok(
            &app.admin_token,
            grant,
            json!({"i": {"role": "SALES", "resource": "CONTACT", "action": action, "scope": "DEPARTMENT"}}),
        )
        .await;
    }
    let (_, colleague) = (colleague.clone(), app.login("colleague@example.com", PASSWORD).await);
    let guess = format!("customerId,联系人,手机\n{},新同事,13700000015\n", silk["id"].as_str().unwrap());
    let (_, probe) = import_to(&app, "contacts", Some(&colleague), "dryRun=1", guess.into_bytes()).await;
    assert_eq!(counts(&probe["importRun"]), [1, 0, 0, 0, 0, 0], "{probe}");

    // A NUL in a cell is that line's problem, not its chunk's (PostgreSQL aborts a
    // transaction on one).
    let (_, nul) = import(&app, Some(&rep), "", b"name,email\nA,a\0@x.example\nB,b@x.example\n".to_vec()).await;
    assert_eq!(counts(&nul["importRun"]), [1, 0, 0, 0, 1, 0], "{nul}");
    // A malformed customer id is said so.
    let (_, bad) =
        import_to(&app, "contacts", Some(&rep), "", "customerId,联系人\nnot-an-id,某人\n".as_bytes().to_vec()).await;
    assert_eq!(bad["problems"][0]["problems"][0]["field"], "customerId", "{bad}");
}

#[tokio::test]
async fn deals_import_linked_by_their_customer_and_regrade_it() {
    let app = TestApp::spawn().await;
    let (east, rep, silk) = silk_and_the_west(&app).await;
    let file = "客户名称,标题,阶段,金额,币种,成交日期,丢单原因\n\
                杭州丝绸有限公司,春季订单,成交,\"85,000.00\",CNY,2026-03-01,\n\
                杭州丝绸有限公司,秋季订单,丢单,12000,CNY,,价格\n\
                西部贸易有限公司,订单,成交,1000,CNY,2026-03-02,\n\
                杭州丝绸有限公司,坏单,成交,很多,CNY,2026-13-01,\n";
    let (status, dry) = import_to(&app, "deals", Some(&rep), "dryRun=true", file.as_bytes().to_vec()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(counts(&dry["importRun"]), [2, 0, 0, 1, 1, 0], "{dry}");
    let q = "query($id:ID!){customer(id:$id){tier deals{nodes{title stage amount{amount} version}}}}";
    let before = app.ok(&rep, q, json!({"id": silk["id"]})).await;
    assert_eq!(before["customer"]["deals"]["nodes"].as_array().unwrap().len(), 0, "a dry run writes nothing");

    let (_, done) = import_to(&app, "deals", Some(&rep), "", file.as_bytes().to_vec()).await;
    assert_eq!(counts(&done["importRun"]), [2, 0, 0, 1, 1, 0], "{done}");
    let fields: Vec<&str> =
        done["problems"][1]["problems"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"actualCloseDate") && fields.contains(&"amount"), "{fields:?}");
    // The won deal regraded its customer, as a deal entered by hand does.
    let after = app.ok(&rep, q, json!({"id": silk["id"]})).await;
    assert_eq!(after["customer"]["tier"], "A", "{after}");
    // Once, at the chunk's end (in id order, as a full pass locks customers), with why.
    let hq = "query($id:ID!){customer(id:$id){classificationHistory{field to reason}}}";
    let history = app.ok(&rep, hq, json!({"id": silk["id"]})).await;
    let tiers: Vec<&Value> = history["customer"]["classificationHistory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["field"] == "TIER")
        .collect();
    assert_eq!(tiers.len(), 1, "{history}");
    assert_eq!(
        (tiers[0]["to"].as_str(), tiers[0]["reason"].as_str()),
        (Some("A"), Some("DEAL_WON")),
        "the weightiest reason: {history}"
    );
    assert_eq!(after["customer"]["deals"]["nodes"].as_array().unwrap().len(), 2);

    // Again: unchanged, versions stay; a changed amount updates that deal only.
    let (_, again) = import_to(&app, "deals", Some(&rep), "", file.as_bytes().to_vec()).await;
    assert_eq!(counts(&again["importRun"]), [0, 0, 2, 1, 1, 0], "{again}");
    let changed = "客户名称,标题,金额,成交日期\n杭州丝绸有限公司,春季订单,90000,2026-03-01\n";
    let (_, upd) = import_to(&app, "deals", Some(&rep), "", changed.as_bytes().to_vec()).await;
    assert_eq!(counts(&upd["importRun"]), [0, 1, 0, 0, 0, 0], "{upd}");
    let deals = app.ok(&rep, q, json!({"id": silk["id"]})).await;
    let spring = deals["customer"]["deals"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["title"] == "春季订单")
        .cloned()
        .unwrap();
    assert_eq!((spring["amount"]["amount"].as_str(), spring["version"].as_i64()), (Some("90000.00"), Some(2)));

    // The deal export imports back as it is; a file without a title column is refused.
    let (_, text) = export(&app, Some(&rep), "/exports/deals.csv").await;
    let (_, back) = import_to(&app, "deals", Some(&rep), "", text.into_bytes()).await;
    assert_eq!(counts(&back["importRun"]), [0, 0, 2, 0, 0, 0], "{back}");
    let (status, resp) =
        import_to(&app, "deals", Some(&rep), "", "客户名称,金额\n杭州丝绸有限公司,1\n".as_bytes().to_vec()).await;
    assert_eq!((status, code(&resp)), (400, "VALIDATION"), "{resp}");

    // A reorder without a close date is not last spring's won deal: a new one. A line
    // closing an open deal (its date not set yet) updates it.
    let reorder = "客户名称,标题,金额\n杭州丝绸有限公司,春季订单,3000\n";
    let (_, resp) = import_to(&app, "deals", Some(&rep), "", reorder.as_bytes().to_vec()).await;
    assert_eq!(counts(&resp["importRun"]), [1, 0, 0, 0, 0, 0], "{resp}");
    let closing = "客户名称,标题,阶段,成交日期\n杭州丝绸有限公司,春季订单,成交,2026-11-20\n";
    let (_, resp) = import_to(&app, "deals", Some(&rep), "", closing.as_bytes().to_vec()).await;
    assert_eq!(counts(&resp["importRun"]), [0, 1, 0, 0, 0, 0], "{resp}");

    // Amounts are a field group: a manager who may update deals but not see amounts
    // cannot overwrite one, by the API or a file, nor learn it by whether a line is
    // UNCHANGED.
    app.create_user("m@example.com", "MANAGER", &east).await;
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    let hide = json!({"i": {"role": "MANAGER", "resource": "DEAL_AMOUNT", "action": "READ", "scope": "NONE"}});
    app.ok(&app.admin_token, set, hide).await;
    let manager = app.login("m@example.com", PASSWORD).await;
    let q = "query($id:ID!){customer(id:$id){deals{nodes{id version title}}}}";
    let list = app.ok(&rep, q, json!({"id": silk["id"]})).await;
    let nodes = list["customer"]["deals"]["nodes"].as_array().unwrap().clone();
    let autumn = nodes.iter().find(|d| d["title"] == "秋季订单").cloned().unwrap();
    let update = "mutation($i:UpdateDealInput!){updateDeal(input:$i){id}}";
    let bump = json!({"i": {"id": autumn["id"], "version": autumn["version"], "amount": "1.00"}});
    let resp = app.gql(Some(&manager), update, bump).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let guess = format!(
        "customerId,id,标题,金额\n{},{},秋季订单,12000\n",
        silk["id"].as_str().unwrap(),
        autumn["id"].as_str().unwrap()
    );
    let (_, resp) = import_to(&app, "deals", Some(&manager), "dryRun=1", guess.into_bytes()).await;
    assert_eq!(counts(&resp["importRun"]), [0, 0, 0, 0, 0, 1], "no oracle on the hidden amount: {resp}");
    // Other fields of the deal stay the manager's to change.
    let rename = json!({"i": {"id": autumn["id"], "version": autumn["version"], "title": "秋季大单"}});
    let resp = app.gql(Some(&manager), update, rename).await;
    assert!(resp.get("errors").is_none(), "{resp}");

    // A deal with line items takes its amount from them.
    let create = "mutation($i:CreateDealInput!){createDeal(input:$i){id version}}";
    let items = json!({"i": {"customerId": silk["id"], "title": "样品", "lineItems": [
        {"product": "真丝围巾", "quantity": 2, "unitPrice": "300.00"}]}});
    let itemised = app.ok(&rep, create, items).await["createDeal"].clone();
    let alone = json!({"i": {"id": itemised["id"], "version": itemised["version"], "amount": "1.00"}});
    let resp = app.gql(Some(&rep), update, alone).await;
    assert_eq!(invalid_fields(&resp), ["amount"], "{resp}");
}

/// A key (or token) that expires while its file uploads: the run stops at the next chunk
/// (it went on writing before).
#[tokio::test]
async fn an_import_stops_when_its_key_expires() {
    let app = TestApp::spawn().await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(6)).to_rfc3339();
    let made = app
        .ok(
            &app.admin_token,
            "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret}}",
            json!({"i": {"name": "导入", "role": "INTEGRATION", "expiresAt": soon}}),
        )
        .await;
    let key = made["createApiKey"]["secret"].as_str().unwrap().to_string();
    let mut first = String::from("name,phone\n");
    for i in 0..600 {
        first.push_str(&format!("线索{i},1370000{i:04}\n"));
    }
    let expire = |_| {
        let (app, key) = (&app, key.clone());
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let runs = app.ok(&key, "{importRuns{nodes{linesRead}}}", json!({})).await;
                if runs["importRuns"]["nodes"][0]["linesRead"].as_i64().unwrap_or(0) >= 500 {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "the first chunk never landed: {runs}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(6500)).await;
        }
    };
    let stopped =
        chunked_upload(&app, &key, "encoding=utf-8", &[first.as_bytes(), "迟到,13600000000\n".as_bytes()], expire)
            .await;
    let run = &stopped["importRun"];
    assert_eq!(run["status"], "FAILED", "{stopped}");
    assert!(run["error"].as_str().unwrap().contains("expired"), "{stopped}");
    assert_eq!(run["created"], 500, "the chunk before the expiry stays: {stopped}");
}
