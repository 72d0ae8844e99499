//! What spreadsheet and BI users open: CSV files as Excel on a Chinese Windows reads them
//! (a byte order mark, or GB18030), and numbers that stay numbers.
use crate::helpers::*;
use serde_json::json;

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let resp = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, kind, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn csv_files_come_with_a_bom_or_in_gb18030_on_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    for name in ["上海华联超市", "杭州永辉贸易", "廣州聯華"] {
        app.create_customer(&admin, json!({"name": name, "kind": "ORGANIZATION", "region": "华东"})).await;
    }
    for path in ["/exports/customers.csv", "/reports/classification.csv?groupBy=TIER,REGION"] {
        let with = |extra: &str| {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{}", if extra.is_empty() { String::new() } else { format!("{sep}{extra}") })
        };
        let (status, kind, plain) = get(&app, &admin, &with("")).await;
        assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"), "{path}");
        let text = String::from_utf8(plain.clone()).unwrap();
        assert!(path.contains("reports") || text.contains("廣州聯華"), "{text}");

        let (status, _, bom) = get(&app, &admin, &with("bom=true")).await;
        assert_eq!(status, 200);
        assert_eq!(&bom[..3], b"\xEF\xBB\xBF", "{path}: a UTF-8 byte order mark first");
        assert_eq!(&bom[3..], &plain[..], "{path}: then the same file");

        let (status, kind, gb) = get(&app, &admin, &with("encoding=gb18030")).await;
        assert_eq!((status, kind.as_str()), (200, "text/csv; charset=gb18030"), "{path}");
        let (decoded, _, bad) = encoding_rs::GB18030.decode(&gb);
        assert!(!bad, "{path}: valid GB18030");
        assert_eq!(decoded, text, "{path}: the same text in GB18030");
        if !text.is_ascii() {
            assert_ne!(gb, plain, "{path}: not UTF-8 bytes");
        }

        for bad in ["encoding=latin1", "bom=maybe", "bom=true&encoding=gb18030"] {
            let (status, _, body) = get(&app, &admin, &with(bad)).await;
            let body = String::from_utf8_lossy(&body);
            assert_eq!(status, 400, "{path} {bad}: {body}");
            assert!(body.contains("VALIDATION"), "{path} {bad}: {body}");
        }
    }
}

/// The formula guard leaves numbers alone: an NPS of -100 stays `-100`, which pandas,
/// DuckDB and Excel read as a number.
#[tokio::test]
async fn negative_numbers_stay_numbers_in_csv_files() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token.clone();
    let c = app.create_customer(&admin, json!({"name": "差评客户", "kind": "INDIVIDUAL"})).await;
    for _ in 0..2 {
        app.ok(
            &admin,
            "mutation($i:CreateFeedbackInput!){createFeedback(input:$i){id}}",
            json!({"i": {"customerId": c["id"], "kind": "COMPLAINT", "channel": "PHONE", "content": "很差", "nps": 0}}),
        )
        .await;
    }
    let today = chrono::Utc::now().date_naive();
    let path = format!(
        "/reports/feedback-summary.csv?from={}&to={}",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    );
    let (status, _, body) = get(&app, &admin, &path).await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let nps = header.iter().position(|h| *h == "nps").expect("an nps column");
    assert_eq!(lines[1].split(',').nth(nps), Some("-100"), "{text}");
    assert!(!text.contains("'-"), "no guard before a number: {text}");
}
