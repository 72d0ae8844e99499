//! Duplicate candidates before entry: ranked matches, and the ownership rule for records
//! outside the caller's scope.
use crate::helpers::*;
use serde_json::{Value, json};

const CHECK: &str = "query($i:DuplicateCheckInput!){duplicateCandidates(input:$i){score reasons department \
                     customer{id name}}}";

async fn check(app: &TestApp, token: &str, input: Value) -> Vec<Value> {
    app.ok(token, CHECK, json!({"i": input})).await["duplicateCandidates"].as_array().unwrap().clone()
}

#[tokio::test]
async fn candidates_rank_matches_and_hide_what_the_caller_may_not_read() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, other) = app.create_user("west@example.com", "SALES", &west).await;
    let (_, analyst) = app.create_user("bi@example.com", "ANALYST", &east).await;
    let org = app
        .create_customer(
            &rep,
            json!({"name": "上海恒达贸易有限公司", "kind": "ORGANIZATION", "phone": "021-61230000",
                                      "email": "info@hengda.example"}),
        )
        .await;
    let person = app
        .create_customer(&rep, json!({"name": "张伟", "kind": "INDIVIDUAL", "phone": "13800001111", "region": "上海"}))
        .await;
    app.ok(
        &rep,
        "mutation($i:CreateContactInput!){createContact(input:$i){id}}",
        json!({"i": {"customerId": org["id"], "name": "李采购", "mobile": "139 0000 2222"}}),
    )
    .await;

    // The same phone in another spelling: the key a save would refuse.
    let same = check(&app, &rep, json!({"kind": "INDIVIDUAL", "phone": "+86 138-0000-1111"})).await;
    assert_eq!(same.len(), 1);
    assert_eq!(same[0]["reasons"], json!(["SAME_PHONE"]));
    assert_eq!(same[0]["score"], 1.0);
    assert_eq!(same[0]["customer"]["id"], person["id"]);
    assert_eq!(same[0]["department"], "华东");

    // A similar organization name, and the same e-mail on top.
    let near = check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "恒达贸易(上海)有限公司"})).await;
    assert_eq!(near.len(), 1, "{near:?}");
    assert_eq!(near[0]["reasons"], json!(["SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(near[0]["customer"]["name"], "上海恒达贸易有限公司");
    let both =
        check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "恒达贸易(上海)", "email": "INFO@hengda.example"}))
            .await;
    assert_eq!(both[0]["reasons"], json!(["SAME_EMAIL", "SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(both[0]["score"], 1.0);
    // Unrelated names are not candidates.
    assert!(check(&app, &rep, json!({"kind": "ORGANIZATION", "name": "北京华联商厦"})).await.is_empty());

    // People share names: the same name counts with the same region or number block.
    let namesake = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "region": "上海"})).await;
    assert_eq!(namesake[0]["reasons"], json!(["SAME_NAME_AND_REGION"]));
    let block = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "phone": "13800001199"})).await;
    assert_eq!(block[0]["reasons"], json!(["SAME_NAME_AND_PHONE_PREFIX"]));
    assert!(check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "张伟", "region": "北京"})).await.is_empty());

    // The phone of a contact of another customer.
    let via = check(&app, &rep, json!({"kind": "INDIVIDUAL", "name": "李先生", "phone": "13900002222"})).await;
    assert_eq!(via[0]["reasons"], json!(["CONTACT_PHONE"]));
    assert_eq!(via[0]["customer"]["id"], org["id"]);

    // Editing a record does not find itself.
    let own = check(&app, &rep, json!({"kind": "INDIVIDUAL", "phone": "13800001111", "excludeId": person["id"]})).await;
    assert!(own.is_empty());

    // Outside the caller's scope: that it exists and who owns it, nothing of the record.
    let hidden = app
        .gql(
            Some(&other),
            CHECK,
            json!({"i": {"kind": "ORGANIZATION", "name": "恒达贸易(上海)有限公司", "phone": "021 6123 0000"}}),
        )
        .await;
    let c = &hidden["data"]["duplicateCandidates"][0];
    assert_eq!(c["reasons"], json!(["SAME_PHONE", "SIMILAR_ORGANIZATION_NAME"]));
    assert_eq!(c["customer"], Value::Null);
    assert_eq!(c["department"], "华东");
    let text = hidden.to_string();
    assert!(!text.contains("上海恒达贸易") && !text.contains(org["id"].as_str().unwrap()), "{text}");

    // A role that neither enters nor reads customers may not probe.
    let resp = app.gql(Some(&analyst), CHECK, json!({"i": {"kind": "INDIVIDUAL", "phone": "13800001111"}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
}

const MERGE: &str = "mutation($s:ID!,$m:[ID!]!,$c:[MergeFieldChoice!]=[],$d:Boolean=false,$v:Int){mergeCustomers(\
                     survivorId:$s, mergedIds:$m, fieldChoices:$c, dryRun:$d, survivorVersion:$v){dryRun mergedIds customer{id name phone email address \
                     version contacts{totalCount} deals{totalCount} interactions{totalCount}} moved{contacts deals \
                     interactions feedback reminders classificationHistory consents}}}";

#[tokio::test]
async fn merging_moves_everything_to_the_survivor_in_one_go() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, a) = app.create_user("a@example.com", "SALES", &east).await;
    let (_, b) = app.create_user("b@example.com", "SALES", &east).await;
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let (_, far) = app.create_user("far@example.com", "MANAGER", &west).await;
    let survivor = app
        .create_customer(
            &a,
            json!({"name": "恒达贸易有限公司", "kind": "ORGANIZATION", "phone": "021-61230000", "address": "上海A路"}),
        )
        .await;
    let dup = app
        .create_customer(
            &b,
            json!({"name": "恒达贸易(上海)", "kind": "ORGANIZATION", "phone": "021-61239999",
                                    "email": "buy@hengda.example", "address": "上海B路"}),
        )
        .await;
    for (token, c, who) in [(&a, &survivor, "甲"), (&b, &dup, "乙")] {
        app.ok(
            token,
            "mutation($c:ID!,$n:String!){createContact(input:{customerId:$c, name:$n}){id}}",
            json!({"c": c["id"], "n": who}),
        )
        .await;
        app.ok(
            token,
            "mutation($c:ID!){createDeal(input:{customerId:$c,title:\"订单\",amount:\"100\"}){id}}",
            json!({"c": c["id"]}),
        )
        .await;
    }
    app.ok(
        &b,
        "mutation($c:ID!){createInteraction(input:{customerId:$c, kind:VISIT, summary:\"拜访\"}){id}}",
        json!({"c": dup["id"]}),
    )
    .await;
    let vars = |dry: bool| {
        json!({"s": survivor["id"], "m": [dup["id"]], "d": dry, "c": [
            {"field": "EMAIL", "fromId": dup["id"]},
            {"field": "ADDRESS", "fromId": dup["id"]},
            {"field": "PHONE", "fromId": dup["id"]}
        ]})
    };

    // A record the caller cannot read does not exist for the merge either; a sales rep
    // may not delete, so may not merge even their own; another department sees nothing.
    assert_eq!(code(&app.gql(Some(&a), MERGE, vars(true)).await), "NOT_FOUND");
    let mine = app.create_customer(&a, json!({"name": "恒达", "kind": "ORGANIZATION"})).await;
    let resp = app.gql(Some(&a), MERGE, json!({"s": survivor["id"], "m": [mine["id"]], "d": true})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    assert_eq!(code(&app.gql(Some(&far), MERGE, vars(true)).await), "NOT_FOUND");
    let resp = app.gql(Some(&boss), MERGE, json!({"s": survivor["id"], "m": [survivor["id"]]})).await;
    assert_eq!(invalid_fields(&resp), ["mergedIds"], "{resp}");
    let elsewhere = json!({"s": survivor["id"], "m": [dup["id"]], "c": [{"field": "EMAIL", "fromId": mine["id"]}]});
    let resp = app.gql(Some(&boss), MERGE, elsewhere).await;
    assert_eq!(invalid_fields(&resp), ["fieldChoices[0].fromId"], "{resp}");

    // The dry run shows the merged record and what would move, and writes nothing.
    let dry = app.ok(&boss, MERGE, vars(true)).await["mergeCustomers"].clone();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["customer"]["email"], "buy@hengda.example");
    assert_eq!(dry["customer"]["address"], "上海B路");
    assert_eq!(dry["moved"]["contacts"], 1);
    assert_eq!(dry["moved"]["deals"], 1);
    assert_eq!(dry["moved"]["interactions"], 1);
    let read = "query($id:ID!){customer(id:$id){email phone version contacts{totalCount}}}";
    let untouched = app.ok(&boss, read, json!({"id": survivor["id"]})).await;
    assert_eq!(untouched["customer"]["email"], Value::Null);
    assert_eq!(untouched["customer"]["contacts"]["totalCount"], 1);
    assert_eq!(app.ok(&boss, read, json!({"id": dup["id"]})).await["customer"]["contacts"]["totalCount"], 1);

    // A survivor changed since the dry run: the merge the caller reviewed is not the one
    // that would run.
    let seen = dry["customer"]["version"].as_i64().unwrap();
    let edit = "mutation($i:UpdateCustomerInput!){updateCustomer(input:$i){version}}";
    app.ok(&boss, edit, json!({"i": {"id": survivor["id"], "version": seen, "region": "上海"}})).await;
    let mut stale = vars(false);
    stale["v"] = json!(seen);
    let resp = app.gql(Some(&boss), MERGE, stale.clone()).await;
    assert_eq!(code(&resp), "CONFLICT", "{resp}");
    stale["v"] = json!(seen + 1);

    // The real run: the survivor takes the chosen fields (the duplicate's phone too: its
    // keys are free once it is in the trash) and every record.
    let done = app.ok(&boss, MERGE, stale).await["mergeCustomers"].clone();
    assert_eq!(done["dryRun"], false);
    let merged = &done["customer"];
    assert_eq!(merged["name"], "恒达贸易有限公司");
    assert_eq!(merged["phone"], "021-61239999");
    assert_eq!(merged["address"], "上海B路");
    assert_eq!(merged["contacts"]["totalCount"], 2);
    assert_eq!(merged["deals"]["totalCount"], 2);
    assert_eq!(merged["interactions"]["totalCount"], 1);
    let gone = app.gql(Some(&boss), read, json!({"id": dup["id"]})).await;
    assert_eq!(code(&gone), "NOT_FOUND", "{gone}");
    let trash = app.ok(&boss, "{customers(deleted:true){nodes{id mergedInto}}}", json!({})).await;
    assert_eq!(trash["customers"]["nodes"], json!([{"id": dup["id"], "mergedInto": survivor["id"]}]));
    let resp = app.gql(Some(&boss), "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": dup["id"]})).await;
    assert_eq!(code(&resp), "CONFLICT", "a merged record cannot come back: {resp}");
    // Both records keep their audit trail, with the merge on it.
    assert!(app.audit_count(dup["id"].as_str().unwrap()).await >= 2);
    assert!(app.audit_count(survivor["id"].as_str().unwrap()).await >= 3);
}

