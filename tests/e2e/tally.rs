//! The customer list's `totalCount` without a filter comes from `customer_tally` on
//! PostgreSQL (`service/src/customer/tally.rs`): whatever moves customers (creation, a
//! bulk entry, assignment, the pool, the trash, a merge, a leaver's handover, a delete in
//! SQL), folded or not, by any number of folders at once, the count equals the rows each
//! caller reads. On SQLite the rows are counted and the test holds trivially.
use crate::helpers::*;
use sea_orm::{ConnectionTrait, DatabaseBackend};
use serde_json::json;

const TOTAL: &str = "{customers(first:100){totalCount nodes{id}} c:customers{totalCount}}";

/// Every caller's tallied count equals the rows it reads (and the compiled path's
/// count, asked beside a page, equals the ordinary path's, asked alone).
async fn counts_hold(app: &TestApp, callers: &[(&str, String)], step: &str) {
    for (who, token) in callers {
        let data = app.ok(token, TOTAL, json!({})).await;
        let rows = data["customers"]["nodes"].as_array().unwrap().len() as u64;
        assert_eq!(data["customers"]["totalCount"], json!(rows), "{who} after {step}: {data}");
        assert_eq!(data["c"]["totalCount"], json!(rows), "{who} after {step}");
    }
    if app.db.get_database_backend() == DatabaseBackend::Postgres {
        // Every pair's sum is its live customers.
        let bad = app
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT count(*)::bigint AS n FROM \
                   (SELECT department_id, owner_id, sum(n) AS n FROM customer_tally GROUP BY 1, 2 HAVING sum(n) <> 0) t \
                 FULL JOIN (SELECT department_id, owner_id, count(*) AS n FROM customer \
                            WHERE deleted_at IS NULL GROUP BY 1, 2) c \
                   ON t.department_id = c.department_id AND t.owner_id IS NOT DISTINCT FROM c.owner_id \
                 WHERE t.n IS DISTINCT FROM c.n",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(bad, 0, "pairs whose tally is off after {step}");
    }
}

#[tokio::test]
async fn the_tally_counts_what_each_caller_reads() {
    let app = TestApp::spawn().await;
    let t = app.admin_token.clone();
    let east = app.create_department("East", None).await;
    let branch = app.create_department("East-1", Some(&east)).await;
    let west = app.create_department("West", None).await;
    let (_, manager) = app.create_user("m@east.test", "MANAGER", &east).await;
    let (_, rep) = app.create_user("r1@east.test", "SALES", &east).await;
    let (leaver_id, leaver) = app.create_user("r2@east.test", "SALES", &branch).await;
    let (west_rep_id, west_rep) = app.create_user("r3@west.test", "SALES", &west).await;
    let callers = vec![
        ("admin", t.clone()),
        ("manager", manager.clone()),
        ("rep", rep.clone()),
        ("rep of West", west_rep.clone()),
    ];
    counts_hold(&app, &callers, "nothing").await;

    let mut ids = Vec::new();
    for (i, who) in [&rep, &rep, &leaver, &leaver, &west_rep, &west_rep].into_iter().enumerate() {
        let c = app
            .create_customer(
                who,
                json!({"name": format!("客户{i}"), "kind": "INDIVIDUAL", "phone": format!("1380000{i:04}")}),
            )
            .await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let inputs: Vec<_> = (0..5).map(|i| json!({"name": format!("批量{i}"), "kind": "INDIVIDUAL"})).collect();
    app.ok(&rep, "mutation($i:[CreateCustomerInput!]!){createCustomers(inputs:$i){outcome}}", json!({"i": inputs}))
        .await;
    counts_hold(&app, &callers, "creation").await;

    let assign = "mutation($id:ID!,$o:ID){assignCustomer(id:$id, ownerId:$o){id}}";
    app.ok(&t, assign, json!({"id": ids[0], "o": null})).await;
    app.ok(&t, assign, json!({"id": ids[1], "o": west_rep_id})).await;
    counts_hold(&app, &callers, "assignment and the pool").await;
    app.ok(&rep, "mutation($id:ID!){claimCustomer(id:$id){id}}", json!({"id": ids[0]})).await;
    app.ok(&t, "mutation($id:ID!){deleteCustomer(id:$id){id}}", json!({"id": ids[4]})).await;
    counts_hold(&app, &callers, "a claim and the trash").await;
    app.ok(&t, "mutation($id:ID!){restoreCustomer(id:$id){id}}", json!({"id": ids[4]})).await;
    app.ok(
        &t,
        "mutation($s:ID!,$m:[ID!]!){mergeCustomers(survivorId:$s, mergedIds:$m){mergedIds}}",
        json!({"s": ids[5], "m": [ids[4]]}),
    )
    .await;
    counts_hold(&app, &callers, "a restore and a merge").await;
    app.ok(&t, "mutation($id:ID!){deactivateUser(id:$id){id}}", json!({"id": leaver_id})).await;
    counts_hold(&app, &callers, "a leaver's customers to the pool").await;

    if app.db.get_database_backend() == DatabaseBackend::Postgres {
        // A delete in SQL (an operator's), folds, and folds racing writers.
        app.db.execute_unprepared(&format!("DELETE FROM customer WHERE id = '{}'", ids[2])).await.unwrap();
        counts_hold(&app, &callers, "a delete in SQL").await;
        // A fold that finds another instance's (the server's own folder) running does
        // nothing: fold until one ran.
        let mut rows = None;
        for _ in 0..50 {
            service::customer::tally::fold(&app.db).await.unwrap();
            let r = app
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    DatabaseBackend::Postgres,
                    "SELECT count(*)::bigint AS n, count(*) FILTER (WHERE NOT folded)::bigint AS changes FROM customer_tally",
                ))
                .await
                .unwrap()
                .unwrap();
            if r.try_get::<i64>("", "changes").unwrap() == 0 {
                rows = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let rows = rows.expect("folded");
        assert!(rows.try_get::<i64>("", "n").unwrap() <= 6, "one row per (department, owner) pair");
        counts_hold(&app, &callers, "a fold").await;

        let writers = (0..4).map(|w| {
            let (app, rep) = (&app, &rep);
            async move {
                for i in 0..6 {
                    let input = json!({"name": format!("并发{w}-{i}"), "kind": "INDIVIDUAL"});
                    let c = app.create_customer(rep, input).await;
                    if i % 2 == 0 {
                        let id = c["id"].as_str().unwrap();
                        app.ok(
                            &app.admin_token,
                            "mutation($id:ID!){assignCustomer(id:$id, ownerId:null){id}}",
                            json!({"id": id}),
                        )
                        .await;
                    }
                }
            }
        });
        let folders = (0..3).map(|_| async {
            for _ in 0..8 {
                service::customer::tally::fold(&app.db).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        futures::future::join(futures::future::join_all(writers), futures::future::join_all(folders)).await;
        counts_hold(&app, &callers, "writers racing folders").await;
        service::customer::tally::fold(&app.db).await.unwrap();
        counts_hold(&app, &callers, "the last fold").await;
    }
}
