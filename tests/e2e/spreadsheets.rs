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

/// One CSV cell and the workbook's cell for it agree: the same text (the CSV's formula
/// guard aside: a workbook's text cell is never a formula), the same number, date or time.
fn same_cell(column: &str, csv: &str, xl: &calamine::Data) -> Result<(), String> {
    use calamine::{Data, DataType};
    let ok = match xl {
        Data::Empty => csv.is_empty(),
        Data::String(s) => csv == s || csv.strip_prefix('\'') == Some(s.as_str()),
        Data::Float(f) => csv.parse::<f64>().is_ok_and(|c| (c - f).abs() < 1e-9),
        Data::Int(i) => csv.parse::<i64>() == Ok(*i),
        Data::Bool(b) => csv == b.to_string(),
        Data::DateTime(_) => {
            let at = xl.as_datetime().ok_or("a date-time the reader cannot convert")?;
            if csv.contains('T') {
                let t = chrono::DateTime::parse_from_rfc3339(csv).map_err(|e| e.to_string())?.naive_utc();
                (at - t).num_milliseconds().abs() < 1000
            } else {
                csv.parse::<chrono::NaiveDate>().is_ok_and(|d| d == at.date())
            }
        }
        other => return Err(format!("unexpected cell {other:?}")),
    };
    if ok { Ok(()) } else { Err(format!("{column}: csv {csv:?}, xlsx {xl:?}")) }
}

/// Every report and export is also a workbook: one sheet, a header row, typed cells, the
/// same rows as the CSV (read back by an independent reader, calamine).
#[tokio::test]
async fn every_report_and_export_is_also_a_workbook_with_typed_cells() {
    use calamine::{Data, Reader};
    let app = TestApp::spawn().await;
    service::demo::load(&app.db, &app.state.events, &app.state.privacy.keys, 40, 5).await.expect("demo data");
    let admin = app.admin_token.clone();
    // A complaint with an NPS of 0 keeps a negative NPS in the summary.
    let c =
        app.create_customer(&admin, json!({"name": "=差评客户", "kind": "INDIVIDUAL", "phone": "13800000077"})).await;
    app.ok(
        &admin,
        "mutation($i:CreateFeedbackInput!){createFeedback(input:$i){id}}",
        json!({"i": {"customerId": c["id"], "kind": "COMPLAINT", "channel": "PHONE", "content": "很差", "nps": 0}}),
    )
    .await;
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today - chrono::Duration::days(400), today + chrono::Duration::days(1));
    let files = [
        "/exports/customers".to_string(),
        "/exports/contacts".to_string(),
        "/exports/deals".to_string(),
        "/reports/classification?groupBy=TIER,DEPARTMENT".to_string(),
        format!("/reports/tier-migration?from={from}&to={to}"),
        format!("/reports/staff-activity?from={from}&to={to}"),
        format!("/reports/feedback-summary?from={from}&to={to}&groupBy=KIND"),
        "/reports/customer-grades".to_string(),
    ];
    // Columns that must be typed in the workbook, where the file has them.
    type Check = fn(&Data) -> bool;
    let typed: &[(&str, Check)] = &[
        ("created_at", |d| matches!(d, Data::DateTime(_))),
        ("expected_close_date", |d| matches!(d, Data::DateTime(_) | Data::Empty)),
        ("amount", |d| matches!(d, Data::Float(_) | Data::Empty)),
        ("customers", |d| matches!(d, Data::Float(_))),
        ("nps", |d| matches!(d, Data::Float(_) | Data::Empty)),
        ("calls", |d| matches!(d, Data::Float(_))),
        ("suppressed", |d| matches!(d, Data::Bool(_))),
        ("won_deals", |d| matches!(d, Data::Float(_))),
    ];
    for file in &files {
        let (path, query) = file.split_once('?').unwrap_or((file, ""));
        let (status, _, csv) = get(&app, &admin, &format!("{path}.csv?{query}")).await;
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(status, 200, "{file}: {csv}");
        let (status, kind, xlsx) = get(&app, &admin, &format!("{path}.xlsx?{query}")).await;
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&xlsx));
        assert_eq!(kind, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).unwrap();
        let name = path.rsplit('/').next().unwrap();
        assert_eq!(book.sheet_names(), vec![name.to_string()], "{file}: one sheet named after the file");
        let sheet = book.worksheet_range(name).unwrap();
        let csv_rows = crate::exports::table(&csv);
        let xl_rows: Vec<&[Data]> = sheet.rows().collect();
        assert_eq!(xl_rows.len(), csv_rows.len(), "{file}: as many rows, the header's included");
        assert!(csv_rows.len() > 1, "{file}: some data to compare: {csv}");
        let header = &csv_rows[0];
        for (i, title) in header.iter().enumerate() {
            assert_eq!(xl_rows[0].get(i), Some(&Data::String(title.clone())), "{file}: header");
        }
        let mut negative = false;
        for (line, (c, x)) in csv_rows.iter().zip(&xl_rows).enumerate().skip(1) {
            for (i, title) in header.iter().enumerate() {
                let cell = x.get(i).unwrap_or(&Data::Empty);
                same_cell(title, &c[i], cell).unwrap_or_else(|e| panic!("{file} line {line}: {e}"));
                if let Some((_, is_typed)) = typed.iter().find(|(t, _)| t == title) {
                    assert!(is_typed(cell), "{file} line {line}: {title} is {cell:?}");
                }
                negative |= matches!(cell, Data::Float(f) if *f < 0.0);
                if let Data::String(s) = cell {
                    assert!(!s.starts_with('\''), "{file}: no formula guard in a workbook: {s}");
                }
            }
        }
        if name == "feedback-summary" {
            assert!(negative, "a negative NPS is a negative number: {csv}");
        }
        if name == "customers" {
            assert!(csv.contains("'=差评客户") && !csv.contains(",=差评客户"), "the CSV guards the formula");
        }
    }
    // CSV-only parameters and unknown extensions.
    let (status, _, body) = get(&app, &admin, "/exports/customers.xlsx?bom=true").await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("VALIDATION"));
    let (status, _, _) = get(&app, &admin, "/exports/customers.pdf").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&app, &admin, "/reports/classification.ods").await;
    assert_eq!(status, 404);
    // The grant is checked before the file is made.
    let dept = app.create_department("售后部", None).await;
    let (_, service) = app.create_user("care@example.com", "SERVICE", &dept).await;
    let (status, _, _) = get(&app, &service, "/reports/customer-grades.xlsx").await;
    assert_eq!(status, 403);
}
