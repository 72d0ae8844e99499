//! PostgreSQL's rebuild: binary `COPY` into new tables.
use super::*;
use sea_orm::sqlx::{self, Connection, postgres::PgConnection};

fn failed(e: sqlx::Error) -> AppError {
    AppError::Internal(format!("rebuilding the search keys: {e}").into())
}

/// See [`reindex`]; with `only_if_empty`, none when there are keys (another instance
/// built them first). Instances take turns on an advisory lock, held by a connection
/// of the rebuild's own (closed, and the lock with it, however it ends).
pub(super) async fn rebuild(db: &DatabaseConnection, only_if_empty: bool) -> AppResult<Option<Reindexed>> {
    let options = db.get_postgres_connection_pool().connect_options();
    let mut conn = PgConnection::connect_with(&options).await.map_err(failed)?;
    let done = async {
        sqlx::raw_sql("SELECT pg_advisory_lock(hashtext('crm search rebuild'))")
            .execute(&mut conn)
            .await
            .map_err(failed)?;
        if only_if_empty && search_doc::Entity::find().one(db).await?.is_some() {
            return Ok(None);
        }
        locked(db, &mut conn).await.map(Some)
    }
    .await;
    let _ = conn.close().await;
    done
}

/// `COPY`'s binary format, written as the rows are made.
#[derive(Default)]
struct Binary(Vec<u8>);

impl Binary {
    fn header(&mut self) {
        self.0.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        self.0.extend_from_slice(&[0; 8]);
    }
    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(&(b.len() as i32).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }
    fn time(&mut self, t: Option<DateTime<Utc>>) {
        // Microseconds since 2000-01-01 UTC.
        match t {
            Some(t) => self.bytes(&(t.timestamp_micros() - 946_684_800_000_000).to_be_bytes()),
            None => self.null(),
        }
    }
    fn trailer(&mut self) {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
    }
}

/// What one batch of customers became: its doc rows and its key rows, as `COPY` data.
struct Batch {
    docs: Binary,
    terms: Binary,
    keys: u64,
}

/// Numbers and encodes `records` from doc `next` on.
fn encode(records: &[Keyed], zones: &Zones, next: &mut i32) -> AppResult<Batch> {
    let mut b = Batch { docs: Binary::default(), terms: Binary::default(), keys: 0 };
    for r in records {
        let doc = *next;
        *next += 1;
        b.docs.row(4);
        b.docs.bytes(&doc.to_be_bytes());
        b.docs.bytes(r.record.as_bytes());
        b.docs.bytes(r.customer.as_bytes());
        b.docs.bytes(&[u8::from(r.contact)]);
        let zone = zones.of(r.placement)?;
        for k in &r.keys {
            b.terms.row(7);
            b.terms.time(r.contacted);
            b.terms.bytes(&doc.to_be_bytes());
            b.terms.bytes(&zone.to_be_bytes());
            b.terms.bytes(&(k.field as i16).to_be_bytes());
            b.terms.bytes(&[u8::from(k.head)]);
            b.terms.bytes(&[u8::from(r.contact)]);
            b.terms.bytes(keys::stored(k.form, &k.term).as_bytes());
        }
        b.keys += r.keys.len() as u64;
    }
    Ok(b)
}

/// Copies the keys of `ids` into the new tables, numbering their records from `next`
/// on; returns how many keys. `all`: `ids` are every customer, in order, and the
/// tables were made in this transaction (their rows are written frozen, visible to
/// all, so that index-only scans need no vacuum first).
async fn fill(
    db: &DatabaseConnection,
    conn: &mut PgConnection,
    ids: &[Uuid],
    next: &mut i32,
    all: bool,
) -> AppResult<u64> {
    let freeze = if all { ", FREEZE" } else { "" };
    let mut terms = conn
        .copy_in_raw(&format!(
            "COPY search_term_next (contacted_at, doc, zone, field, head, contact, term) \
             FROM STDIN (FORMAT binary{freeze})"
        ))
        .await
        .map_err(failed)?;
    let mut header = Binary::default();
    header.header();
    terms.send(header.0).await.map_err(failed)?;
    // Reading and keying the next customers overlaps the server's taking in the last.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<AppResult<Batch>>(2);
    let reader = {
        let (db, ids, first) = (db.clone(), ids.to_vec(), *next);
        tokio::spawn(async move {
            let (mut zones, mut next) = (Zones::default(), first);
            for chunk in ids.chunks(5000) {
                let batch = async {
                    let records = keyed_of(&db, Customers::of(chunk, all)).await?;
                    zones.learn(&db, records.iter().map(|r| r.placement)).await?;
                    encode(&records, &zones, &mut next)
                }
                .await;
                let failed = batch.is_err();
                if tx.send(batch).await.is_err() || failed {
                    return next;
                }
            }
            next
        })
    };
    let (mut keys, mut docs) = (0, Binary::default());
    docs.header();
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        terms.send(batch.terms.0).await.map_err(failed)?;
        docs.0.extend_from_slice(&batch.docs.0);
        keys += batch.keys;
    }
    *next = reader.await.map_err(|e| AppError::Internal(format!("keying customers: {e}").into()))?;
    let mut end = Binary::default();
    end.trailer();
    terms.send(end.0).await.map_err(failed)?;
    terms.finish().await.map_err(failed)?;
    docs.trailer();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY search_doc_next (doc, record_id, customer_id, contact) FROM STDIN (FORMAT binary{freeze})"
        ))
        .await
        .map_err(failed)?;
    copy.send(docs.0).await.map_err(failed)?;
    copy.finish().await.map_err(failed)?;
    Ok(keys)
}

