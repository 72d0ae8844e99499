//! The category catalogue as data: field templates checked on every write, completeness
//! computed against the template as it is now.
use crate::helpers::*;
use serde_json::{Value, json};

const SAVE: &str = "mutation($i:CategoryInput!,$v:Int){saveCategory(input:$i,version:$v){key version parentKey \
                    requiredFields fields{key type required} template{requiredFields fields{key}}}}";
const CREATE: &str = "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id version category \
                      completeness{score missing invalid}}}";
const UPDATE: &str = "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){id version category \
                      completeness{score missing invalid}}}";

/// Seed 004's template of a customer who has bought (成交客户字段模板), on `partner`.
fn deal_customer_template(version: Option<i64>) -> Value {
    json!({
        "v": version,
        "i": {
            "key": "partner", "name": "合作伙伴",
            "requiredFields": ["ADDRESS", "PHONE", "IMPORTANCE", "SOURCE"],
            "fields": [
                {"key": "computers", "label": "电脑台数", "type": "NUMBER", "required": true, "min": "0"},
                {"key": "stores", "label": "店面数量", "type": "NUMBER", "min": "0", "max": "10000"},
                {"key": "sales_model", "label": "客户销售模式", "type": "CHOICE",
                 "choices": ["渠道批发", "连锁零售", "工程项目开发"]},
                {"key": "capital", "label": "客户注册资金", "type": "MONEY", "min": "0"},
                {"key": "homepage", "label": "主页", "type": "TEXT", "pattern": "^https?://", "max": "200"},
                {"key": "since", "label": "起始合作时间", "type": "DATE", "min": "1990-01-01"},
                {"key": "lines", "label": "主营产品", "type": "MULTI_CHOICE", "choices": ["电脑", "软件", "服务"]},
                {"key": "listed", "label": "上市公司", "type": "BOOLEAN"}
            ]
        }
    })
}

fn organization(name: &str, category: &str, custom: Value) -> Value {
    json!({"i": {"name": name, "kind": "ORGANIZATION", "category": category, "phone": "010-62345678",
                 "address": "北京市海淀区", "importance": "A", "source": "REFERRAL", "customFields": custom}})
}

