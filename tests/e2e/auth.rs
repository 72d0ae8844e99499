//! Login and token checks: every bad token is UNAUTHENTICATED, the database decides the role.
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

const ME: &str = "{ me { email role } }";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "role": "SALES", "dept": "x", "iat": now(), "exp": now() + 600, "iss": ISSUER, "aud": AUDIENCE })
}

async fn me_code(app: &TestApp, token: &str) -> String {
    let resp = app.gql(Some(token), ME, json!({})).await;
    code(&resp).to_string()
}

#[tokio::test]
async fn login_and_me() {
    let app = TestApp::spawn().await;
    let data = app.ok(&app.admin_token, ME, json!({})).await;
    assert_eq!(data["me"], json!({ "email": ADMIN_EMAIL, "role": "ADMIN" }));

    let resp = app
        .gql(
            None,
            "mutation{login(email:\"ROOT@example.com\",password:\"correct horse battery\"){expiresAt user{email}}}",
            json!({}),
        )
        .await;
    assert_eq!(resp["data"]["login"]["user"]["email"], ADMIN_EMAIL, "e-mail is case-insensitive: {resp}");

    for (email, password) in [(ADMIN_EMAIL, "wrong password"), ("nobody@example.com", PASSWORD)] {
        let resp = app
            .gql(
                None,
                "mutation($e:String!,$p:String!){login(email:$e,password:$p){accessToken}}",
                json!({"e": email, "p": password}),
            )
            .await;
        assert_eq!(code(&resp), "UNAUTHENTICATED", "{resp}");
        assert_eq!(resp["errors"][0]["message"], "wrong e-mail or password");
    }

    let resp = app.gql(None, ME, json!({})).await;
    assert_eq!(code(&resp), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东区", None).await;
    let (sales_id, sales_token) = app.create_user("rep@example.com", "SALES", &dept).await;
    assert_eq!(me_code(&app, &sales_token).await, "<no error>");

    // A correctly signed token of our own making works: the harness is right.
    assert_eq!(me_code(&app, &sign(&claims(&sales_id), SECRET)).await, "<no error>");

    // alg: none
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&sales_id).to_string());
    assert_eq!(me_code(&app, &format!("{header}.{payload}.")).await, "UNAUTHENTICATED");

    // wrong key
    assert_eq!(me_code(&app, &sign(&claims(&sales_id), "another-secret-another-secret-0000")).await, "UNAUTHENTICATED");

    // expired
    let mut c = claims(&sales_id);
    c["exp"] = json!(now() - 120);
    assert_eq!(me_code(&app, &sign(&c, SECRET)).await, "UNAUTHENTICATED");

    // missing or wrong exp / aud / iss / sub
    for field in ["exp", "aud", "iss", "sub"] {
        let mut c = claims(&sales_id);
        c.as_object_mut().unwrap().remove(field);
        assert_eq!(me_code(&app, &sign(&c, SECRET)).await, "UNAUTHENTICATED", "token without {field}");
    }
    for (field, value) in [("aud", "someone-else"), ("iss", "evil")] {
        let mut c = claims(&sales_id);
        c[field] = json!(value);
        assert_eq!(me_code(&app, &sign(&c, SECRET)).await, "UNAUTHENTICATED", "token with wrong {field}");
    }

    // tampered role claim: the payload changed, the signature no longer matches
    let parts: Vec<&str> = sales_token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["role"] = json!("ADMIN");
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]);
    assert_eq!(me_code(&app, &forged).await, "UNAUTHENTICATED");

    // a validly signed token claiming ADMIN still acts with the database role
    let mut c = claims(&sales_id);
    c["role"] = json!("ADMIN");
    let admin_claim = sign(&c, SECRET);
    let data = app.ok(&admin_claim, ME, json!({})).await;
    assert_eq!(data["me"]["role"], "SALES");
    let resp = app
        .gql(
            Some(&admin_claim),
            "mutation($d:ID!){createDepartment(input:{name:\"X\",parentId:$d}){id}}",
            json!({"d": dept}),
        )
        .await;
    assert_eq!(code(&resp), "FORBIDDEN", "{resp}");

    // garbage and wrong scheme
    assert_eq!(me_code(&app, "not-a-token").await, "UNAUTHENTICATED");
    let resp: Value = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {sales_token}"))
        .json(&json!({"query": ME}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&resp), "UNAUTHENTICATED");
}