#[tokio::test]
async fn reported_duplicates_wait_for_a_manager() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, colleague) = app.create_user("col@example.com", "SALES", &east).await;
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let (_, far) = app.create_user("far@example.com", "MANAGER", &west).await;
    let mine = app.create_customer(&rep, json!({"name": "王芳", "kind": "INDIVIDUAL", "phone": "13800005555"})).await;
    let theirs = app.create_customer(&colleague, json!({"name": "王芳(重复)", "kind": "INDIVIDUAL"})).await;
    let report = "mutation($c:ID!,$d:ID!,$n:String){reportDuplicate(customerId:$c, duplicateOfId:$d, note:$n){id status \
                  note customer{name} duplicateOf{name}}}";
    let vars = json!({"c": theirs["id"], "d": mine["id"], "n": "同一个人,同事重复录入"});

    // One cannot report what one cannot read: the colleague's own customer is not the rep's.
    let resp = app.gql(Some(&rep), report, vars.clone()).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    // In the department's pool it is readable: now the rep can report it.
    app.ok(&admin, "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}", json!({"id": theirs["id"]})).await;
    let first = app.ok(&rep, report, vars.clone()).await["reportDuplicate"].clone();
    assert_eq!(first["status"], "OPEN");
    assert_eq!(first["duplicateOf"]["name"], "王芳");
    let again = app.ok(&rep, report, vars.clone()).await["reportDuplicate"].clone();
    assert_eq!(again["id"], first["id"], "an open pair is reported once");

    // The queue belongs to those who can merge, within their reach.
    let queue = "query($s:DuplicateReportStatus!){duplicateReports(status:$s){totalCount nodes{id status note}}}";
    assert_eq!(code(&app.gql(Some(&rep), queue, json!({"s": "OPEN"})).await), "FORBIDDEN");
    assert_eq!(app.ok(&far, queue, json!({"s": "OPEN"})).await["duplicateReports"]["totalCount"], 0);
    let open = app.ok(&boss, queue, json!({"s": "OPEN"})).await;
    assert_eq!(open["duplicateReports"]["nodes"][0]["id"], first["id"]);

    // Dismissed once, and only once.
    let dismiss = "mutation($id:ID!){dismissDuplicateReport(id:$id, resolution:\"不是同一人\"){status resolution}}";
    let dismissed = app.ok(&boss, dismiss, json!({"id": first["id"]})).await;
    assert_eq!(dismissed["dismissDuplicateReport"]["status"], "DISMISSED");
    assert_eq!(code(&app.gql(Some(&boss), dismiss, json!({"id": first["id"]})).await), "CONFLICT");
    assert_eq!(code(&app.gql(Some(&far), dismiss, json!({"id": first["id"]})).await), "NOT_FOUND");

    // Reported again, then settled by a merge.
    let second = app.ok(&rep, report, vars).await["reportDuplicate"].clone();
    assert_ne!(second["id"], first["id"]);
    let resp = app.gql(Some(&rep), report, json!({"c": mine["id"], "d": mine["id"]})).await;
    assert_eq!(invalid_fields(&resp), ["duplicateOfId"], "{resp}");
    app.ok(&boss, MERGE, json!({"s": mine["id"], "m": [theirs["id"]]})).await;
    let merged = app.ok(&boss, queue, json!({"s": "MERGED"})).await;
    assert_eq!(
        merged["duplicateReports"]["nodes"],
        json!([{"id": second["id"], "status": "MERGED", "note": "同一个人,同事重复录入"}])
    );
    let open = app.ok(&boss, queue, json!({"s": "OPEN"})).await;
    assert_eq!(open["duplicateReports"]["totalCount"], 0);
}

