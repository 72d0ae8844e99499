//! The search keys (`service::search`, `docs/search.md`): one row per searchable form of a
//! customer's or contact's name, phone and e-mail, each written as its suffixes so that
//! every match (exact, prefix, substring, pinyin, initials) is a range of one ordered index.
//! The row carries where its customer sits (owner, department) and when it was last
//! contacted, so that scope and ranking are read from the index without visiting the
//! customers.
//!
//! PostgreSQL: a covering B-tree on `(form, term COLLATE "C")`, so a range scan is an
//! index-only scan in byte order. SQLite: the table itself is that B-tree (`WITHOUT
//! ROWID`, keyed by form and term). The keys are built by `crm search reindex` and kept
//! by every write from then on; a server starting with customers and no keys builds them
//! (`service::search::index::fill_if_empty`), so an upgraded database gets its keys.
use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SearchTerm {
    Table,
    Form,
    Term,
    Field,
    Head,
    RecordId,
    CustomerId,
    Contact,
    OwnerId,
    DepartmentId,
    ContactedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let mut table = Table::create();
        table
            .table(SearchTerm::Table)
            .col(small_integer(SearchTerm::Form))
            .col(string(SearchTerm::Term))
            .col(small_integer(SearchTerm::Field))
            .col(boolean(SearchTerm::Head))
            .col(uuid(SearchTerm::RecordId))
            .col(uuid(SearchTerm::CustomerId))
            .col(boolean(SearchTerm::Contact))
            .col(uuid_null(SearchTerm::OwnerId))
            .col(uuid(SearchTerm::DepartmentId))
            .col(timestamp_with_time_zone_null(SearchTerm::ContactedAt));
        let db = manager.get_connection();
        match backend {
            DatabaseBackend::Sqlite => {
                table.primary_key(
                    Index::create()
                        .col(SearchTerm::Form)
                        .col(SearchTerm::Term)
                        .col(SearchTerm::RecordId)
                        .col(SearchTerm::Field),
                );
                let sql = format!("{} WITHOUT ROWID", table.to_string(SqliteQueryBuilder));
                db.execute_unprepared(&sql).await?;
            }
            _ => {
                manager.create_table(table.to_owned()).await?;
                db.execute_unprepared(
                    "ALTER TABLE search_term ALTER COLUMN term TYPE varchar COLLATE \"C\";
                     CREATE INDEX idx_search_term_range ON search_term (form, term)
                       INCLUDE (head, field, record_id, customer_id, contact, owner_id, department_id, contacted_at)",
                )
                .await?;
            }
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_search_term_customer")
                    .table(SearchTerm::Table)
                    .col(SearchTerm::CustomerId)
                    .to_owned(),
            )
            .await
    }
}
