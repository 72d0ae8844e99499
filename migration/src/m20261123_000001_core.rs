//! The core tables: departments, users, permissions, settings, customers and their
//! contacts, deals, line items, feedback, interactions, and the audit log.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Department {
    Table,
    Id,
    Name,
    ParentId,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
    DepartmentId,
    Active,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RolePermission {
    Table,
    Role,
    Resource,
    Action,
    Scope,
    IncludePool,
}

#[derive(DeriveIden)]
enum Setting {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Customer {
    Table,
    Id,
    Kind,
    Category,
    Name,
    NameNorm,
    Gender,
    Birthday,
    Phone,
    PhoneNorm,
    Email,
    EmailNorm,
    Address,
    Region,
    Industry,
    Source,
    Importance,
    CreditRating,
    CooperationStartDate,
    SoftProfile,
    CustomFields,
    OwnerId,
    DepartmentId,
    LifecycleStage,
    Tier,
    CreatedBy,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Contact {
    Table,
    Id,
    CustomerId,
    Name,
    Gender,
    Title,
    DealRole,
    Birthday,
    Mobile,
    OfficePhone,
    Email,
    Address,
    Hometown,
    Hobbies,
    IdNumber,
    Notes,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Deal {
    Table,
    Id,
    CustomerId,
    OwnerId,
    Title,
    Stage,
    AmountMinor,
    Currency,
    ExpectedCloseDate,
    ActualCloseDate,
    LostReason,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum DealLineItem {
    Table,
    Id,
    DealId,
    Position,
    Product,
    Sku,
    Quantity,
    UnitPriceMinor,
    UnitCostMinor,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Feedback {
    Table,
    Id,
    CustomerId,
    ContactId,
    Kind,
    Channel,
    Rating,
    Nps,
    Content,
    Status,
    HandlerId,
    Resolution,
    ResolvedAt,
    CreatedBy,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Interaction {
    Table,
    Id,
    CustomerId,
    ContactId,
    UserId,
    Kind,
    Direction,
    OccurredAt,
    Summary,
    Outcome,
    NextFollowUpOn,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    ActorId,
    Action,
    Entity,
    RecordId,
    OldValues,
    NewValues,
    At,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(name).from(from.0, from.1).to(to.0, to.1).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Department::Table)
                    .col(pk_uuid(Department::Id))
                    .col(string(Department::Name))
                    .col(uuid_null(Department::ParentId))
                    .col(integer(Department::Version).default(1))
                    .col(timestamp_with_time_zone(Department::CreatedAt))
                    .col(timestamp_with_time_zone(Department::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_department_parent",
                        (Department::Table, Department::ParentId),
                        (Department::Table, Department::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(User::Table)
                    .col(pk_uuid(User::Id))
                    .col(string(User::Email))
                    .col(string(User::Name))
                    .col(string(User::PasswordHash))
                    .col(string(User::Role))
                    .col(uuid(User::DepartmentId))
                    .col(boolean(User::Active).default(true))
                    .col(integer(User::Version).default(1))
                    .col(timestamp_with_time_zone(User::CreatedAt))
                    .col(timestamp_with_time_zone(User::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_user_department",
                        (User::Table, User::DepartmentId),
                        (Department::Table, Department::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolePermission::Table)
                    .col(string(RolePermission::Role))
                    .col(string(RolePermission::Resource))
                    .col(string(RolePermission::Action))
                    .col(string(RolePermission::Scope))
                    .col(boolean(RolePermission::IncludePool).default(false))
                    .primary_key(
                        Index::create()
                            .name("pk_role_permission")
                            .col(RolePermission::Role)
                            .col(RolePermission::Resource)
                            .col(RolePermission::Action),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Setting::Table)
                    .col(string(Setting::Key).primary_key())
                    .col(text(Setting::Value))
                    .col(timestamp_with_time_zone(Setting::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Customer::Table)
                    .col(pk_uuid(Customer::Id))
                    .col(string(Customer::Kind))
                    .col(string(Customer::Category))
                    .col(string(Customer::Name))
                    .col(string_null(Customer::NameNorm))
                    .col(string_null(Customer::Gender))
                    .col(date_null(Customer::Birthday))
                    .col(string_null(Customer::Phone))
                    .col(string_null(Customer::PhoneNorm))
                    .col(string_null(Customer::Email))
                    .col(string_null(Customer::EmailNorm))
                    .col(text_null(Customer::Address))
                    .col(string_null(Customer::Region))
                    .col(string_null(Customer::Industry))
                    .col(string_null(Customer::Source))
                    .col(string_null(Customer::Importance))
                    .col(string_null(Customer::CreditRating))
                    .col(date_null(Customer::CooperationStartDate))
                    .col(json_binary_null(Customer::SoftProfile))
                    .col(json_binary_null(Customer::CustomFields))
                    .col(uuid_null(Customer::OwnerId))
                    .col(uuid(Customer::DepartmentId))
                    .col(string(Customer::LifecycleStage))
                    .col(string(Customer::Tier))
                    .col(uuid_null(Customer::CreatedBy))
                    .col(integer(Customer::Version).default(1))
                    .col(timestamp_with_time_zone(Customer::CreatedAt))
                    .col(timestamp_with_time_zone(Customer::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Customer::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_customer_owner",
                        (Customer::Table, Customer::OwnerId),
                        (User::Table, User::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_customer_department",
                        (Customer::Table, Customer::DepartmentId),
                        (Department::Table, Department::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_customer_created_by",
                        (Customer::Table, Customer::CreatedBy),
                        (User::Table, User::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Contact::Table)
                    .col(pk_uuid(Contact::Id))
                    .col(uuid(Contact::CustomerId))
                    .col(string(Contact::Name))
                    .col(string_null(Contact::Gender))
                    .col(string_null(Contact::Title))
                    .col(string_null(Contact::DealRole))
                    .col(date_null(Contact::Birthday))
                    .col(string_null(Contact::Mobile))
                    .col(string_null(Contact::OfficePhone))
                    .col(string_null(Contact::Email))
                    .col(text_null(Contact::Address))
                    .col(string_null(Contact::Hometown))
                    .col(text_null(Contact::Hobbies))
                    .col(string_null(Contact::IdNumber))
                    .col(text_null(Contact::Notes))
                    .col(integer(Contact::Version).default(1))
                    .col(timestamp_with_time_zone(Contact::CreatedAt))
                    .col(timestamp_with_time_zone(Contact::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Contact::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_contact_customer",
                        (Contact::Table, Contact::CustomerId),
                        (Customer::Table, Customer::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Deal::Table)
                    .col(pk_uuid(Deal::Id))
                    .col(uuid(Deal::CustomerId))
                    .col(uuid_null(Deal::OwnerId))
                    .col(string(Deal::Title))
                    .col(string(Deal::Stage))
                    .col(big_integer(Deal::AmountMinor))
                    .col(string_len(Deal::Currency, 3))
                    .col(date_null(Deal::ExpectedCloseDate))
                    .col(date_null(Deal::ActualCloseDate))
                    .col(text_null(Deal::LostReason))
                    .col(integer(Deal::Version).default(1))
                    .col(timestamp_with_time_zone(Deal::CreatedAt))
                    .col(timestamp_with_time_zone(Deal::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Deal::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_deal_customer",
                        (Deal::Table, Deal::CustomerId),
                        (Customer::Table, Customer::Id),
                    ))
                    .foreign_key(&mut fk("fk_deal_owner", (Deal::Table, Deal::OwnerId), (User::Table, User::Id)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DealLineItem::Table)
                    .col(pk_uuid(DealLineItem::Id))
                    .col(uuid(DealLineItem::DealId))
                    .col(integer(DealLineItem::Position))
                    .col(string(DealLineItem::Product))
                    .col(string_null(DealLineItem::Sku))
                    .col(big_integer(DealLineItem::Quantity))
                    .col(big_integer(DealLineItem::UnitPriceMinor))
                    .col(big_integer_null(DealLineItem::UnitCostMinor))
                    .col(timestamp_with_time_zone(DealLineItem::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_deal_line_item_deal",
                        (DealLineItem::Table, DealLineItem::DealId),
                        (Deal::Table, Deal::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Feedback::Table)
                    .col(pk_uuid(Feedback::Id))
                    .col(uuid(Feedback::CustomerId))
                    .col(uuid_null(Feedback::ContactId))
                    .col(string(Feedback::Kind))
                    .col(string(Feedback::Channel))
                    .col(integer_null(Feedback::Rating))
                    .col(integer_null(Feedback::Nps))
                    .col(text(Feedback::Content))
                    .col(string(Feedback::Status))
                    .col(uuid_null(Feedback::HandlerId))
                    .col(text_null(Feedback::Resolution))
                    .col(timestamp_with_time_zone_null(Feedback::ResolvedAt))
                    .col(uuid_null(Feedback::CreatedBy))
                    .col(integer(Feedback::Version).default(1))
                    .col(timestamp_with_time_zone(Feedback::CreatedAt))
                    .col(timestamp_with_time_zone(Feedback::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Feedback::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_feedback_customer",
                        (Feedback::Table, Feedback::CustomerId),
                        (Customer::Table, Customer::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_feedback_contact",
                        (Feedback::Table, Feedback::ContactId),
                        (Contact::Table, Contact::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_feedback_handler",
                        (Feedback::Table, Feedback::HandlerId),
                        (User::Table, User::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Interaction::Table)
                    .col(pk_uuid(Interaction::Id))
                    .col(uuid(Interaction::CustomerId))
                    .col(uuid_null(Interaction::ContactId))
                    .col(uuid(Interaction::UserId))
                    .col(string(Interaction::Kind))
                    .col(string(Interaction::Direction))
                    .col(timestamp_with_time_zone(Interaction::OccurredAt))
                    .col(text(Interaction::Summary))
                    .col(text_null(Interaction::Outcome))
                    .col(date_null(Interaction::NextFollowUpOn))
                    .col(integer(Interaction::Version).default(1))
                    .col(timestamp_with_time_zone(Interaction::CreatedAt))
                    .col(timestamp_with_time_zone(Interaction::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Interaction::DeletedAt))
                    .foreign_key(&mut fk(
                        "fk_interaction_customer",
                        (Interaction::Table, Interaction::CustomerId),
                        (Customer::Table, Customer::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_interaction_contact",
                        (Interaction::Table, Interaction::ContactId),
                        (Contact::Table, Contact::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_interaction_user",
                        (Interaction::Table, Interaction::UserId),
                        (User::Table, User::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(uuid_null(AuditLog::ActorId))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Entity))
                    .col(uuid(AuditLog::RecordId))
                    .col(json_binary_null(AuditLog::OldValues))
                    .col(json_binary_null(AuditLog::NewValues))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .to_owned(),
            )
            .await?;

        // Plain indexes for foreign keys, scoping and default orderings.
        let plain: &[(&str, &str, &[&str])] = &[
            ("idx_department_parent", "department", &["parent_id"]),
            ("idx_user_department", "user", &["department_id"]),
            ("idx_customer_owner", "customer", &["owner_id"]),
            ("idx_customer_department", "customer", &["department_id"]),
            ("idx_customer_created", "customer", &["created_at", "id"]),
            ("idx_customer_name", "customer", &["name", "id"]),
            ("idx_contact_customer", "contact", &["customer_id", "created_at"]),
            ("idx_deal_customer", "deal", &["customer_id", "created_at"]),
            ("idx_deal_owner", "deal", &["owner_id"]),
            ("idx_deal_line_item_deal", "deal_line_item", &["deal_id", "position"]),
            ("idx_feedback_customer", "feedback", &["customer_id", "created_at"]),
            ("idx_interaction_customer", "interaction", &["customer_id", "created_at"]),
            ("idx_interaction_user", "interaction", &["user_id", "occurred_at"]),
            ("idx_audit_log_record", "audit_log", &["entity", "record_id", "at"]),
        ];
        for (name, table, cols) in plain {
            let mut index = Index::create();
            index.name(*name).table(Alias::new(*table));
            for col in *cols {
                index.col(Alias::new(*col));
            }
            manager.create_index(index.to_owned()).await?;
        }

        // Named unique keys. Partial indexes (live rows only) are plain SQL that SQLite
        // and PostgreSQL both accept; the names are what errors are mapped by.
        let db = manager.get_connection();
        for sql in [
            r#"CREATE UNIQUE INDEX uq_user_email ON "user" (email)"#,
            r#"CREATE UNIQUE INDEX uq_department_parent_name ON department (parent_id, name)"#,
            r#"CREATE UNIQUE INDEX uq_customer_phone_norm ON customer (phone_norm) WHERE deleted_at IS NULL"#,
            r#"CREATE UNIQUE INDEX uq_customer_email_norm ON customer (email_norm) WHERE deleted_at IS NULL"#,
            r#"CREATE UNIQUE INDEX uq_customer_org_name_norm ON customer (name_norm) WHERE deleted_at IS NULL"#,
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