/// After review: what a merge must refuse or fold, and what a probe must not confirm.
#[tokio::test]
async fn merges_respect_holds_kinds_and_consents() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("西部", None).await;
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let (_, far) = app.create_user("far@example.com", "MANAGER", &west).await;
    let person = |name: &str, phone: &str| json!({"name": name, "kind": "INDIVIDUAL", "phone": phone});
    let a = app.create_customer(&boss, person("甲", "13800007001")).await;
    let b = app.create_customer(&boss, person("乙", "13800007002")).await;
    let c = app.create_customer(&boss, person("丙", "13800007003")).await;
    let org = app.create_customer(&boss, json!({"name": "丁公司", "kind": "ORGANIZATION"})).await;

    // A person and an organization are not one customer.
    let resp = app.gql(Some(&boss), MERGE, json!({"s": org["id"], "m": [a["id"]]})).await;
    assert_eq!(invalid_fields(&resp), ["mergedIds"], "{resp}");
    // Records under a legal hold stay where they are.
    let hold = "mutation($c:ID!,$h:Boolean!){setLegalHold(customerId:$c, hold:$h, reason:\"诉讼\"){id}}";
    app.ok(&admin, hold, json!({"c": b["id"], "h": true})).await;
    assert_eq!(code(&app.gql(Some(&boss), MERGE, json!({"s": a["id"], "m": [b["id"]]})).await), "CONFLICT");
    app.ok(&admin, hold, json!({"c": b["id"], "h": false})).await;

    // Two merged customers with consent on one channel: one record for the survivor, and a
    // withdrawal on either side stands.
    let consent = "mutation($c:ID!,$g:Boolean!){setConsent(customerId:$c, channel:SMS, given:$g){given}}";
    app.ok(&boss, consent, json!({"c": b["id"], "g": true})).await;
    app.ok(&boss, consent, json!({"c": c["id"], "g": true})).await;
    app.ok(&boss, consent, json!({"c": c["id"], "g": false})).await;
    let dry = app.ok(&boss, MERGE, json!({"s": a["id"], "m": [b["id"], c["id"]], "d": true})).await;
    assert_eq!(dry["mergeCustomers"]["moved"]["consents"], 1, "the dry run counts what the merge does");
    let done = app.ok(&boss, MERGE, json!({"s": a["id"], "m": [b["id"], c["id"]]})).await;
    assert_eq!(done["mergeCustomers"]["moved"]["consents"], 1);
    let consents =
        app.ok(&boss, "query($id:ID!){customer(id:$id){consents{channel given}}}", json!({"id": a["id"]})).await;
    assert_eq!(consents["customer"]["consents"], json!([{"channel": "SMS", "given": false}]));

    // Another department can neither leave out nor locate a record by an id it cannot read.
    let probe = json!({"kind": "INDIVIDUAL", "phone": "13800007001"});
    let plain = check(&app, &far, probe.clone()).await;
    let mut excluded = probe.clone();
    excluded["excludeId"] = a["id"].clone();
    assert_eq!(check(&app, &far, excluded).await, plain);
    assert_eq!(plain.len(), 1);

    // The person's data export holds the records merged into theirs, with their audit.
    let export = app.ok(&admin, "mutation($c:ID!){exportPersonalData(customerId:$c)}", json!({"c": a["id"]})).await;
    let merged = export["exportPersonalData"]["merged_customers"].as_array().unwrap().clone();
    let mut ids: Vec<&str> = merged.iter().map(|m| m["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![b["id"].as_str().unwrap(), c["id"].as_str().unwrap()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "{export}");
    let audited = export["exportPersonalData"]["audit"].as_array().unwrap();
    assert!(audited.iter().any(|r| r["record_id"] == b["id"]), "the merged records' audit rows come along");

    // Erasing the person erases the records merged into theirs too (they sit in the trash).
    let erase = "mutation($c:ID!){erasePersonalData(customerId:$c, reason:\"本人要求删除 2026-11-24\"){name}}";
    app.ok(&admin, erase, json!({"c": a["id"]})).await;
    let trash = app.ok(&admin, "{customers(deleted:true){nodes{name phone}}}", json!({})).await;
    let nodes = trash["customers"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n["name"] == "[erased]" && n["phone"].is_null()), "{trash}");
}