#[tokio::test]
async fn categories_are_data_and_templates_check_every_write() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;

    // The seeded catalogue: seed 004's main categories and its example sub-categories.
    let list = app.ok(&rep, "{categories{key name parentKey active}}", json!({})).await;
    let keys: Vec<&str> = list["categories"].as_array().unwrap().iter().map(|c| c["key"].as_str().unwrap()).collect();
    for key in ["retail", "vip", "supplier", "supplier_software", "competitor", "partner", "partner_mall", "other"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let mall = list["categories"].as_array().unwrap().iter().find(|c| c["key"] == "partner_mall").unwrap();
    assert_eq!(mall["parentKey"], "partner");

    // Only administrators edit it.
    let resp = app.gql(Some(&rep), SAVE, deal_customer_template(Some(1))).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let saved = app.ok(&admin, SAVE, deal_customer_template(Some(1))).await;
    assert_eq!(saved["saveCategory"]["version"], 2);
    assert_eq!(saved["saveCategory"]["requiredFields"], json!(["ADDRESS", "PHONE", "IMPORTANCE", "SOURCE"]));
    // A stale version, and a create of a key that exists.
    let resp = app.gql(Some(&admin), SAVE, deal_customer_template(Some(1))).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    let resp = app.gql(Some(&admin), SAVE, deal_customer_template(None)).await;
    assert_eq!(code(&resp), "DUPLICATE", "{resp}");

    // A bad template lists every bad part, and changes nothing.
    let bad = json!({"v": 2, "i": {"key": "partner", "name": "合作伙伴", "fields": [
        {"key": "a", "label": "A", "type": "CHOICE"},
        {"key": "a", "label": "A again", "type": "TEXT", "pattern": "(unclosed"},
        {"key": "B-bad", "label": "", "type": "NUMBER", "min": "5", "max": "1"},
        {"key": "flag", "label": "Flag", "type": "BOOLEAN", "min": "1", "choices": ["x"]}
    ]}});
    let resp = app.gql(Some(&admin), SAVE, bad).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    assert_eq!(
        invalid_fields(&resp),
        [
            "fields[0].choices",
            "fields[1].key",
            "fields[1].pattern",
            "fields[2].key",
            "fields[2].label",
            "fields[2].max",
            "fields[3].choices",
            "fields[3].min"
        ]
    );

    // A customer missing what the template requires: every field is named.
    let resp = app
        .gql(
            Some(&rep),
            CREATE,
            json!({"i": {"name": "联想渠道", "kind": "ORGANIZATION", "category": "partner",
                         "customFields": {"computers": "ten", "sales_model": "其他", "homepage": "ftp://x",
                                          "capital": "12.345", "since": "1980-01-01", "lines": ["电脑", "电脑"],
                                          "listed": "yes", "stores": 20000, "unknown": 1}}}),
        )
        .await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    let mut fields = invalid_fields(&resp);
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "address",
            "customFields.capital",
            "customFields.computers",
            "customFields.homepage",
            "customFields.lines",
            "customFields.listed",
            "customFields.sales_model",
            "customFields.since",
            "customFields.stores",
            "customFields.unknown",
            "importance",
            "phone",
            "source"
        ]
    );
    let nothing = app.ok(&admin, "{customers{totalCount}}", json!({})).await;
    assert_eq!(nothing["customers"]["totalCount"], 0);

    // Values are taken only in their one written form.
    for (key, value) in [
        ("capital", json!(" 5 ")),
        ("capital", json!("5.")),
        ("capital", json!("+5")),
        ("since", json!("+2026-01-1")),
        ("since", json!("2026-1-01")),
    ] {
        let mut custom = json!({"computers": 1});
        custom[key] = value.clone();
        let resp = app.gql(Some(&rep), CREATE, organization("形式", "partner", custom)).await;
        assert_eq!(invalid_fields(&resp), [format!("customFields.{key}").as_str()], "{value}: {resp}");
    }

    // A complete one; a sub-category inherits its main category's template.
    let full = json!({"computers": 12, "stores": 3, "sales_model": "连锁零售", "capital": "5000000.00",
                      "homepage": "https://lenovo.example", "since": "2015-03-01", "lines": ["电脑", "服务"],
                      "listed": true});
    let created =
        app.ok(&rep, CREATE, organization("联想渠道", "partner", full.clone())).await["createCustomer"].clone();
    assert_eq!(created["completeness"], json!({"score": 100, "missing": [], "invalid": []}));
    let resp = app
        .gql(Some(&rep), CREATE, json!({"i": {"name": "商场", "kind": "ORGANIZATION", "category": "partner_mall"}}))
        .await;
    let mut fields = invalid_fields(&resp);
    fields.sort_unstable();
    assert_eq!(fields, ["address", "customFields.computers", "importance", "phone", "source"]);

    // The template changes: a new required field applies to new writes; the stored
    // record shows as incomplete and is not refused for an unrelated change.
    let mut changed = deal_customer_template(Some(2));
    changed["i"]["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "staff", "label": "员工人数", "type": "NUMBER", "required": true}));
    // The sales model loses a choice the stored record holds.
    changed["i"]["fields"][2]["choices"] = json!(["渠道批发", "工程项目开发"]);
    app.ok(&admin, SAVE, changed).await;
    let id = created["id"].as_str().unwrap();
    let now =
        app.ok(&rep, "query($id:ID!){customer(id:$id){completeness{score missing invalid}}}", json!({"id": id})).await;
    assert_eq!(
        now["customer"]["completeness"],
        json!({"score": 83, "missing": ["customFields.staff"], "invalid": ["customFields.sales_model"]})
    );
    let renamed = app.ok(&rep, UPDATE, json!({"i": {"id": id, "version": 1, "name": "联想渠道(北京)"}})).await;
    assert_eq!(renamed["updateCustomer"]["version"], 2);
    // Emptying a required field that was filled is refused; so is a bad value written now.
    let resp = app.gql(Some(&rep), UPDATE, json!({"i": {"id": id, "version": 2, "address": null}})).await;
    assert_eq!(invalid_fields(&resp), ["address"], "{resp}");
    let mut custom = full.clone();
    custom["computers"] = json!(-1);
    let resp = app.gql(Some(&rep), UPDATE, json!({"i": {"id": id, "version": 2, "customFields": custom}})).await;
    let mut fields = invalid_fields(&resp);
    fields.sort_unstable();
    assert_eq!(fields, ["customFields.computers", "customFields.sales_model"], "{resp}");
    let mut custom = full.clone();
    custom["sales_model"] = json!("渠道批发");
    custom["staff"] = json!(40);
    let fixed = app.ok(&rep, UPDATE, json!({"i": {"id": id, "version": 2, "customFields": custom}})).await;
    assert_eq!(fixed["updateCustomer"]["completeness"], json!({"score": 100, "missing": [], "invalid": []}));

    // Moving to another category checks the whole record against its template.
    let resp = app.gql(Some(&rep), UPDATE, json!({"i": {"id": id, "version": 3, "category": "retail"}})).await;
    assert_eq!(code(&resp), "VALIDATION", "{resp}");
    assert!(invalid_fields(&resp).iter().all(|f| f.starts_with("customFields.")), "{resp}");
    let moved =
        app.ok(&rep, UPDATE, json!({"i": {"id": id, "version": 3, "category": "retail", "customFields": null}})).await;
    assert_eq!(moved["updateCustomer"]["category"], "retail");
}

