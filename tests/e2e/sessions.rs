//! Sessions follow the user: revocation (`logoutEverywhere`, password change,
//! deactivation), refresh tokens, the actor cache across instances, login back-off.
use crate::helpers::*;
use crate::ws::{NEW_LEAD, next, ready, subscribe};
use serde_json::{Value, json};

const LOGIN: &str = "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken expiresAt refreshToken refreshExpiresAt user{id}}}";
const REFRESH: &str = "mutation($r:String!){refreshToken(refreshToken:$r){accessToken refreshToken}}";
const ME: &str = "{me{id}}";

async fn session(app: &TestApp, email: &str) -> Value {
    let resp = app.gql(None, LOGIN, json!({"e": email, "p": PASSWORD})).await;
    assert!(resp.get("errors").is_none(), "{resp}");
    resp["data"]["login"].clone()
}

fn postgres(app: &TestApp) -> bool {
    app.database_url.starts_with("postgres")
}

/// `logoutEverywhere`, a password change and a deactivation end every earlier token; before,
/// a token stayed good until it expired whatever happened to its user.
#[tokio::test]
async fn earlier_tokens_end_with_the_session() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东", None).await;
    let (rep, first) = app.create_user("rep@example.com", "SALES", &dept).await;
    let second = app.login("rep@example.com", PASSWORD).await;
    app.ok(&first, ME, json!({})).await;

    // Yourself, everywhere: both tokens end; a new login works.
    let out = app.ok(&first, "mutation{logoutEverywhere{id}}", json!({})).await;
    assert_eq!(out["logoutEverywhere"]["id"], rep.as_str());
    for token in [&first, &second] {
        assert_eq!(code(&app.gql(Some(token), ME, json!({})).await), "UNAUTHENTICATED");
    }
    let third = app.login("rep@example.com", PASSWORD).await;
    app.ok(&third, ME, json!({})).await;

    // Someone else: only admins.
    let (_, peer) = app.create_user("peer@example.com", "SALES", &dept).await;
    let named = "mutation($u:ID){logoutEverywhere(userId:$u){id}}";
    assert_eq!(code(&app.gql(Some(&peer), named, json!({"u": rep})).await), "FORBIDDEN");
    app.ok(&third, ME, json!({})).await;
    app.ok(&app.admin_token, named, json!({"u": rep})).await;
    assert_eq!(code(&app.gql(Some(&third), ME, json!({})).await), "UNAUTHENTICATED");

    // A new password ends the sessions of the old one.
    let fourth = app.login("rep@example.com", PASSWORD).await;
    let version =
        app.ok(&app.admin_token, "query($id:ID!){user(id:$id){version}}", json!({"id": rep})).await["user"]["version"]
            .clone();
    let update = "mutation($i:UpdateUserInput!){updateUser(input:$i){version}}";
    app.ok(&app.admin_token, update, json!({"i": {"id": rep, "version": version, "password": "another secret 42"}}))
        .await;
    assert_eq!(code(&app.gql(Some(&fourth), ME, json!({})).await), "UNAUTHENTICATED");
    let fifth = app.login("rep@example.com", "another secret 42").await;
    app.ok(&fifth, ME, json!({})).await;
}

