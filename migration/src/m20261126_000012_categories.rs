//! The category catalogue as data (seed 004): main categories and sub-categories, each
//! with its field template (required built-in fields, custom field definitions), usable
//! everywhere or in one department's subtree. Seeded with seed 004's main categories and
//! its example sub-categories; the templates start empty, so nothing entered before this
//! migration becomes invalid.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Category {
    Table,
    Key,
    Name,
    ParentKey,
    DepartmentId,
    RequiredFields,
    Fields,
    Position,
    Active,
    Version,
    CreatedAt,
    UpdatedAt,
}

/// (key, name, parent): seed 004's "客户主分类" example.
const SEEDED: &[(&str, &str, Option<&str>)] = &[
    ("retail", "个人零售客户", None),
    ("vip", "VIP客户(会员客户)", None),
    ("supplier", "供应商", None),
    ("supplier_software", "软件供应商", Some("supplier")),
    ("supplier_hardware", "硬件供应商", Some("supplier")),
    ("competitor", "竞争对手", None),
    ("partner", "合作伙伴", None),
    ("partner_mall", "商场专柜", Some("partner")),
    ("partner_bank_tax", "工商银行税务", Some("partner")),
    ("partner_hotel", "酒店", Some("partner")),
    ("partner_media", "广告杂志报社", Some("partner")),
    ("other", "其他", None),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Category::Table)
                    .col(string_len(Category::Key, 40).primary_key())
                    .col(string_len(Category::Name, 100))
                    .col(string_len_null(Category::ParentKey, 40))
                    .col(uuid_null(Category::DepartmentId))
                    .col(json_binary(Category::RequiredFields))
                    .col(json_binary(Category::Fields))
                    .col(integer(Category::Position).default(0))
                    .col(boolean(Category::Active).default(true))
                    .col(integer(Category::Version).default(1))
                    .col(timestamp_with_time_zone(Category::CreatedAt))
                    .col(timestamp_with_time_zone(Category::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let json = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "jsonb",
            _ => "text",
        };
        let mut insert = Query::insert();
        insert.into_table(Category::Table).columns([
            Category::Key,
            Category::Name,
            Category::ParentKey,
            Category::RequiredFields,
            Category::Fields,
            Category::Position,
            Category::Active,
            Category::Version,
            Category::CreatedAt,
            Category::UpdatedAt,
        ]);
        for (i, (key, name, parent)) in SEEDED.iter().enumerate() {
            insert.values_panic([
                (*key).into(),
                (*name).into(),
                parent.map(str::to_string).into(),
                Expr::val("[]").cast_as(Alias::new(json)),
                Expr::val("[]").cast_as(Alias::new(json)),
                <i32 as TryFrom<usize>>::try_from(i * 10).unwrap_or(0).into(),
                true.into(),
                1.into(),
                Expr::current_timestamp(),
                Expr::current_timestamp(),
            ]);
        }
        manager.exec_stmt(insert.to_owned()).await?;
        Ok(())
    }
}
