//! `crm demo` loads a coherent data set through the services, and scopes hold on it.
use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn demo_data_is_scoped_like_real_data() {
    let app = TestApp::spawn().await;
    let summary =
        service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 60, 7).await.expect("demo loads");
    assert_eq!(summary.customers, 60);
    // `crm demo` prints these: every login, with its role and department.
    assert_eq!(summary.logins.len(), summary.staff);
    let login = |email: &str| summary.logins.iter().find(|l| l.email == email).expect(email);
    assert_eq!(login("ma.chao@demo.crm").role, entity::enums::Role::Analyst);
    assert_eq!(login("wang.qiang@demo.crm").department, "华东大区");
    assert_eq!(login("api.partner@demo.crm").role, entity::enums::Role::Integration);
    assert!(summary.logins.iter().all(|l| !l.department.is_empty() && !l.name.is_empty()));
    assert!(
        service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 1, 7).await.is_err(),
        "a second load is refused"
    );

    let admin = app
        .ok(
            &app.admin_token,
            "{customers{totalCount} deals{totalCount} contacts{totalCount} departments{id name parentId}}",
            json!({}),
        )
        .await;
    assert_eq!(admin["customers"]["totalCount"], 60);
    assert_eq!(admin["deals"]["totalCount"], summary.deals);

    let password = service::demo::DEMO_PASSWORD;
    let manager = app.login("wang.qiang@demo.crm", password).await;
    let rep = app.login("chen.jie@demo.crm", password).await;
    let analyst = app.login("ma.chao@demo.crm", password).await;

    // the East manager sees the East region and its branches, nothing else
    let depts = admin["departments"].as_array().unwrap();
    let east = depts.iter().find(|d| d["name"] == "华东大区").unwrap()["id"].clone();
    let east_tree: Vec<_> =
        depts.iter().filter(|d| d["id"] == east || d["parentId"] == east).map(|d| d["id"].clone()).collect();
    let in_east = app
        .ok(
            &app.admin_token,
            "query($d:[ID!]){customers(filter:{departmentId:{in:$d}}){totalCount}}",
            json!({"d": east_tree}),
        )
        .await;
    let seen = app.ok(&manager, "{customers{totalCount}}", json!({})).await;
    assert_eq!(seen["customers"]["totalCount"], in_east["customers"]["totalCount"]);
    assert!(seen["customers"]["totalCount"].as_i64().unwrap() > 0);

    // a rep sees their own customers only
    let me = app.ok(&rep, "{me{id}}", json!({})).await;
    let own = app
        .ok(
            &app.admin_token,
            "query($o:ID!){customers(filter:{ownerId:{eq:$o}}){totalCount}}",
            json!({"o": me["me"]["id"]}),
        )
        .await;
    let seen = app.ok(&rep, "{customers{totalCount}}", json!({})).await;
    assert_eq!(seen, own);

    // the analyst reads no customer at all
    let seen = app.ok(&analyst, "{customers{totalCount} deals{totalCount}}", json!({})).await;
    assert_eq!(seen, json!({"customers": {"totalCount": 0}, "deals": {"totalCount": 0}}));
}
