//! A person's data (`docs/privacy.md`): a readable audit trail (indexes, and AUDIT grants),
//! export and erase (PERSONAL_DATA grants, a legal hold, the erasure time), marketing
//! consent per channel, and who started a reclassification.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customer {
    Table,
    LegalHold,
    LegalHoldReason,
    ErasedAt,
}

#[derive(DeriveIden)]
enum Consent {
    Table,
    CustomerId,
    Channel,
    GivenAt,
    WithdrawnAt,
    Source,
    RecordedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ClassificationRun {
    Table,
    StartedBy,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    RecordId,
    ActorId,
    At,
    Id,
}

/// (role, resource, action, scope): who reads the audit trail, exports and erases.
const GRANTS: [(&str, &str, &str, &str); 6] = [
    ("ADMIN", "AUDIT", "READ", "ALL"),
    ("MANAGER", "AUDIT", "READ", "DEPARTMENT"),
    ("ADMIN", "PERSONAL_DATA", "READ", "ALL"),
    ("ADMIN", "PERSONAL_DATA", "DELETE", "ALL"),
    ("MANAGER", "PERSONAL_DATA", "READ", "DEPARTMENT"),
    ("MANAGER", "PERSONAL_DATA", "DELETE", "DEPARTMENT"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            boolean(Customer::LegalHold).default(false).to_owned(),
            string_null(Customer::LegalHoldReason).to_owned(),
            timestamp_with_time_zone_null(Customer::ErasedAt).to_owned(),
        ] {
            manager.alter_table(Table::alter().table(Customer::Table).add_column(col).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ClassificationRun::Table)
                    .add_column(uuid_null(ClassificationRun::StartedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consent::Table)
                    .col(uuid(Consent::CustomerId))
                    .col(string(Consent::Channel))
                    .col(timestamp_with_time_zone_null(Consent::GivenAt))
                    .col(timestamp_with_time_zone_null(Consent::WithdrawnAt))
                    .col(string_null(Consent::Source))
                    .col(uuid_null(Consent::RecordedBy))
                    .col(timestamp_with_time_zone(Consent::UpdatedAt))
                    .primary_key(Index::create().name("pk_consent").col(Consent::CustomerId).col(Consent::Channel))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("ix_audit_log_record", vec![AuditLog::RecordId, AuditLog::At]),
            ("ix_audit_log_actor", vec![AuditLog::ActorId, AuditLog::At]),
            ("ix_audit_log_at", vec![AuditLog::At, AuditLog::Id]),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuditLog::Table);
            for c in cols {
                index.col(c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        crate::grants::insert(manager, &GRANTS).await
    }
}
