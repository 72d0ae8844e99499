//! Imports of contacts and deals, each line linked to its customer by id or natural key.
use crate::exports::export;
use crate::helpers::*;
use crate::imports::{counts, import, import_to};
use serde_json::{Value, json};

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
