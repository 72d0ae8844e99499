//! The outcome of one line of an import.
use crate::enums::ImportOutcome;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "import_line")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub run_id: Uuid,
    /// Where the record starts in the file, the header being line 1.
    pub line: i64,
    pub outcome: ImportOutcome,
    /// The record created or updated (or, on a dry run, matched).
    pub record_id: Option<Uuid>,
    pub message: Option<String>,
    /// `[{field, message}]` of an invalid line.
    pub problems: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