#[tokio::test]
async fn deactivated_user_is_locked_out_and_keeps_records() {
    let app = TestApp::spawn().await;
    let dept = app.create_department("华南区", None).await;
    let (rep_id, rep_token) = app.create_user("leaver@example.com", "SALES", &dept).await;
    let customer =
        app.create_customer(&rep_token, json!({"name": "王芳", "kind": "INDIVIDUAL", "phone": "13912345678"})).await;

    app.ok(&app.admin_token, "mutation($id:ID!){deactivateUser(id:$id){active}}", json!({"id": rep_id})).await;

    assert_eq!(me_code(&app, &rep_token).await, "UNAUTHENTICATED");
    let resp = app
        .gql(
            None,
            "mutation{login(email:\"leaver@example.com\",password:\"correct horse battery\"){accessToken}}",
            json!({}),
        )
        .await;
    assert_eq!(code(&resp), "UNAUTHENTICATED");

    // staff leave, data stays: the customer is in the department's pool
    let data = app
        .ok(
            &app.admin_token,
            "query($id:ID!){customer(id:$id){name ownerId inPublicPool departmentId}}",
            json!({"id": customer["id"]}),
        )
        .await;
    assert_eq!(data["customer"]["name"], "王芳");
    assert_eq!(data["customer"]["ownerId"], Value::Null);
    assert_eq!(data["customer"]["inPublicPool"], true);
    assert_eq!(data["customer"]["departmentId"], dept.as_str());
    assert_eq!(app.audit_count(customer["id"].as_str().unwrap()).await, 2, "create and the hand-over are audited");
}

#[tokio::test]
async fn generated_secret_is_kept_in_the_database() {
    let app = TestApp::spawn_with(|c| c.jwt_secret = None).await;
    let token = app.admin_token.clone();
    assert_eq!(me_code(&app, &token).await, "<no error>");
    // a restart, or a second instance on the same database, accepts the token
    let again = app.another_instance(|c| c.jwt_secret = None).await;
    assert_eq!(me_code(&again, &token).await, "<no error>");
    // a configured secret replaces the stored one
    let other = app.another_instance(|c| c.jwt_secret = Some("a-completely-different-secret-0123456789".into())).await;
    assert_eq!(me_code(&other, &token).await, "UNAUTHENTICATED");
}

/// One request tests one password: aliased `login` fields (directly or through fragments)
/// are refused before any of them runs, so fifty guesses cannot share one request.
#[tokio::test]
async fn one_login_per_request() {
    let app = TestApp::spawn().await;
    let guess = |n: usize| format!("g{n}:login(email:\"{ADMIN_EMAIL}\",password:\"guess {n}\"){{accessToken}}");
    let mut fields: Vec<String> = (0..49).map(guess).collect();
    fields.push(format!("right:login(email:\"{ADMIN_EMAIL}\",password:\"{PASSWORD}\"){{accessToken}}"));
    let aliased = format!("mutation{{{}}}", fields.join(" "));
    let resp = app.gql(None, &aliased, json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");
    assert!(resp["data"].is_null(), "nothing ran: {resp}");
    assert_eq!(resp["errors"].as_array().unwrap().len(), 1, "one error, no per-guess answers: {resp}");

    let fragments = format!(
        "mutation{{...A ...B}} fragment A on Mutation{{{}}} fragment B on Mutation{{... on Mutation{{{}}}}}",
        guess(1),
        guess(2)
    );
    let resp = app.gql(None, &fragments, json!({})).await;
    assert_eq!(code(&resp), "BAD_REQUEST", "{resp}");

    // One login still works.
    let one = format!("mutation{{login(email:\"{ADMIN_EMAIL}\",password:\"{PASSWORD}\"){{accessToken}}}}");
    let resp = app.gql(None, &one, json!({})).await;
    assert!(resp["data"]["login"]["accessToken"].is_string(), "{resp}");
}

/// A failed login is logged and audited (`login_failed`, no values: never the password).
#[tokio::test]
async fn failed_logins_are_audited_without_the_password() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let dept = app.create_department("华东区", None).await;
    let (id, _) = app.create_user("rep@example.com", "SALES", &dept).await;
    let before = app.audit_count(&id).await;
    let wrong = "mutation{login(email:\"rep@example.com\",password:\"not the password 123\"){accessToken}}";
    assert_eq!(code(&app.gql(None, wrong, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(app.audit_count(&id).await, before + 1);
    let backend = app.db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT action, old_values IS NULL AND new_values IS NULL AS empty FROM audit_log WHERE record_id = $1 ORDER BY at DESC"
        }
        _ => {
            "SELECT action, old_values IS NULL AND new_values IS NULL AS empty FROM audit_log WHERE record_id = ? ORDER BY at DESC"
        }
    };
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [uuid::Uuid::parse_str(&id).unwrap().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "action").unwrap(), "login_failed");
    assert!(row.try_get::<bool>("", "empty").unwrap());
    // An unknown address audits nothing it could attach to, and answers the same.
    let unknown = "mutation{login(email:\"nobody@example.com\",password:\"whatever 1234\"){accessToken}}";
    assert_eq!(app.gql(None, unknown, json!({})).await["errors"][0]["message"], "wrong e-mail or password");
}