#[tokio::test]
async fn retired_and_department_categories() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let shanghai = app.create_department("上海", Some(&east)).await;
    let west = app.create_department("西部", None).await;
    let (_, rep_sh) = app.create_user("sh@example.com", "SALES", &shanghai).await;
    let (_, rep_west) = app.create_user("west@example.com", "SALES", &west).await;
    let shop = json!([{"key": "shop_url", "label": "店铺", "type": "TEXT", "required": true}]);
    let individual =
        |name: &str, category: &str| json!({"i": {"name": name, "kind": "INDIVIDUAL", "category": category}});

    let east_only = json!({"i": {"key": "ecommerce", "name": "电商客户", "departmentId": east, "fields": shop}});
    let saved = app.ok(&admin, SAVE, east_only).await;
    assert_eq!(saved["saveCategory"]["version"], 1);
    let listed = |v: &Value| v["categories"].as_array().unwrap().iter().any(|c| c["key"] == "ecommerce");
    assert!(listed(&app.ok(&rep_sh, "{categories{key}}", json!({})).await), "a department below sees it");
    assert!(!listed(&app.ok(&rep_west, "{categories{key}}", json!({})).await), "another department does not");
    // To another department it does not exist: the same answer as an unknown key, no
    // template checked (its fields would tell), and no list of keys in the message.
    let closed = app.gql(Some(&rep_west), CREATE, individual("网店", "ecommerce")).await;
    assert_eq!(invalid_fields(&closed), ["category"], "{closed}");
    let unknown = app.gql(Some(&rep_west), CREATE, individual("网店", "nope")).await;
    assert_eq!(closed["errors"][0]["extensions"]["fields"], unknown["errors"][0]["extensions"]["fields"]);
    assert!(!unknown.to_string().contains("ecommerce"), "{unknown}");
    // Its sub-categories are as closed as it is.
    app.ok(&admin, SAVE, json!({"i": {"key": "ecommerce_tmall", "name": "天猫店", "parentKey": "ecommerce"}})).await;
    let west_list = app.ok(&rep_west, "{categories{key}}", json!({})).await;
    assert!(!west_list.to_string().contains("ecommerce"), "{west_list}");
    let resp = app.gql(Some(&rep_west), CREATE, individual("网店", "ecommerce_tmall")).await;
    assert_eq!(invalid_fields(&resp), ["category"], "{resp}");

    let mut open = individual("网店", "ecommerce");
    open["i"]["phone"] = json!("13800000001");
    open["i"]["customFields"] = json!({"shop_url": "https://shop.example"});
    let kept = app.ok(&rep_sh, CREATE, open).await["createCustomer"].clone();

    // Retired: no new customers; those in it stay and can still be edited.
    let retire = json!({"v": 1, "i": {"key": "ecommerce", "name": "电商客户", "departmentId": east, "active": false,
                                      "fields": shop}});
    app.ok(&admin, SAVE, retire).await;
    let resp = app.gql(Some(&rep_sh), CREATE, individual("另一家", "ecommerce")).await;
    assert_eq!(invalid_fields(&resp), ["category"], "{resp}");
    let id = kept["id"].as_str().unwrap();
    let edited = app.ok(&rep_sh, UPDATE, json!({"i": {"id": id, "version": 1, "name": "网店(旧)"}})).await;
    assert_eq!(edited["updateCustomer"]["category"], "ecommerce");
    let all = app.ok(&rep_sh, "{categories(includeInactive:true){key active}}", json!({})).await;
    assert!(all["categories"].as_array().unwrap().iter().any(|c| c["key"] == "ecommerce" && c["active"] == false));
    assert!(!listed(&app.ok(&rep_sh, "{categories{key}}", json!({})).await));
    // A retired main category retires its sub-categories, and takes no new ones.
    let resp = app.gql(Some(&rep_sh), CREATE, individual("天猫", "ecommerce_tmall")).await;
    assert_eq!(invalid_fields(&resp), ["category"], "{resp}");
    let all = app.ok(&rep_sh, "{categories(includeInactive:true){key active}}", json!({})).await;
    assert!(all["categories"].as_array().unwrap().contains(&json!({"key": "ecommerce_tmall", "active": false})));
    let resp = app
        .gql(Some(&admin), SAVE, json!({"i": {"key": "ecommerce_jd", "name": "京东店", "parentKey": "ecommerce"}}))
        .await;
    assert_eq!(invalid_fields(&resp), ["parentKey"], "{resp}");
    // The categories customers get by default stay open to all, active and main.
    let default = json!({"v": 1, "i": {"key": "partner", "name": "合作伙伴", "active": false, "departmentId": east}});
    let resp = app.gql(Some(&admin), SAVE, default).await;
    assert_eq!(invalid_fields(&resp), ["departmentId", "active"], "{resp}");

    // Replacing a category that does not exist; requiring what a template cannot require.
    let resp = app.gql(Some(&admin), SAVE, json!({"v": 1, "i": {"key": "nowhere", "name": "无"}})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    let resp = app
        .gql(Some(&admin), SAVE, json!({"i": {"key": "odd", "name": "怪", "requiredFields": ["CUSTOM_FIELDS"]}}))
        .await;
    assert_eq!(invalid_fields(&resp), ["requiredFields"], "{resp}");

    // Sub-categories are one level deep.
    let resp =
        app.gql(Some(&admin), SAVE, json!({"i": {"key": "deep", "name": "深", "parentKey": "partner_mall"}})).await;
    assert_eq!(invalid_fields(&resp), ["parentKey"], "{resp}");
}

