//! API keys for integration partners: made by administrators within their own grants,
//! shown once, stored hashed, acting through the same actor and scope code as staff on
//! HTTP and WebSocket, revoked on every instance at once.
use crate::helpers::*;
use crate::ws::{NEW_LEAD, connect_to, next, send, subscribe};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const CREATE: &str = "mutation($i:CreateApiKeyInput!){createApiKey(input:$i){secret apiKey{id prefix role
    grants{resource action scope includePool} account{id serviceAccount} department{id} expiresAt lastUsedAt}}}";
const ME: &str = "{me{id serviceAccount}}";
const KEYS: &str = "query($r:Boolean!=false){apiKeys(includeRevoked:$r){nodes{id name lastUsedAt revokedAt}}}";
const REVOKE: &str = "mutation($id:ID!){revokeApiKey(id:$id){id revokedAt}}";
const CUSTOMERS: &str = "{customers(first:100){nodes{id}}}";

fn postgres(app: &TestApp) -> bool {
    app.database_url.starts_with("postgres")
}

/// Makes a key; returns (the key's record, its secret).
async fn make(app: &TestApp, token: &str, input: Value) -> (Value, String) {
    let data = app.ok(token, CREATE, json!({"i": input})).await;
    let made = &data["createApiKey"];
    (made["apiKey"].clone(), made["secret"].as_str().unwrap().to_string())
}

/// A GraphQL request with the key in `X-Api-Key` instead of `Authorization`.
async fn with_header(app: &TestApp, key: &str, query: &str) -> Value {
    let req = app.client.post(app.url("/graphql")).header("x-api-key", key).json(&json!({"query": query}));
    req.send().await.unwrap().json().await.unwrap()
}