/// Two browser tabs refreshing with the same token at once: within the grace every call
/// gets the same new pair, and that pair works; the same token after the grace ends the
/// login everywhere, as a reuse always did.
#[tokio::test]
async fn tabs_refreshing_at_once_share_one_new_pair() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东", None).await;
    let (rep, _) = app.create_user("rep@example.com", "SALES", &dept).await;
    let r1 = session(&app, "rep@example.com").await["refreshToken"].as_str().unwrap().to_string();
    const PAIR: &str =
        "mutation($r:String!){refreshToken(refreshToken:$r){accessToken expiresAt refreshToken refreshExpiresAt}}";
    let tabs = futures::future::join_all((0..3).map(|_| app.gql(None, PAIR, json!({"r": r1})))).await;
    let pairs: Vec<_> = tabs.iter().map(|r| r["data"]["refreshToken"].clone()).collect();
    for (tab, pair) in tabs.iter().zip(&pairs) {
        assert!(pair["refreshToken"].is_string(), "every tab's refresh succeeds: {tab}");
    }
    assert!(pairs.iter().all(|p| *p == pairs[0]), "one new pair for all three: {pairs:?}");
    assert_ne!(pairs[0]["refreshToken"], json!(r1));
    let access = pairs[0]["accessToken"].as_str().unwrap();
    app.ok(access, ME, json!({})).await;

    // After the grace, the old token again is a reuse: the family ends, the pair with it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let late = app.gql(None, PAIR, json!({"r": r1})).await;
    assert_eq!(code(&late), "UNAUTHENTICATED", "{late}");
    let next = app.gql(None, PAIR, json!({"r": pairs[0]["refreshToken"]})).await;
    assert_eq!(code(&next), "UNAUTHENTICATED", "the shared pair is revoked with its family: {next}");
    assert!(app.audit_count(&rep).await >= 1, "the reuse is audited");

    // The grace hands out a successor only while it is unused: once that one was
    // exchanged in turn, the first token again is a reuse even within the grace.
    let r = session(&app, "rep@example.com").await["refreshToken"].as_str().unwrap().to_string();
    let s = app.gql(None, PAIR, json!({"r": r})).await["data"]["refreshToken"]["refreshToken"].clone();
    let t = app.gql(None, PAIR, json!({"r": s})).await["data"]["refreshToken"]["refreshToken"].clone();
    assert!(t.is_string());
    let again = app.gql(None, PAIR, json!({"r": r})).await;
    assert_eq!(code(&again), "UNAUTHENTICATED", "{again}");
    assert_eq!(code(&app.gql(None, PAIR, json!({"r": t})).await), "UNAUTHENTICATED", "the family ended");
}

/// Refresh tokens: stored hashed, rotated on each use; using a rotated one again revokes
/// the family; logout, a password change or deactivation end them.
#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东", None).await;
    let (rep, _) = app.create_user("rep@example.com", "SALES", &dept).await;
    let login = session(&app, "rep@example.com").await;
    let r1 = login["refreshToken"].as_str().unwrap().to_string();
    assert!(r1.len() >= 40, "an opaque token of 256 random bits: {r1}");
    let access_exp = chrono::DateTime::parse_from_rfc3339(login["expiresAt"].as_str().unwrap()).unwrap();
    let refresh_exp = chrono::DateTime::parse_from_rfc3339(login["refreshExpiresAt"].as_str().unwrap()).unwrap();
    assert!(refresh_exp > access_exp + chrono::Duration::days(1), "refresh tokens outlive access tokens");

    // Stored as a digest only.
    use sea_orm::ConnectionTrait;
    let rows = app
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT token_hash FROM refresh_token".to_string(),
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let stored: String = row.try_get("", "token_hash").unwrap();
        assert!(!stored.contains(&r1) && !r1.contains(&stored), "the token itself is not stored");
    }

    // Rotation: a new pair; the new access token works.
    let resp = app.gql(None, REFRESH, json!({"r": r1})).await;
    let r2 = resp["data"]["refreshToken"]["refreshToken"].as_str().unwrap_or_else(|| panic!("{resp}")).to_string();
    assert_ne!(r1, r2);
    let access = resp["data"]["refreshToken"]["accessToken"].as_str().unwrap().to_string();
    app.ok(&access, ME, json!({})).await;

    // Reuse of the rotated token after the grace (2 s in tests): refused, and the family
    // is revoked (r2 dies too).
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let reuse = app.gql(None, REFRESH, json!({"r": r1})).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED", "{reuse}");
    assert_eq!(code(&app.gql(None, REFRESH, json!({"r": r2})).await), "UNAUTHENTICATED");
    assert!(app.audit_count(&rep).await >= 1);

    // Garbage and blanks: UNAUTHENTICATED, never a 500.
    for bad in ["", "rt_nope", &"x".repeat(5000)] {
        assert_eq!(code(&app.gql(None, REFRESH, json!({"r": bad})).await), "UNAUTHENTICATED");
    }

    // Logout ends this device's session only.
    let phone = session(&app, "rep@example.com").await["refreshToken"].as_str().unwrap().to_string();
    let laptop = session(&app, "rep@example.com").await["refreshToken"].as_str().unwrap().to_string();
    let out = app.gql(None, "mutation($r:String!){logout(refreshToken:$r)}", json!({"r": phone})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(code(&app.gql(None, REFRESH, json!({"r": phone})).await), "UNAUTHENTICATED");
    let resp = app.gql(None, REFRESH, json!({"r": laptop})).await;
    let laptop = resp["data"]["refreshToken"]["refreshToken"].as_str().unwrap_or_else(|| panic!("{resp}")).to_string();

    // Deactivation ends the rest.
    app.ok(&app.admin_token, "mutation($id:ID!){deactivateUser(id:$id){active}}", json!({"id": rep})).await;
    assert_eq!(code(&app.gql(None, REFRESH, json!({"r": laptop})).await), "UNAUTHENTICATED");
}