#[tokio::test]
async fn completeness_report_and_the_least_complete_important_customers() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let (rep1_id, rep1) = app.create_user("one@example.com", "SALES", &east).await;
    let (rep2_id, rep2) = app.create_user("two@example.com", "SALES", &east).await;
    let (_, manager) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let org = |name: &str, phone: Option<&str>, address: Option<&str>, importance: &str| json!({"name": name, "kind": "ORGANIZATION", "phone": phone, "address": address, "importance": importance});
    // Entered while the template asked for nothing.
    app.create_customer(&rep1, org("甲公司", Some("021-61234567"), Some("上海市"), "A")).await;
    app.create_customer(&rep1, org("乙公司", Some("021-61234568"), None, "A")).await;
    app.create_customer(&rep1, json!({"name": "丙", "kind": "INDIVIDUAL"})).await;
    app.create_customer(&rep2, org("丁公司", None, None, "B")).await;
    app.create_customer(&rep2, org("戊公司", Some("021-61234569"), None, "A")).await;
    // Then organizations (category partner) must have an address and a phone.
    let template = json!({"v": 1, "i": {"key": "partner", "name": "合作伙伴", "requiredFields": ["ADDRESS", "PHONE"]}});
    app.ok(&admin, SAVE, template).await;

    let report = "query($g:CompletenessGrouping!){dataCompleteness(groupBy:$g){key label customers complete \
                  averageScore missing{field customers}}}";
    let by_owner = app.ok(&manager, report, json!({"g": "OWNER"})).await;
    let rows = by_owner["dataCompleteness"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{by_owner}");
    assert_eq!(rows[0]["key"], rep1_id.as_str(), "best first");
    assert_eq!((rows[0]["customers"].as_i64(), rows[0]["complete"].as_i64()), (Some(3), Some(2)));
    assert!((rows[0]["averageScore"].as_f64().unwrap() - 250.0 / 3.0).abs() < 0.01);
    assert_eq!(rows[0]["missing"], json!([{"field": "address", "customers": 1}]));
    assert_eq!(rows[1]["key"], rep2_id.as_str());
    assert_eq!(rows[1]["label"], "two@example.com", "the owner's name");
    assert_eq!((rows[1]["customers"].as_i64(), rows[1]["complete"].as_i64()), (Some(2), Some(0)));
    assert_eq!(rows[1]["averageScore"], 25.0);
    assert_eq!(rows[1]["missing"], json!([{"field": "address", "customers": 2}, {"field": "phone", "customers": 1}]));
    // A rep's report covers the records they may read: their own.
    let own = app.ok(&rep2, report, json!({"g": "OWNER"})).await;
    assert_eq!(own["dataCompleteness"].as_array().unwrap().len(), 1);
    // Reports of record completeness read customers: not for a role that reads none.
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    assert_eq!(code(&app.gql(Some(&analyst), report, json!({"g": "OWNER"})).await), "FORBIDDEN");
    let least = "{leastCompleteCustomers{totalCount}}";
    assert_eq!(code(&app.gql(Some(&analyst), least, json!({})).await), "FORBIDDEN");
    assert_eq!(own["dataCompleteness"][0]["key"], rep2_id.as_str());
    let by_category = app.ok(&manager, report, json!({"g": "CATEGORY"})).await;
    let rows = by_category["dataCompleteness"].as_array().unwrap();
    assert_eq!(rows[0]["key"], "retail");
    assert_eq!(rows[0]["label"], "个人零售客户");
    assert_eq!(
        (rows[1]["key"].as_str(), rows[1]["customers"].as_i64(), rows[1]["complete"].as_i64()),
        (Some("partner"), Some(4), Some(1))
    );
    assert_eq!(rows[1]["averageScore"], 50.0);

    // The important ones (importance A here) to fix first; 丁 is B and not on it.
    let list = "query($a:String){leastCompleteCustomers(first:1, after:$a){totalCount \
                pageInfo{hasNextPage endCursor} edges{node{rank customer{name} completeness{score missing}}}}}";
    let first = app.ok(&manager, list, json!({"a": null})).await;
    let page = &first["leastCompleteCustomers"];
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let second = app.ok(&manager, list, json!({"a": page["pageInfo"]["endCursor"]})).await;
    let mut names: Vec<&str> = [&first, &second]
        .iter()
        .map(|d| d["leastCompleteCustomers"]["edges"][0]["node"]["customer"]["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["乙公司", "戊公司"]);
    assert_eq!(second["leastCompleteCustomers"]["edges"][0]["node"]["rank"], 2);
    assert_eq!(
        second["leastCompleteCustomers"]["edges"][0]["node"]["completeness"],
        json!({"score": 50, "missing": ["address"]})
    );
    assert_eq!(second["leastCompleteCustomers"]["pageInfo"]["hasNextPage"], false);
    let mine = app.ok(&rep2, list, json!({"a": null})).await;
    assert_eq!(mine["leastCompleteCustomers"]["totalCount"], 1);
    assert_eq!(mine["leastCompleteCustomers"]["edges"][0]["node"]["customer"]["name"], "戊公司");
}

#[tokio::test]
async fn custom_fields_filter_by_their_type() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let save = "mutation($i:CategoryInput!,$v:Int){saveCategory(input:$i,version:$v){version}}";
    let fields = |points: &str| {
        json!([
            {"key": "points", "label": "积分", "type": points},
            {"key": "credit", "label": "授信", "type": "MONEY"},
            {"key": "since", "label": "入会", "type": "DATE"},
            {"key": "level", "label": "等级", "type": "CHOICE", "choices": ["金", "银"]},
            {"key": "tags", "label": "标签", "type": "MULTI_CHOICE", "choices": ["茶", "酒", "礼盒"]},
            {"key": "member", "label": "会员", "type": "BOOLEAN"},
            {"key": "note", "label": "备注", "type": "TEXT"}
        ])
    };
    // First `points` is text: one customer stores words there before it becomes a number.
    app.ok(&admin, save, json!({"v": 1, "i": {"key": "retail", "name": "零售客户", "fields": fields("TEXT")}})).await;
    let person = |name: &str, custom: Value| {
        let app = &app;
        let input = json!({"name": name, "kind": "INDIVIDUAL", "customFields": custom});
        async move { app.create_customer(&app.admin_token, input).await["id"].clone() }
    };
    let words = person("旧数据", json!({"points": "很多"})).await;
    app.ok(&admin, save, json!({"v": 2, "i": {"key": "retail", "name": "零售客户", "fields": fields("NUMBER")}})).await;
    let a = person(
        "甲",
        json!({"points": 1200, "credit": "5000.50", "since": "2023-05-01", "level": "金",
                               "tags": ["茶", "礼盒"], "member": true, "note": "VIP 老客户"}),
    )
    .await;
    let b = person(
        "乙",
        json!({"points": 300, "credit": "800.00", "since": "2024-02-29", "level": "银",
                               "tags": ["酒"], "member": false}),
    )
    .await;
    let c = person("丙", json!({"points": 50.5})).await;

    let find = |custom: Value| {
        let app = &app;
        async move {
            let q = "query($f:CustomerFilter){customers(filter:$f, orderBy:[{field:NAME}]){nodes{id}}}";
            app.gql(Some(&app.admin_token), q, json!({"f": {"customFields": custom}})).await
        }
    };
    let ids = |resp: &Value| -> Vec<Value> {
        assert!(resp.get("errors").is_none(), "{resp}");
        let mut v: Vec<Value> =
            resp["data"]["customers"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].clone()).collect();
        v.sort_by_key(|x| x.to_string());
        v
    };
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|x| x.to_string());
        v
    };
    // Numbers compare as numbers; the words stored before the change never match (and
    // never break the query).
    assert_eq!(ids(&find(json!([{"key": "points", "gte": "100"}])).await), sorted(vec![a.clone(), b.clone()]));
    assert_eq!(ids(&find(json!([{"key": "points", "lte": "60"}])).await), vec![c.clone()]);
    assert_eq!(ids(&find(json!([{"key": "points", "eq": "50.5"}])).await), vec![c.clone()]);
    assert_eq!(ids(&find(json!([{"key": "credit", "gte": "1,000"}])).await), vec![a.clone()]);
    assert_eq!(ids(&find(json!([{"key": "since", "gte": "2024-01-01"}])).await), vec![b.clone()]);
    assert_eq!(ids(&find(json!([{"key": "level", "eq": "金"}])).await), vec![a.clone()]);
    assert_eq!(ids(&find(json!([{"key": "tags", "eq": "茶"}])).await), vec![a.clone()]);
    assert_eq!(ids(&find(json!([{"key": "tags", "in": ["酒", "礼盒"]}])).await), sorted(vec![a.clone(), b.clone()]));
    assert_eq!(ids(&find(json!([{"key": "member", "eq": "false"}])).await), vec![b.clone()]);
    assert_eq!(ids(&find(json!([{"key": "note", "contains": "vip"}])).await), vec![a.clone()]);
    assert_eq!(
        ids(&find(json!([{"key": "member", "isNull": true}, {"key": "points", "isNull": false}])).await),
        sorted(vec![words.clone(), c.clone()])
    );
    // Inside and/or like any field.
    let q = "query($f:CustomerFilter){customers(filter:$f){nodes{id}}}";
    let either = json!({"or": [{"customFields": [{"key": "level", "eq": "银"}]}, {"customFields": [{"key": "points", "lte": "60"}]}]});
    let resp = app.gql(Some(&admin), q, json!({"f": either})).await;
    assert_eq!(ids(&resp), sorted(vec![b.clone(), c.clone()]));

    // Mistakes are named.
    for (bad, field) in [
        (json!([{"key": "nope", "eq": "1"}]), "filter.customFields.nope"),
        (json!([{"key": "points", "contains": "1"}]), "filter.customFields.points"),
        (json!([{"key": "points", "gte": "many"}]), "filter.customFields.points"),
        (json!([{"key": "since", "gte": "2024-13-01"}]), "filter.customFields.since"),
        (json!([{"key": "member", "eq": "yes"}]), "filter.customFields.member"),
    ] {
        let resp = find(bad).await;
        assert_eq!(invalid_fields(&resp), [field], "{resp}");
    }
}

