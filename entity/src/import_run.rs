//! One import of a CSV file and its progress (counters move per chunk of lines).
use crate::enums::{ImportKind, ImportStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "import_run")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: ImportKind,
    /// Nothing was (or is being) written: the outcomes are what a real run would do.
    pub dry_run: bool,
    pub status: ImportStatus,
    pub file_name: Option<String>,
    /// The character set the file was read in (UTF-8 or GB18030).
    pub encoding: String,
    pub started_by: Uuid,
    /// Data lines read so far (the header not counted).
    pub lines_read: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub duplicate: i64,
    /// Lines matching a customer the importer may read but not change (the pool).
    pub skipped: i64,
    pub invalid: i64,
    pub failed: i64,
    /// Why the run stopped early (status FAILED).
    pub error: Option<String>,
    pub started_at: DateTimeUtc,
    /// When the run last committed a chunk: a RUNNING run whose heartbeat is old was cut
    /// off (its server stopped) and reads as FAILED.
    pub heartbeat_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
