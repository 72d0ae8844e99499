//! Imports of a customer book from CSV: per-line outcomes, upsert on natural keys that
//! never overwrites someone else's record, dry runs, re-runs, encodings, header mapping.
use crate::exports::export;
use crate::helpers::*;
use serde_json::{Value, json};

/// POSTs a CSV file to `/imports/customers?<query>`; returns the status and the JSON.
pub(crate) async fn import(app: &TestApp, token: Option<&str>, query: &str, body: Vec<u8>) -> (u16, Value) {
    import_to(app, "customers", token, query, body).await
}

/// POSTs a CSV file to `/imports/<kind>?<query>`.
pub(crate) async fn import_to(
    app: &TestApp,
    kind: &str,
    token: Option<&str>,
    query: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = app.client.post(app.url(&format!("/imports/{kind}?{query}"))).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.header("content-type", "text/csv").send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

pub(crate) fn counts(run: &Value) -> [i64; 6] {
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