async fn run(conn: &mut PgConnection, statements: &[&'static str]) -> AppResult<()> {
    for statement in statements {
        sqlx::raw_sql(*statement).execute(&mut *conn).await.map_err(failed)?;
    }
    Ok(())
}

async fn locked(db: &DatabaseConnection, conn: &mut PgConnection) -> AppResult<Reindexed> {
    // Writes not committed when the copy starts may be missed by it: their customers are
    // rebuilt again at the swap. They began no earlier than the oldest open transaction
    // (a minute more for the clocks of the instances that stamp `updated_at`).
    let started: DateTime<Utc> = sqlx::query_scalar(
        "SELECT LEAST(now(), COALESCE((SELECT MIN(xact_start) FROM pg_stat_activity \
         WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()), now())) - interval '1 minute'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(failed)?;
    run(conn, &["DROP TABLE IF EXISTS search_term_next", "DROP TABLE IF EXISTS search_doc_next"]).await?;
    let ids = all_customers(db).await?;
    let mut done = Reindexed { customers: ids.len() as u64, terms: 0 };
    let clock = std::time::Instant::now();
    let mut next = 1;
    run(
        conn,
        &[
            "BEGIN",
            "CREATE TABLE search_term_next (LIKE search_term)",
            "CREATE TABLE search_doc_next (LIKE search_doc)",
        ],
    )
    .await?;
    match fill(db, conn, &ids, &mut next, true).await {
        Ok(n) => done.terms = n,
        Err(e) => {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(e);
        }
    }
    run(conn, &["COMMIT"]).await?;
    drop(ids);
    tracing::info!(keys = done.terms, seconds = clock.elapsed().as_secs_f64(), "search keys copied");
    let clock = std::time::Instant::now();
    run(
        conn,
        &[
            "SET maintenance_work_mem = '1GB'",
            "CREATE INDEX idx_search_term_next_range ON search_term_next (term) \
             INCLUDE (doc, zone, field, head, contact, contacted_at)",
            "CREATE INDEX idx_search_term_next_zone ON search_term_next (zone, term) \
             INCLUDE (doc, field, head, contact, contacted_at)",
            "CREATE INDEX idx_search_term_next_doc ON search_term_next (doc)",
            "ALTER TABLE search_doc_next ADD CONSTRAINT search_doc_next_pkey PRIMARY KEY (doc)",
            "CREATE UNIQUE INDEX idx_search_doc_next_record ON search_doc_next (record_id)",
            "CREATE INDEX idx_search_doc_next_customer ON search_doc_next (customer_id)",
            "RESET maintenance_work_mem",
        ],
    )
    .await?;
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys indexed");
    let clock = std::time::Instant::now();
    // The swap: writers wait for it; what they wrote since the copy began is rebuilt first.
    run(conn, &["BEGIN"]).await?;
    let swapped = async {
        run(conn, &["LOCK TABLE search_term, search_doc IN ACCESS EXCLUSIVE MODE"]).await?;
        let since = written_since(db, started).await?;
        let mut records = Vec::new();
        for ids in since.chunks(5000) {
            records.extend(keyed(db, ids).await?.into_iter().map(|r| r.record));
        }
        // Looked up first, so that the deletes are lookups of the doc index (a subquery
        // here was planned as a scan of every new key when there was nothing to delete).
        let stale: Vec<i32> =
            sqlx::query_scalar("SELECT doc FROM search_doc_next WHERE customer_id = ANY($1) OR record_id = ANY($2)")
                .bind(&since)
                .bind(&records)
                .fetch_all(&mut *conn)
                .await
                .map_err(failed)?;
        if !stale.is_empty() {
            for statement in
                ["DELETE FROM search_term_next WHERE doc = ANY($1)", "DELETE FROM search_doc_next WHERE doc = ANY($1)"]
            {
                sqlx::query(statement).bind(&stale).execute(&mut *conn).await.map_err(failed)?;
            }
        }
        fill(db, conn, &since, &mut next, false).await?;
        run(
            conn,
            &[
                "DROP TABLE search_term",
                "DROP TABLE search_doc",
                "ALTER TABLE search_term_next RENAME TO search_term",
                "ALTER INDEX idx_search_term_next_range RENAME TO idx_search_term_range",
                "ALTER INDEX idx_search_term_next_zone RENAME TO idx_search_term_zone",
                "ALTER INDEX idx_search_term_next_doc RENAME TO idx_search_term_doc",
                "ALTER TABLE search_doc_next RENAME TO search_doc",
                "ALTER TABLE search_doc RENAME CONSTRAINT search_doc_next_pkey TO search_doc_pkey",
                "ALTER INDEX idx_search_doc_next_record RENAME TO idx_search_doc_record",
                "ALTER INDEX idx_search_doc_next_customer RENAME TO idx_search_doc_customer",
            ],
        )
        .await?;
        sqlx::query("SELECT setval('search_doc_seq', $1)").bind(next).execute(&mut *conn).await.map_err(failed)?;
        run(conn, &["COMMIT"]).await
    }
    .await;
    if let Err(e) = swapped {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        return Err(e);
    }
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys swapped in");
    let clock = std::time::Instant::now();
    done.terms = count_terms(db).await?;
    // The planner's statistics of the new tables; searches work without them, only
    // planned worse, so a failure here is no failed rebuild.
    if let Err(e) = run(conn, &["ANALYZE search_term, search_doc"]).await {
        tracing::warn!(error = %e, "the search keys are rebuilt but not analyzed: run ANALYZE search_term");
    }
    tracing::info!(seconds = clock.elapsed().as_secs_f64(), "search keys counted and analyzed");
    Ok(done)
}
