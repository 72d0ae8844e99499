//! Live customers counted by (department, owner), kept by triggers (PostgreSQL only):
//! a list's `totalCount` without a filter sums a few rows of `customer_tally` over the
//! caller's scope instead of reading an index entry per customer (a manager's count of a
//! four-department subtree read 10,068 entries per request: half the page's time). See
//! `service/src/customer/tally.rs`. SQLite keeps counting the rows.
//!
//! The triggers only append rows (a change of +n or -n at a pair), so concurrent writers
//! never wait on one counter row nor deadlock on two; folding the appended rows into one
//! row per pair is a pass of its own. Inserts and deletes are counted per statement (an
//! import's chunk appends a row per pair, not per customer); an update only when it moves a
//! customer (owner, department, or in or out of the trash), tested by the trigger's `WHEN`
//! before any function runs, so the many updates that move nothing cost nothing.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES: &[&str] = &[
    // Writers wait until the migration (one transaction on PostgreSQL) commits: no
    // customer is counted both by a trigger and by the first count below, or by neither.
    "LOCK TABLE customer IN SHARE ROW EXCLUSIVE MODE",
    "CREATE TABLE customer_tally (
        id bigserial PRIMARY KEY,
        department_id uuid NOT NULL,
        owner_id uuid,
        n bigint NOT NULL,
        folded boolean NOT NULL DEFAULT false
    )",
    "CREATE INDEX idx_customer_tally_department ON customer_tally (department_id, owner_id) INCLUDE (n)",
    "CREATE INDEX idx_customer_tally_owner ON customer_tally (owner_id) INCLUDE (department_id, n)",
    "CREATE INDEX idx_customer_tally_changes ON customer_tally (id) WHERE NOT folded",
    "CREATE FUNCTION customer_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         INSERT INTO customer_tally (department_id, owner_id, n)
         SELECT department_id, owner_id, count(*) FROM tally_new WHERE deleted_at IS NULL GROUP BY 1, 2;
         RETURN NULL;
     END $$",
    "CREATE FUNCTION customer_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         INSERT INTO customer_tally (department_id, owner_id, n)
         SELECT department_id, owner_id, -count(*) FROM tally_old WHERE deleted_at IS NULL GROUP BY 1, 2;
         RETURN NULL;
     END $$",
    "CREATE FUNCTION customer_tally_moved() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         IF OLD.deleted_at IS NULL THEN
             INSERT INTO customer_tally (department_id, owner_id, n) VALUES (OLD.department_id, OLD.owner_id, -1);
         END IF;
         IF NEW.deleted_at IS NULL THEN
             INSERT INTO customer_tally (department_id, owner_id, n) VALUES (NEW.department_id, NEW.owner_id, 1);
         END IF;
         RETURN NULL;
     END $$",
    "CREATE FUNCTION customer_tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
         DELETE FROM customer_tally;
         RETURN NULL;
     END $$",
    "CREATE TRIGGER customer_tally_inserted AFTER INSERT ON customer
     REFERENCING NEW TABLE AS tally_new FOR EACH STATEMENT EXECUTE FUNCTION customer_tally_inserted()",
    "CREATE TRIGGER customer_tally_deleted AFTER DELETE ON customer
     REFERENCING OLD TABLE AS tally_old FOR EACH STATEMENT EXECUTE FUNCTION customer_tally_deleted()",
    "CREATE TRIGGER customer_tally_moved AFTER UPDATE ON customer FOR EACH ROW
     WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id
           OR OLD.department_id IS DISTINCT FROM NEW.department_id
           OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
     EXECUTE FUNCTION customer_tally_moved()",
    "CREATE TRIGGER customer_tally_truncated AFTER TRUNCATE ON customer
     FOR EACH STATEMENT EXECUTE FUNCTION customer_tally_truncated()",
    // The customers already there, as folded rows.
    "INSERT INTO customer_tally (department_id, owner_id, n, folded)
     SELECT department_id, owner_id, count(*), true FROM customer WHERE deleted_at IS NULL GROUP BY 1, 2",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        for sql in POSTGRES {
            manager.get_connection().execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