fn ids(resp: &Value) -> Vec<String> {
    assert!(resp.get("errors").is_none(), "{resp}");
    let mut v: Vec<String> = resp["data"]["customers"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_key_is_shown_once_and_acts_as_its_own_account() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let (key, secret) =
        make(&app, &admin, json!({"name": "官网线索", "role": "INTEGRATION", "departmentId": east})).await;
    let prefix = key["prefix"].as_str().unwrap();
    assert!(prefix.starts_with("crm_") && prefix.len() == 12, "{key}");
    assert!(secret.starts_with(&format!("{prefix}_")) && secret.len() > 50, "{secret}");
    assert_eq!(key["role"], "INTEGRATION");
    assert_eq!(key["department"]["id"], json!(east));
    assert_eq!(key["account"]["serviceAccount"], true);
    assert_eq!(key["lastUsedAt"], Value::Null);
    assert!(
        key["grants"].as_array().unwrap().iter().any(|g| g
            == &json!(
        {"resource": "CUSTOMER", "action": "CREATE", "scope": "OWN", "includePool": false})),
        "{key}"
    );
    // Only its SHA-256 is stored; no answer holds the secret again.
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(Statement::from_string(backend, "SELECT secret_hash FROM api_key"))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get("", "secret_hash").unwrap();
    assert_eq!(stored.len(), 64);
    assert!(!stored.contains(&secret[prefix.len() + 1..]));
    let listed = app.ok(&admin, KEYS, json!({})).await;
    assert!(!listed.to_string().contains(&secret[prefix.len() + 1..]));
    let audit = app.ok(&admin, "{auditLog(first:100){nodes{entity oldValues newValues}}}", json!({})).await;
    assert!(!audit.to_string().contains(&stored) && !audit.to_string().contains(&secret), "{audit}");

    // The key works as a bearer token and in X-Api-Key, as its own account.
    let account = key["account"]["id"].clone();
    let me = app.ok(&secret, ME, json!({})).await;
    assert_eq!(me["me"], json!({"id": account, "serviceAccount": true}));
    let me = with_header(&app, &secret, ME).await;
    assert_eq!(me["data"]["me"]["id"], account, "{me}");
    // What it creates it owns (a partner's lead), in its department.
    let lead = app.create_customer(&secret, json!({"name": "线索公司", "kind": "ORGANIZATION"})).await;
    assert_eq!(lead["ownerId"], account);
    let listed = app.ok(&admin, KEYS, json!({})).await;
    assert!(listed["apiKeys"]["nodes"][0]["lastUsedAt"].is_string(), "{listed}");

    // It is not staff: not among the users, cannot log in, cannot be given customers,
    // learns only that a duplicate exists.
    let users = app.ok(&admin, "{users(first:100){nodes{id}}}", json!({})).await;
    assert!(!users.to_string().contains(account.as_str().unwrap()), "{users}");
    let login = "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}";
    let email = format!("{prefix}@api-keys.invalid");
    assert_eq!(code(&app.gql(None, login, json!({"e": email, "p": ""})).await), "UNAUTHENTICATED");
    let mine = app.create_customer(&admin, json!({"name": "老客户", "kind": "ORGANIZATION"})).await;
    let assign = "mutation($id:ID!,$o:ID){assignCustomer(id:$id,ownerId:$o){id}}";
    let resp = app.gql(Some(&admin), assign, json!({"id": mine["id"], "o": account})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    let resp = app
        .gql(
            Some(&secret),
            "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}",
            json!({"i": {"name": "老客户", "kind": "ORGANIZATION"}}),
        )
        .await;
    assert_eq!(code(&resp), "DUPLICATE", "{resp}");
    assert_eq!(resp["errors"][0]["extensions"]["department"], Value::Null, "{resp}");
    let deactivate = "mutation($id:ID!){deactivateUser(id:$id){id}}";
    assert_eq!(code(&app.gql(Some(&admin), deactivate, json!({"id": account})).await), "NOT_FOUND");

    // A key makes no keys, whatever its grants.
    let (_, admin_key) = make(&app, &admin, json!({"name": "管理", "role": "ADMIN"})).await;
    let resp = app.gql(Some(&admin_key), CREATE, json!({"i": {"name": "x", "role": "SALES"}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    assert_eq!(code(&app.gql(Some(&admin_key), KEYS, json!({})).await), "FORBIDDEN");

    // Keys that are not: 401 UNAUTHENTICATED, one message for unknown and malformed.
    for bad in [format!("{prefix}_{}", "A".repeat(43)), "crm_".into(), format!("{secret}x")] {
        let resp = app.gql(Some(&bad), ME, json!({})).await;
        assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    }
    let resp = with_header(&app, &admin, ME).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED", "a JWT is no API key: {resp}");
}

#[tokio::test]
async fn a_key_never_reaches_further_than_its_maker() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let east = app.create_department("华东", None).await;
    let west = app.create_department("华西", None).await;
    let (_, east_rep) = app.create_user("east@example.com", "SALES", &east).await;
    let (_, west_rep) = app.create_user("west@example.com", "SALES", &west).await;
    let e1 = app.create_customer(&east_rep, json!({"name": "东一", "kind": "ORGANIZATION"})).await["id"].clone();
    let w1 = app.create_customer(&west_rep, json!({"name": "西一", "kind": "ORGANIZATION"})).await["id"].clone();

    // Explicit grants: reads east's customers, nothing else.
    let grants = json!([{"resource": "CUSTOMER", "action": "READ", "scope": "DEPARTMENT"}]);
    let (key, reader) = make(&app, &admin, json!({"name": "BI 华东", "grants": grants, "departmentId": east})).await;
    assert_eq!(key["role"], "INTEGRATION");
    assert_eq!(ids(&app.gql(Some(&reader), CUSTOMERS, json!({})).await), vec![e1.as_str().unwrap().to_string()]);
    let resp = app.gql(Some(&reader), &format!("{{customer(id:\"{}\"){{id}}}}", w1.as_str().unwrap()), json!({})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");
    let resp = app
        .gql(
            Some(&reader),
            "mutation($i:CreateCustomerInput!){createCustomer(input:$i){id}}",
            json!({"i": {"name": "新", "kind": "ORGANIZATION"}}),
        )
        .await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");

    // Every bad field at once.
    let resp = app
        .gql(
            Some(&admin),
            CREATE,
            json!({"i": {"name": " ", "departmentId": "00000000-0000-0000-0000-000000000000",
            "expiresAt": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(invalid_fields(&resp), ["name", "departmentId", "expiresAt", "role"], "{resp}");
    let twice = json!([{"resource": "CUSTOMER", "action": "READ", "scope": "OWN"},
                       {"resource": "CUSTOMER", "action": "READ", "scope": "ALL"},
                       {"resource": "DEAL_AMOUNT", "action": "UPDATE", "scope": "ALL"}]);
    let resp = app.gql(Some(&admin), CREATE, json!({"i": {"name": "x", "grants": twice}})).await;
    assert_eq!(invalid_fields(&resp), ["grants", "grants"], "{resp}");
    let far = (chrono::Utc::now() + chrono::Duration::days(4 * 366)).to_rfc3339();
    let resp = app.gql(Some(&admin), CREATE, json!({"i": {"name": "x", "role": "SALES", "expiresAt": far}})).await;
    assert_eq!(invalid_fields(&resp), ["expiresAt"], "{resp}");
    let resp = app.gql(Some(&admin), CREATE, json!({"i": {"name": "x", "role": "SALES", "grants": grants}})).await;
    assert_eq!(invalid_fields(&resp), ["role"], "{resp}");

    // A manager who may administer users makes keys within its own grants and department.
    let (_, manager) = app.create_user("boss@example.com", "MANAGER", &east).await;
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    for action in ["CREATE", "READ"] {
        app.ok(&admin, set, json!({"i": {"role": "MANAGER", "resource": "USER", "action": action, "scope": "ALL"}}))
            .await;
    }
    let wide = json!([{"resource": "CUSTOMER", "action": "READ", "scope": "ALL"},
                      {"resource": "DEAL", "action": "READ", "scope": "DEPARTMENT"}]);
    let resp = app.gql(Some(&manager), CREATE, json!({"i": {"name": "x", "grants": wide}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("CUSTOMER READ ALL") && !message.contains("DEAL"), "{message}");
    let resp = app.gql(Some(&manager), CREATE, json!({"i": {"name": "x", "role": "ADMIN"}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");
    let resp =
        app.gql(Some(&manager), CREATE, json!({"i": {"name": "x", "grants": grants, "departmentId": west}})).await;
    assert_eq!(code(&resp), "FORBIDDEN", "another department's customers: {resp}");
    let (_, narrow) = make(&app, &manager, json!({"name": "华东 BI", "grants": grants})).await;
    assert_eq!(ids(&app.gql(Some(&narrow), CUSTOMERS, json!({})).await), vec![e1.as_str().unwrap().to_string()]);

    // A key copied its role's grants: widening the role later does not widen the key.
    let (key, sales_key) = make(&app, &admin, json!({"name": "销售工具", "role": "SALES", "departmentId": east})).await;
    let before = key["grants"].clone();
    app.ok(&admin, set, json!({"i": {"role": "SALES", "resource": "CUSTOMER", "action": "READ", "scope": "ALL"}}))
        .await;
    let again = app
        .ok(
            &admin,
            "query($id:ID!){apiKey(id:$id){grants{resource action scope includePool}}}",
            json!({"id": key["id"]}),
        )
        .await;
    assert_eq!(again["apiKey"]["grants"], before);
    assert!(ids(&app.gql(Some(&sales_key), CUSTOMERS, json!({})).await).is_empty(), "its own and its pool only");
    assert_eq!(ids(&app.gql(Some(&west_rep), CUSTOMERS, json!({})).await).len(), 2, "the role did widen");
}

#[tokio::test]
async fn revoking_a_key_takes_effect_on_every_instance_at_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let (key, secret) = make(&app, &admin, json!({"name": "合作伙伴", "role": "INTEGRATION"})).await;
    // A second instance where the key is cached and holds a WebSocket (several instances
    // share one PostgreSQL, not one SQLite file).
    let other = if postgres(&app) { Some(app.another_instance(|_| {}).await) } else { None };
    let there = other.as_ref().unwrap_or(&app);
    there.ok(&secret, ME, json!({})).await;
    app.ok(&secret, ME, json!({})).await;
    let mut ws = connect_to(there.addr).await;
    send(&mut ws, json!({"type": "connection_init", "payload": {"apiKey": secret}})).await;
    assert_eq!(next(&mut ws).await, Ok(json!({"type": "connection_ack"})));
    subscribe(&mut ws, "leads", NEW_LEAD).await;

    let revoked = app.ok(&admin, REVOKE, json!({"id": key["id"]})).await;
    let at = revoked["revokeApiKey"]["revokedAt"].clone();
    assert!(at.is_string());
    assert_eq!(next(&mut ws).await, Err(4403));
    for instance in [&app, there] {
        let resp = instance.gql(Some(&secret), ME, json!({})).await;
        assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    }
    let mut ws = connect_to(there.addr).await;
    send(&mut ws, json!({"type": "connection_init", "payload": {"apiKey": secret}})).await;
    assert_eq!(next(&mut ws).await, Err(4403));
    // Revoking again changes nothing; the list hides revoked keys unless asked.
    let again = app.ok(&admin, REVOKE, json!({"id": key["id"]})).await;
    assert_eq!(again["revokeApiKey"]["revokedAt"], at);
    assert_eq!(app.ok(&admin, KEYS, json!({})).await["apiKeys"]["nodes"], json!([]));
    let all = app.ok(&admin, KEYS, json!({"r": true})).await;
    assert_eq!(all["apiKeys"]["nodes"][0]["revokedAt"], at);
    let resp = app.gql(Some(&admin), REVOKE, json!({"id": "00000000-0000-0000-0000-000000000000"})).await;
    assert_eq!(code(&resp), "NOT_FOUND", "{resp}");

    // An expiring key works until its time, then not (cached or not).
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, brief) = make(&app, &admin, json!({"name": "临时", "role": "INTEGRATION", "expiresAt": soon})).await;
    app.ok(&brief, ME, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let resp = app.gql(Some(&brief), ME, json!({})).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
    assert!(resp["errors"][0]["message"].as_str().unwrap().contains("expired"), "{resp}");
}

/// What a reviewer found keys could do as a person's stand-in: administer users, take a
/// manager's reminders, keep a manager's visit standard, handle feedback, appear in the
/// staff report, keep their customers after revocation, revoke twice.
#[tokio::test]
async fn a_key_is_no_person() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let dept = app.create_department("华中", None).await;
    let (_, rep) = app.create_user("rep@example.com", "SALES", &dept).await;

    // User administration and settings changes are for people: dropped from a role's
    // copy, refused as explicit grants; a key needs some grant.
    let (key, admin_key) = make(&app, &admin, json!({"name": "ERP", "role": "ADMIN"})).await;
    let grants = key["grants"].as_array().unwrap();
    assert!(grants.iter().any(|g| g["resource"] == "USER" && g["action"] == "READ"), "{key}");
    assert!(!grants.iter().any(|g| g["resource"] == "USER" && g["action"] != "READ"), "{key}");
    assert!(!grants.iter().any(|g| g["resource"] == "SETTINGS" && g["action"] == "UPDATE"), "{key}");
    let create_user = "mutation($i:CreateUserInput!){createUser(input:$i){id}}";
    let shadow = json!({"i": {"email": "shadow@example.com", "name": "影子", "password": PASSWORD, "role": "ADMIN",
        "departmentId": dept}});
    assert_eq!(code(&app.gql(Some(&admin_key), create_user, shadow).await), "FORBIDDEN");
    let set = "mutation($i:RolePermissionInput!){setRolePermission(input:$i){scope}}";
    let widen = json!({"i": {"role": "SALES", "resource": "CUSTOMER", "action": "READ", "scope": "ALL"}});
    assert_eq!(code(&app.gql(Some(&admin_key), set, widen).await), "FORBIDDEN");
    let people = json!([{"resource": "USER", "action": "CREATE", "scope": "ALL"}]);
    let resp = app.gql(Some(&admin), CREATE, json!({"i": {"name": "x", "grants": people}})).await;
    assert_eq!(invalid_fields(&resp), ["grants"], "{resp}");
    let nothing = json!([{"resource": "CUSTOMER", "action": "READ", "scope": "NONE"}]);
    let resp = app.gql(Some(&admin), CREATE, json!({"i": {"name": "x", "grants": nothing}})).await;
    assert_eq!(invalid_fields(&resp), ["grants"], "{resp}");

    // A key with a manager's role is no manager: its visit keeps no standard and the
    // manager's reminders do not reach it.
    let (manager_key_record, manager_key) =
        make(&app, &admin, json!({"name": "巡店系统", "role": "MANAGER", "departmentId": dept})).await;
    let big = app.create_customer(&rep, json!({"name": "大客户公司", "kind": "ORGANIZATION"})).await;
    let today = chrono::Utc::now().date_naive();
    crate::care::won_deal(&app, big["id"].as_str().unwrap(), "100000.00", today, "设备").await;
    let visit = "mutation($c:ID!){createInteraction(input:{customerId:$c, kind:VISIT, summary:\"巡店\"}){id}}";
    app.ok(&manager_key, visit, json!({"c": big["id"]})).await;
    let compliance = app
        .ok(&admin, "{followUpCompliance{customers(first:10){nodes{expectations{role kind logged}}}}}", json!({}))
        .await;
    let expectations = &compliance["followUpCompliance"]["customers"]["nodes"][0]["expectations"];
    let manager_visits = expectations
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["role"] == "MANAGER" && e["kind"] == "VISIT")
        .unwrap_or_else(|| panic!("{compliance}"));
    assert_eq!(manager_visits["logged"], 0, "{compliance}");
    app.care_tick(crate::care::at(today + chrono::Duration::days(70), 2, 0)).await;
    assert!(crate::care::reminders(&app, &manager_key, &["PENDING"]).await.is_empty());

    // Not a feedback handler, not in the staff report.
    let feedback = "mutation($c:ID!,$h:ID){createFeedback(input:{customerId:$c,kind:COMPLAINT,channel:PHONE,
        content:\"慢\",handlerId:$h}){id}}";
    let account = manager_key_record["account"]["id"].clone();
    let resp = app.gql(Some(&admin), feedback, json!({"c": big["id"], "h": account})).await;
    assert_eq!(invalid_fields(&resp), ["handlerId"], "{resp}");
    let staff = app.ok(&admin, "{staffActivity(from:\"2020-01-01\", to:\"2099-12-31\"){name}}", json!({})).await;
    assert!(!staff.to_string().contains("API key"), "{staff}");

    // Revoking hands what the key entered to its department's pool; revocations racing
    // each other revoke once.
    let lead = app.create_customer(&manager_key, json!({"name": "巡店线索", "kind": "ORGANIZATION"})).await;
    let revokes = futures::future::join_all(
        (0..4).map(|_| app.gql(Some(&admin), REVOKE, json!({"id": manager_key_record["id"]}))),
    )
    .await;
    let at: Vec<&Value> = revokes.iter().map(|r| &r["data"]["revokeApiKey"]["revokedAt"]).collect();
    assert!(at.iter().all(|t| t.is_string() && *t == at[0]), "{revokes:?}");
    assert_eq!(app.audit_count(manager_key_record["id"].as_str().unwrap()).await, 2, "made and revoked once");
    let pooled =
        app.ok(&admin, "query($id:ID!){customer(id:$id){ownerId inPublicPool}}", json!({"id": lead["id"]})).await;
    assert_eq!(pooled["customer"], json!({"ownerId": null, "inPublicPool": true}));
}
