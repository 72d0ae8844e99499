//! The care engine: the care policy (contact standards, reminder rules, frequency cap) as
//! data, the holiday calendar, the message templates, reminders (each created once per
//! rule, target and occasion: a unique key) and the daily runs of the rule evaluation.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CarePolicy {
    Table,
    Id,
    Policy,
    Version,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum Holiday {
    Table,
    Id,
    Name,
    Date,
    Yearly,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MessageTemplate {
    Table,
    Key,
    Body,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Reminder {
    Table,
    Id,
    Rule,
    TargetId,
    Occasion,
    CustomerId,
    ContactId,
    DealId,
    AssigneeId,
    AssigneeRole,
    DueAt,
    Status,
    Reason,
    Message,
    SuppressedReason,
    DismissedReason,
    InteractionId,
    NotifiedAt,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CareRun {
    Table,
    Day,
    StartedAt,
    FinishedAt,
    Created,
}

#[derive(DeriveIden)]
enum Customer {
    Table,
    Id,
}

/// The default policy: seed 001's visit table and seed 003's rules (`docs/care.md`).
/// The table's director and executive rows both fall to the executive role (the closer
/// cadence, the director's, is kept); "when promising" has no cadence and is left out.
const DEFAULT_POLICY: &str = r#"{
  "standards": [
    {"tier": "A", "role": "SALES", "kind": "VISIT", "count": 3, "periodDays": 30},
    {"tier": "A", "role": "SALES", "kind": "CALL", "count": 2, "periodDays": 30},
    {"tier": "A", "role": "MANAGER", "kind": "VISIT", "count": 1, "periodDays": 60},
    {"tier": "A", "role": "EXECUTIVE", "kind": "VISIT", "count": 1, "periodDays": 180},
    {"tier": "B", "role": "SALES", "kind": "VISIT", "count": 2, "periodDays": 30},
    {"tier": "B", "role": "SALES", "kind": "CALL", "count": 1, "periodDays": 30},
    {"tier": "B", "role": "MANAGER", "kind": "VISIT", "count": 1, "periodDays": 90},
    {"tier": "B", "role": "EXECUTIVE", "kind": "VISIT", "count": 1, "periodDays": 365},
    {"tier": "C", "role": "SALES", "kind": "VISIT", "count": 1, "periodDays": 30},
    {"tier": "C", "role": "SALES", "kind": "CALL", "count": 1, "periodDays": 30}
  ],
  "rules": [
    {"kind": "DEAL_GREETING", "enabled": true, "offsetDays": 2, "tiers": [], "promotional": false, "template": "deal_greeting", "assignee": "OWNER"},
    {"kind": "SATISFACTION_SURVEY", "enabled": true, "offsetDays": 7, "tiers": [], "promotional": false, "template": "satisfaction_survey", "assignee": "OWNER"},
    {"kind": "BIRTHDAY", "enabled": true, "offsetDays": 3, "tiers": [], "promotional": true, "template": "birthday", "assignee": "OWNER"},
    {"kind": "HOLIDAY", "enabled": true, "offsetDays": 1, "tiers": ["A", "B", "C"], "promotional": false, "template": "holiday", "assignee": "OWNER"},
    {"kind": "OVERDUE_CONTACT", "enabled": true, "offsetDays": 0, "tiers": ["A", "B", "C"], "promotional": false, "template": "overdue_contact", "assignee": "OWNER"},
    {"kind": "REPEATED_COMPLAINT", "enabled": true, "offsetDays": 0, "tiers": ["A", "B"], "promotional": false, "template": "repeated_complaint", "assignee": "OWNER", "windowDays": 90, "minCount": 2}
  ],
  "frequencyCap": {"maxTouches": 1, "days": 30, "holidayWindowDays": 3},
  "dueHourUtc": 1
}"#;

/// Fixed-date holidays recur yearly; Spring Festival and Mid-Autumn follow the lunar
/// calendar and are listed per year.
const HOLIDAYS: [(&str, &str, bool); 13] = [
    ("元旦 New Year", "2000-01-01", true),
    ("国庆节 National Day", "2000-10-01", true),
    ("圣诞节 Christmas", "2000-12-25", true),
    ("春节 Spring Festival", "2026-02-17", false),
    ("春节 Spring Festival", "2027-02-06", false),
    ("春节 Spring Festival", "2028-01-26", false),
    ("春节 Spring Festival", "2029-02-13", false),
    ("春节 Spring Festival", "2030-02-03", false),
    ("中秋节 Mid-Autumn Festival", "2026-09-25", false),
    ("中秋节 Mid-Autumn Festival", "2027-09-15", false),
    ("中秋节 Mid-Autumn Festival", "2028-10-03", false),
    ("中秋节 Mid-Autumn Festival", "2029-09-22", false),
    ("中秋节 Mid-Autumn Festival", "2030-09-12", false),
];

const TEMPLATES: [(&str, &str); 6] = [
    ("deal_greeting", "{customer}，感谢您选购{product}！使用中有任何问题随时联系我。—— {owner}"),
    ("satisfaction_survey", "{customer}，您购买的{product}已使用一周，效果如何？期待您的反馈。—— {owner}"),
    ("birthday", "{name}，祝您{date}生日快乐，万事如意！—— {owner}"),
    ("holiday", "{customer}，{holiday}快乐！感谢您一直以来的支持。—— {owner}"),
    ("overdue_contact", "{customer}：按标准应{expected}，上次联系是{last}。请安排{kind}。"),
    ("repeated_complaint", "{customer}（{tier}类）{days}天内投诉{count}次，请尽快回访处理。"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CarePolicy::Table)
                    .col(integer(CarePolicy::Id).primary_key())
                    .col(json_binary(CarePolicy::Policy))
                    .col(integer(CarePolicy::Version).default(1))
                    .col(timestamp_with_time_zone(CarePolicy::UpdatedAt))
                    .col(uuid_null(CarePolicy::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Holiday::Table)
                    .col(pk_uuid(Holiday::Id))
                    .col(string(Holiday::Name))
                    .col(date(Holiday::Date))
                    .col(boolean(Holiday::Yearly).default(false))
                    .col(timestamp_with_time_zone(Holiday::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MessageTemplate::Table)
                    .col(string(MessageTemplate::Key).primary_key())
                    .col(text(MessageTemplate::Body))
                    .col(integer(MessageTemplate::Version).default(1))
                    .col(timestamp_with_time_zone(MessageTemplate::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reminder::Table)
                    .col(pk_uuid(Reminder::Id))
                    .col(string(Reminder::Rule))
                    .col(uuid(Reminder::TargetId))
                    .col(string(Reminder::Occasion))
                    .col(uuid(Reminder::CustomerId))
                    .col(uuid_null(Reminder::ContactId))
                    .col(uuid_null(Reminder::DealId))
                    .col(uuid_null(Reminder::AssigneeId))
                    .col(string(Reminder::AssigneeRole))
                    .col(timestamp_with_time_zone(Reminder::DueAt))
                    .col(string(Reminder::Status))
                    .col(text(Reminder::Reason))
                    .col(text(Reminder::Message))
                    .col(text_null(Reminder::SuppressedReason))
                    .col(text_null(Reminder::DismissedReason))
                    .col(uuid_null(Reminder::InteractionId))
                    .col(timestamp_with_time_zone_null(Reminder::NotifiedAt))
                    .col(integer(Reminder::Version).default(1))
                    .col(timestamp_with_time_zone(Reminder::CreatedAt))
                    .col(timestamp_with_time_zone(Reminder::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reminder_customer")
                            .from(Reminder::Table, Reminder::CustomerId)
                            .to(Customer::Table, Customer::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CareRun::Table)
                    .col(date(CareRun::Day).primary_key())
                    .col(timestamp_with_time_zone(CareRun::StartedAt))
                    .col(timestamp_with_time_zone_null(CareRun::FinishedAt))
                    .col(integer(CareRun::Created).default(0))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for sql in [
            // Once per rule, target and occasion, whatever the instances or restarts.
            "CREATE UNIQUE INDEX ux_reminder_occasion ON reminder (rule, target_id, occasion)",
            "CREATE INDEX idx_reminder_assignee ON reminder (assignee_id, status, due_at)",
            "CREATE INDEX idx_reminder_customer ON reminder (customer_id, due_at)",
            "CREATE INDEX idx_reminder_undelivered ON reminder (due_at) WHERE notified_at IS NULL",
            "CREATE UNIQUE INDEX ux_holiday ON holiday (name, date)",
            "CREATE INDEX idx_interaction_customer_time ON interaction (customer_id, occurred_at)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let json = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "jsonb",
            _ => "text",
        };
        let mut insert = Query::insert();
        insert
            .into_table(CarePolicy::Table)
            .columns([CarePolicy::Id, CarePolicy::Policy, CarePolicy::Version, CarePolicy::UpdatedAt])
            .values_panic([
                1.into(),
                Expr::val(DEFAULT_POLICY).cast_as(Alias::new(json)),
                1.into(),
                Expr::current_timestamp(),
            ]);
        manager.exec_stmt(insert.to_owned()).await?;
        let mut holidays = Query::insert();
        holidays.into_table(Holiday::Table).columns([
            Holiday::Id,
            Holiday::Name,
            Holiday::Date,
            Holiday::Yearly,
            Holiday::CreatedAt,
        ]);
        for (i, (name, date, yearly)) in HOLIDAYS.iter().enumerate() {
            let id = uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_4001_0000_0000 + i as u128);
            let date =
                chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| DbErr::Migration(e.to_string()))?;
            holidays.values_panic([
                id.into(),
                (*name).into(),
                date.into(),
                (*yearly).into(),
                Expr::current_timestamp(),
            ]);
        }
        manager.exec_stmt(holidays.to_owned()).await?;
        let mut templates = Query::insert();
        templates.into_table(MessageTemplate::Table).columns([
            MessageTemplate::Key,
            MessageTemplate::Body,
            MessageTemplate::Version,
            MessageTemplate::UpdatedAt,
        ]);
        for (key, body) in TEMPLATES {
            templates.values_panic([key.into(), body.into(), 1.into(), Expr::current_timestamp()]);
        }
        manager.exec_stmt(templates.to_owned()).await?;
        Ok(())
    }
}