#[tokio::test]
async fn custom_fields_sort_with_empty_values_last_and_pages_that_hold() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let save = "mutation($i:CategoryInput!,$v:Int){saveCategory(input:$i,version:$v){version}}";
    let fields = |typed: bool| {
        let (points, credit, since) = if typed { ("NUMBER", "MONEY", "DATE") } else { ("TEXT", "TEXT", "TEXT") };
        json!([
            {"key": "points", "label": "积分", "type": points},
            {"key": "credit", "label": "授信", "type": credit},
            {"key": "since", "label": "入会", "type": since},
            {"key": "note", "label": "备注", "type": "TEXT"},
            {"key": "tags", "label": "标签", "type": "MULTI_CHOICE", "choices": ["茶", "酒"]},
            {"key": "member", "label": "会员", "type": "BOOLEAN"}
        ])
    };
    app.ok(&admin, save, json!({"v": 1, "i": {"key": "retail", "name": "零售客户", "fields": fields(false)}})).await;
    let person = |name: &str, custom: Value| {
        let app = &app;
        let input = json!({"name": name, "kind": "INDIVIDUAL", "customFields": custom});
        async move { app.create_customer(&app.admin_token, input).await["id"].as_str().unwrap().to_string() }
    };
    // Words stored while the fields were text: no value once they are a number, money
    // (SQLite's CAST would read them as 0; 40 digits are no amount either) and a date.
    let words = person("旧数据", json!({"points": "很多", "credit": "9".repeat(40), "since": "zzz"})).await;
    app.ok(&admin, save, json!({"v": 2, "i": {"key": "retail", "name": "零售客户", "fields": fields(true)}})).await;
    let a = person("甲", json!({"points": 1200, "credit": "5000.50", "since": "2023-05-01", "note": "beta"})).await;
    let b = person("乙", json!({"points": 300, "credit": "800.00", "since": "2024-02-29", "note": "alpha"})).await;
    let c = person("丙", json!({"points": 50.5, "credit": "-20"})).await;
    let d = person("丁", json!({"points": 300})).await;
    let e = person("戊", json!({})).await;
    let by_id = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (bd, nulls) = (by_id(vec![b.clone(), d.clone()]), by_id(vec![words.clone(), e.clone()]));
    let q = "query($o:[CustomerOrder!],$first:Int,$after:String){customers(orderBy:$o,first:$first,after:$after){
        nodes{id} pageInfo{hasNextPage endCursor}}}";
    // The whole order in one page, then the same order walked two rows at a time: the
    // cursors hold numbers, texts and NULLs exactly as the database compares them.
    let walk = |order: Value| {
        let app = &app;
        async move {
            let ids = |resp: &Value| -> Vec<String> {
                assert!(resp.get("errors").is_none(), "{resp}");
                resp["data"]["customers"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["id"].as_str().unwrap().to_string())
                    .collect()
            };
            let whole = ids(&app.gql(Some(&app.admin_token), q, json!({"o": order, "first": 100})).await);
            let (mut paged, mut after) = (Vec::new(), Value::Null);
            loop {
                let resp = app.gql(Some(&app.admin_token), q, json!({"o": order, "first": 2, "after": after})).await;
                paged.extend(ids(&resp));
                let info = &resp["data"]["customers"]["pageInfo"];
                if info["hasNextPage"] != json!(true) || paged.len() > whole.len() {
                    break;
                }
                after = info["endCursor"].clone();
            }
            assert_eq!(paged, whole, "pages of {order}");
            whole
        }
    };
    let cat = |parts: Vec<Vec<String>>| parts.concat();
    let points = walk(json!([{"customField": "points"}])).await;
    assert_eq!(points, cat(vec![vec![c.clone()], bd.clone(), vec![a.clone()], nulls.clone()]));
    let points = walk(json!([{"customField": "points", "direction": "DESC"}])).await;
    assert_eq!(points, cat(vec![vec![a.clone()], bd.clone(), vec![c.clone()], nulls.clone()]));
    // A second key breaks the tie (乙 was entered before 丁).
    let tie = walk(json!([{"customField": "points", "direction": "DESC"}, {"field": "CREATED_AT"}])).await;
    assert_eq!(tie[..4], [a.clone(), b.clone(), d.clone(), c.clone()]);
    let credit = walk(json!([{"customField": "credit"}])).await;
    assert_eq!(
        credit,
        cat(vec![vec![c.clone(), b.clone(), a.clone()], by_id(vec![words.clone(), d.clone(), e.clone()])])
    );
    let since = walk(json!([{"customField": "since", "direction": "DESC"}])).await;
    assert_eq!(since[..2], [b.clone(), a.clone()]);
    let note = walk(json!([{"customField": "note"}, {"field": "NAME"}])).await;
    assert_eq!(note[..2], [b.clone(), a.clone()]);
    // Money compares as money on both stores, in filters too: the words are no value.
    let resp = app
        .gql(
            Some(&admin),
            "query($f:CustomerFilter){customers(filter:$f){nodes{id}}}",
            json!({"f": {"customFields": [{"key": "credit", "lte": "0"}]}}),
        )
        .await;
    assert_eq!(resp["data"]["customers"]["nodes"], json!([{"id": c}]), "{resp}");
    let resp = app
        .gql(
            Some(&admin),
            "query($f:CustomerFilter){customers(filter:$f){nodes{id}}}",
            json!({"f": {"customFields": [{"key": "since", "gte": "2024-01-01"}]}}),
        )
        .await;
    assert_eq!(resp["data"]["customers"]["nodes"], json!([{"id": b}]), "{resp}");
    // Numbers whose decimal form does not survive every JSON parser: ties still page
    // exactly (the cursor carries the number's bits).
    let big = [
        person("大一", json!({"points": 9007199254740991_i64, "credit": "97879578463100.45"})).await,
        person("大二", json!({"points": 9007199254740991_i64, "credit": "97879578463100.45"})).await,
    ];
    // (Ascending, below them: 丙 乙 丁 甲 by points, 丙 乙 甲 by credit.)
    for (key, below) in [("points", 4), ("credit", 3)] {
        for direction in ["ASC", "DESC"] {
            let order = walk(json!([{"customField": key, "direction": direction}])).await;
            let at = if direction == "DESC" { 0 } else { below };
            assert_eq!(by_id(order[at..at + 2].to_vec()), by_id(big.to_vec()), "{key} {direction}");
        }
    }

    // A sales rep sorts what it may read (its own and its pool: the parts read as one).
    let east = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let mine = |name: &str, points: i64| {
        let (app, rep) = (&app, rep.clone());
        let input = json!({"name": name, "kind": "INDIVIDUAL", "customFields": {"points": points}});
        async move { app.create_customer(&rep, input).await["id"].clone() }
    };
    let (low, high) = (mine("小", 10).await, mine("大", 90).await);
    let resp = app.gql(Some(&rep), q, json!({"o": [{"customField": "points", "direction": "DESC"}]})).await;
    assert_eq!(resp["data"]["customers"]["nodes"], json!([{"id": high}, {"id": low}]), "{resp}");

    // What cannot be sorted by is named; a cursor of one order serves no other.
    for (order, field) in [
        (json!([{"customField": "tags"}]), "orderBy.customField"),
        (json!([{"customField": "member"}]), "orderBy.customField"),
        (json!([{"customField": "nope"}]), "orderBy.customField"),
        (json!([{"field": "NAME", "customField": "points"}]), "orderBy"),
        (json!([{"direction": "DESC"}]), "orderBy"),
        (Value::Array(vec![json!({"field": "NAME"}); 6]), "orderBy"),
    ] {
        let resp = app.gql(Some(&admin), q, json!({"o": order})).await;
        assert_eq!(invalid_fields(&resp), [field], "{resp}");
    }
    let first = app.gql(Some(&admin), q, json!({"o": [{"customField": "points"}], "first": 1})).await;
    let cursor = first["data"]["customers"]["pageInfo"]["endCursor"].clone();
    let resp = app.gql(Some(&admin), q, json!({"o": [{"customField": "credit"}], "after": cursor})).await;
    assert_eq!(invalid_fields(&resp), ["after"], "{resp}");
    // A forged cursor putting text where the number is compared.
    use base64::Engine;
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor.as_str().unwrap()).unwrap();
    let mut forged: Value = serde_json::from_slice(&decoded).unwrap();
    forged["After"]["v"][0] = json!({"Text": "x"});
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let resp = app.gql(Some(&admin), q, json!({"o": [{"customField": "points"}], "after": forged})).await;
    assert_eq!(invalid_fields(&resp), ["after"], "{resp}");
}
