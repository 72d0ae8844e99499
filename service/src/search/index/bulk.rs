//! SQLite's rebuild: the keys written unordered into a plain table, then in key order into
//! the new key table (a B-tree filled from left to right, not by random inserts).
use super::*;
use sea_orm::sea_query::Alias;
use sea_orm::{DatabaseBackend, Statement};

const TERM_COLUMNS: &str = "term, doc, field, zone, head, contact, contacted_at";

async fn run(db: &impl ConnectionTrait, statements: &[&str]) -> AppResult<()> {
    for s in statements {
        db.execute_unprepared(s).await?;
    }
    Ok(())
}

/// Index names alternate between rebuilds (SQLite cannot rename an index).
async fn free_name(db: &DatabaseConnection, name: &str) -> AppResult<String> {
    let taken = db
        .query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
            [name.into()],
        ))
        .await?
        .is_some();
    Ok(if taken { format!("{name}_b") } else { name.to_string() })
}

/// Writes `records` into `search_doc_next` and `terms`, numbered from `next` on;
/// returns how many keys.
async fn insert(
    db: &impl ConnectionTrait,
    terms: &str,
    records: &[Keyed],
    zones: &Zones,
    next: &mut i32,
) -> AppResult<u64> {
    let first = *next;
    *next += records.len() as i32;
    let numbered: Vec<(i32, &Keyed)> = records.iter().enumerate().map(|(i, r)| (first + i as i32, r)).collect();
    write(db, "search_doc_next", terms, &numbered, zones).await
}

/// Drops from the new tables what they hold of `customers` and of `records`.
async fn forget(db: &impl ConnectionTrait, customers: &[Uuid], records: &[Uuid]) -> AppResult<()> {
    let next = Alias::new("search_doc_next");
    for (column, ids) in [(search_doc::Column::CustomerId, customers), (search_doc::Column::RecordId, records)] {
        for ids in ids.chunks(ROWS_PER_INSERT) {
            let mut docs = Query::select();
            // Unqualified columns: the tables are not the entities' own.
            docs.column(search_doc::Column::Doc).from(next.clone()).and_where(Expr::col(column).is_in(ids.to_vec()));
            let mut terms = Query::delete();
            terms
                .from_table(Alias::new("search_term_next"))
                .and_where(Expr::col(search_term::Column::Doc).in_subquery(docs));
            db.execute(&terms).await?;
            let mut gone = Query::delete();
            gone.from_table(next.clone()).and_where(Expr::col(column).is_in(ids.to_vec()));
            db.execute(&gone).await?;
        }
    }
    Ok(())
}

pub(super) async fn rebuild(db: &DatabaseConnection) -> AppResult<Reindexed> {
    // Writes that began before now are rebuilt again at the swap.
    let started = Utc::now() - chrono::Duration::minutes(1);
    run(
        db,
        &[
            "DROP TABLE IF EXISTS search_term_load",
            "DROP TABLE IF EXISTS search_term_next",
            "DROP TABLE IF EXISTS search_doc_next",
            "CREATE TABLE search_doc_next (doc integer NOT NULL PRIMARY KEY, record_id uuid_text NOT NULL, \
             customer_id uuid_text NOT NULL, contact boolean NOT NULL)",
            "CREATE TABLE search_term_load (term varchar, doc integer, field integer, \
             zone integer, head boolean, contact boolean, contacted_at timestamp_with_timezone_text)",
            "CREATE TABLE search_term_next (term varchar NOT NULL, doc integer NOT NULL, \
             field integer NOT NULL, zone integer NOT NULL, head boolean NOT NULL, contact boolean NOT NULL, \
             contacted_at timestamp_with_timezone_text, PRIMARY KEY (term, doc, field)) WITHOUT ROWID",
        ],
    )
    .await?;
    let ids = all_customers(db).await?;
    let mut done = Reindexed { customers: ids.len() as u64, terms: 0 };
    let clock = std::time::Instant::now();
    let (mut zones, mut next) = (Zones::default(), 1);
    // Reading and keying the next customers (by their span of ids) overlaps writing the last.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AppResult<Vec<Keyed>>>(2);
    let reader = {
        let db = db.clone();
        tokio::spawn(async move {
            for chunk in ids.chunks(2000) {
                let records = keyed_of(&db, Customers::of(chunk, true)).await;
                let failed = records.is_err();
                if tx.send(records).await.is_err() || failed {
                    return;
                }
            }
        })
    };
    while let Some(records) = rx.recv().await {
        let records = records?;
        zones.learn(db, records.iter().map(|r| r.placement)).await?;
        let (zones, next) = (&zones, &mut next);
        done.terms +=
            crate::kernel::store::write(db, async |txn| insert(txn, "search_term_load", &records, zones, next).await)
                .await?;
    }
    reader.await.map_err(|e| AppError::Internal(format!("keying customers: {e}").into()))?;
    tracing::info!(keys = done.terms, seconds = clock.elapsed().as_secs_f64(), "search keys written");
    let clock = std::time::Instant::now();
    let (term_doc, doc_record, doc_customer) = (
        free_name(db, "idx_search_term_doc").await?,
        free_name(db, "idx_search_doc_record").await?,
        free_name(db, "idx_search_doc_customer").await?,
    );
    run(
        db,
        &[
            &format!(
                "INSERT INTO search_term_next ({TERM_COLUMNS}) SELECT {TERM_COLUMNS} FROM search_term_load \
                 ORDER BY term, doc, field"
            ),
            "DROP TABLE search_term_load",
            &format!("CREATE INDEX {term_doc} ON search_term_next (doc)"),
            &format!("CREATE UNIQUE INDEX {doc_record} ON search_doc_next (record_id)"),
            &format!("CREATE INDEX {doc_customer} ON search_doc_next (customer_id)"),
        ],
    )
    .await?;
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys ordered and indexed");
    let clock = std::time::Instant::now();
    // The catch-up and the swap in one write transaction: no writer comes between.
    crate::kernel::store::write(db, async |txn| {
        let since = written_since(txn, started).await?;
        let mut records = Vec::new();
        for ids in since.chunks(5000) {
            records.extend(keyed(txn, ids).await?);
        }
        let record_ids: Vec<Uuid> = records.iter().map(|r| r.record).collect();
        forget(txn, &since, &record_ids).await?;
        zones.learn(txn, records.iter().map(|r| r.placement)).await?;
        insert(txn, "search_term_next", &records, &zones, &mut next).await?;
        run(
            txn,
            &[
                "DROP TABLE search_term",
                "DROP TABLE search_doc",
                "ALTER TABLE search_term_next RENAME TO search_term",
                "ALTER TABLE search_doc_next RENAME TO search_doc",
            ],
        )
        .await
    })
    .await?;
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys swapped in");
    done.terms = count_terms(db).await?;
    Ok(done)
}
