//! Customer classification: the policy and exchange rates as data, computed grades on
//! the customer row (so lists filter and sort on them), and the history of changes.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ClassificationPolicy {
    Table,
    Id,
    Policy,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum ExchangeRate {
    Table,
    Currency,
    RatePpm,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ClassificationHistory {
    Table,
    Id,
    CustomerId,
    Field,
    FromValue,
    ToValue,
    Reason,
    ActorId,
    At,
}

#[derive(DeriveIden)]
enum ClassificationRun {
    Table,
    Id,
    Reason,
    Status,
    Total,
    Processed,
    Changed,
    StartedAt,
    FinishedAt,
    Error,
    State,
}

#[derive(DeriveIden)]
enum Customer {
    Table,
    Id,
    ComputedTier,
    TierOverride,
    TierOverrideReason,
    RfmRecency,
    RfmFrequency,
    RfmMonetary,
    RfmScore,
    FrequencyClass,
    ValueClass,
    RelationshipType,
    TurnoverMarginClass,
    FirstPurchaseOn,
    LastPurchaseOn,
    WonCount,
    RevenueMinor,
    MarginMinor,
    ClassifiedAt,
}

/// The default policy (`docs/classification.md`; thresholds in base-currency minor units).
const DEFAULT_POLICY: &str = r#"{
  "baseCurrency": "CNY",
  "tierAMinor": 8000000,
  "tierBMinor": 5000000,
  "windowDays": 365,
  "churnDays": 365,
  "vipMinWonDeals": 2,
  "vipIfTierA": true,
  "rfmBuckets": 5,
  "frequencyHighMinDeals": 3,
  "valueHighMinor": 5000000,
  "loyaltyMinWonDeals": 2,
  "loyaltyMinTenureDays": 180,
  "loyaltyMaxComplaints": 1,
  "profitHighMinor": 1000000,
  "turnoverHighMinDeals": 4,
  "marginHighRatePct": 30
}"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ClassificationPolicy::Table)
                    .col(integer(ClassificationPolicy::Id).primary_key())
                    .col(json_binary(ClassificationPolicy::Policy))
                    .col(integer(ClassificationPolicy::Version).default(1))
                    .col(timestamp_with_time_zone(ClassificationPolicy::UpdatedAt))
                    .col(uuid_null(ClassificationPolicy::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ExchangeRate::Table)
                    .col(string_len(ExchangeRate::Currency, 3).primary_key())
                    .col(big_integer(ExchangeRate::RatePpm))
                    .col(timestamp_with_time_zone(ExchangeRate::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClassificationHistory::Table)
                    .col(pk_uuid(ClassificationHistory::Id))
                    .col(uuid(ClassificationHistory::CustomerId))
                    .col(string(ClassificationHistory::Field))
                    .col(string_null(ClassificationHistory::FromValue))
                    .col(string(ClassificationHistory::ToValue))
                    .col(string(ClassificationHistory::Reason))
                    .col(uuid_null(ClassificationHistory::ActorId))
                    .col(timestamp_with_time_zone(ClassificationHistory::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_classification_history_customer")
                            .from(ClassificationHistory::Table, ClassificationHistory::CustomerId)
                            .to(Customer::Table, Customer::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ClassificationRun::Table)
                    .col(pk_uuid(ClassificationRun::Id))
                    .col(string(ClassificationRun::Reason))
                    .col(string(ClassificationRun::Status))
                    .col(big_integer(ClassificationRun::Total).default(0))
                    .col(big_integer(ClassificationRun::Processed).default(0))
                    .col(big_integer(ClassificationRun::Changed).default(0))
                    .col(timestamp_with_time_zone(ClassificationRun::StartedAt))
                    .col(timestamp_with_time_zone_null(ClassificationRun::FinishedAt))
                    .col(text_null(ClassificationRun::Error))
                    .col(json_binary_null(ClassificationRun::State))
                    .to_owned(),
            )
            .await?;
        let columns = [
            string_null(Customer::ComputedTier),
            string_null(Customer::TierOverride),
            text_null(Customer::TierOverrideReason),
            integer_null(Customer::RfmRecency),
            integer_null(Customer::RfmFrequency),
            integer_null(Customer::RfmMonetary),
            integer_null(Customer::RfmScore),
            string_null(Customer::FrequencyClass),
            string_null(Customer::ValueClass),
            string_null(Customer::RelationshipType),
            string_null(Customer::TurnoverMarginClass),
            date_null(Customer::FirstPurchaseOn),
            date_null(Customer::LastPurchaseOn),
            integer(Customer::WonCount).default(0).to_owned(),
            big_integer(Customer::RevenueMinor).default(0).to_owned(),
            big_integer(Customer::MarginMinor).default(0).to_owned(),
            timestamp_with_time_zone_null(Customer::ClassifiedAt),
        ];
        // SQLite adds one column per ALTER TABLE.
        for mut col in columns {
            manager.alter_table(Table::alter().table(Customer::Table).add_column(&mut col).to_owned()).await?;
        }
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX idx_customer_tier ON customer (tier, id)",
            "CREATE INDEX idx_customer_lifecycle ON customer (lifecycle_stage, id)",
            "CREATE INDEX idx_customer_revenue ON customer (revenue_minor, id)",
            "CREATE INDEX idx_customer_last_purchase ON customer (last_purchase_on)",
            "CREATE INDEX idx_classification_history_customer ON classification_history (customer_id, at)",
            "CREATE INDEX idx_classification_history_at ON classification_history (at)",
            "CREATE INDEX idx_deal_won ON deal (customer_id, stage, actual_close_date)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let mut insert = Query::insert();
        insert
            .into_table(ClassificationPolicy::Table)
            .columns([
                ClassificationPolicy::Id,
                ClassificationPolicy::Policy,
                ClassificationPolicy::Version,
                ClassificationPolicy::UpdatedAt,
            ])
            .values_panic([
                1.into(),
                Expr::val(DEFAULT_POLICY).cast_as(Alias::new(json_type(manager))),
                1.into(),
                Expr::current_timestamp(),
            ]);
        manager.exec_stmt(insert.to_owned()).await?;
        let mut rates = Query::insert();
        rates.into_table(ExchangeRate::Table).columns([
            ExchangeRate::Currency,
            ExchangeRate::RatePpm,
            ExchangeRate::UpdatedAt,
        ]);
        for (currency, ppm) in [
            ("CNY", 1_000_000i64),
            ("USD", 7_100_000),
            ("EUR", 7_700_000),
            ("HKD", 910_000),
            ("JPY", 47_000),
            ("GBP", 9_000_000),
        ] {
            rates.values_panic([currency.into(), ppm.into(), Expr::current_timestamp()]);
        }
        manager.exec_stmt(rates.to_owned()).await?;
        Ok(())
    }
}

fn json_type(manager: &SchemaManager) -> &'static str {
    match manager.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "jsonb",
        _ => "text",
    }
}