/// The actor is cached (no statement to authenticate a repeated caller), and a change made
/// on one instance reaches the others' caches and sockets at once (PostgreSQL).
#[tokio::test]
async fn the_actor_cache_follows_changes_on_every_instance() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东", None).await;
    let (rep, token) = app.create_user("rep@example.com", "SALES", &dept).await;
    app.ok(&token, ME, json!({})).await;
    let (_, statements) = app.counted(&token, ME, json!({})).await;
    assert_eq!(statements, 0, "`me` of a cached actor runs no SQL");

    // A change on this instance takes effect before its response.
    let update = "mutation($i:UpdateUserInput!){updateUser(input:$i){version}}";
    app.ok(&app.admin_token, update, json!({"i": {"id": rep, "version": 1, "role": "SERVICE"}})).await;
    assert_eq!(app.ok(&token, "{me{role}}", json!({})).await["me"]["role"], "SERVICE");

    // A subdepartment grows the subtree of a cached manager at once.
    let (_, boss) = app.create_user("boss@example.com", "MANAGER", &dept).await;
    let customers = "{customers{totalCount}}";
    assert_eq!(app.ok(&boss, customers, json!({})).await["customers"]["totalCount"], 0);
    let sub = app.create_department("上海", Some(&dept)).await;
    let (_, sub_rep) = app.create_user("sub@example.com", "SALES", &sub).await;
    app.create_customer(&sub_rep, json!({"name": "张三", "kind": "INDIVIDUAL", "phone": "13800138000"})).await;
    assert_eq!(app.ok(&boss, customers, json!({})).await["customers"]["totalCount"], 1);

    if !postgres(&app) {
        return; // several instances share one PostgreSQL, not one SQLite file
    }
    let other = app.another_instance(|_| {}).await;
    other.ok(&token, ME, json!({})).await; // now cached there
    let mut ws = ready(other.addr, &token).await;
    subscribe(&mut ws, "leads", NEW_LEAD).await;
    app.ok(&app.admin_token, "mutation($u:ID){logoutEverywhere(userId:$u){id}}", json!({"u": rep})).await;
    // The socket on the other instance closes now (its periodic re-check is 30 s away) ...
    assert_eq!(next(&mut ws).await, Err(4403));
    // ... and that instance's cache no longer serves the token.
    assert_eq!(code(&other.gql(Some(&token), ME, json!({})).await), "UNAUTHENTICATED");
}

/// Failed logins back off per account and per client address, across instances; before,
/// a script could try passwords as fast as argon2 allowed.
#[tokio::test]
async fn logins_back_off_per_account_and_address() {
    let app =
        TestApp::spawn_with(|c| c.login_limits = service::access::throttle::LoginLimits { account: 3, address: 8 })
            .await;
    let dept = app.create_department("华东", None).await;
    app.create_user("rep@example.com", "SALES", &dept).await;
    app.create_user("peer@example.com", "SALES", &dept).await;
    let attempt = |email: &str, password: &str| {
        app.client
            .post(app.url("/graphql"))
            .json(&json!({"query": LOGIN, "variables": {"e": email, "p": password}}))
            .send()
    };
    for n in 0..3 {
        let resp: Value = attempt("rep@example.com", &format!("wrong {n} guess")).await.unwrap().json().await.unwrap();
        assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    }
    // The account is blocked, even for the right password, with a 429 and Retry-After.
    let refused = attempt("rep@example.com", PASSWORD).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry);
    // Another account from the same address still logs in.
    app.login("peer@example.com", PASSWORD).await;

    // The counters live in the database: another instance refuses too.
    let other = app
        .another_instance(|c| c.login_limits = service::access::throttle::LoginLimits { account: 3, address: 8 })
        .await;
    let resp = other.gql(None, LOGIN, json!({"e": "rep@example.com", "p": PASSWORD})).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");

    // Spraying one guess over many accounts trips the address limit (3 + 5 failures).
    for n in 0..5 {
        let resp = app.gql(None, LOGIN, json!({"e": format!("u{n}@example.com"), "p": "wrong guess 1"})).await;
        assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    }
    let resp = app.gql(None, LOGIN, json!({"e": "peer@example.com", "p": PASSWORD})).await;
    assert_eq!(code(&resp), "RATE_LIMITED", "{resp}");
}