/// A person entered twice gets two birthday greetings; merged, one (the other is
/// dismissed), and the care engine does not create it again.
#[tokio::test]
async fn a_merge_leaves_one_reminder_per_occasion() {
    let app = TestApp::spawn().await;
    let east = app.create_department("华东", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &east).await;
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let twice = |phone: &str| json!({"name": "李先生", "kind": "INDIVIDUAL", "phone": phone, "birthday": "1990-01-02"});
    let a = app.create_customer(&rep, twice("13700000001")).await;
    let b = app.create_customer(&rep, twice("13700000002")).await;
    for c in [&a, &b] {
        app.ok(
            &rep,
            "mutation($c:ID!){setConsent(customerId:$c, channel:SMS, given:true){given}}",
            json!({"c": c["id"]}),
        )
        .await;
    }
    let tick = chrono::NaiveDate::from_ymd_opt(2026, 12, 30).unwrap().and_hms_opt(2, 0, 0).unwrap().and_utc();
    app.care_tick(tick).await;
    let pending = "{myReminders(status:[PENDING], first:100){nodes{rule customerId}}}";
    let birthdays = |v: &Value| -> Vec<Value> {
        v["myReminders"]["nodes"].as_array().unwrap().iter().filter(|r| r["rule"] == "BIRTHDAY").cloned().collect()
    };
    assert_eq!(birthdays(&app.ok(&rep, pending, json!({})).await).len(), 2);

    app.ok(&boss, MERGE, json!({"s": a["id"], "m": [b["id"]]})).await;
    let after = birthdays(&app.ok(&rep, pending, json!({})).await);
    assert_eq!(after, vec![json!({"rule": "BIRTHDAY", "customerId": a["id"]})]);
    app.care_tick(tick + chrono::Duration::hours(1)).await;
    assert_eq!(birthdays(&app.ok(&rep, pending, json!({})).await).len(), 1, "not created again");
}
