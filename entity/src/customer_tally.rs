//! Live customers counted by where they sit (PostgreSQL only; `service/src/customer/tally.rs`).
//!
//! A row holds a number of live customers, or a change to it, for one (department, owner)
//! pair: triggers on `customer` append a row per change, and a folding pass replaces a
//! pair's rows by one row of their sum. The live customers at a pair are the sum of its
//! rows, so a count over any row scope (`Reach::condition` over these two columns) sums
//! a few rows instead of reading every customer's index entry.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "customer_tally")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub department_id: Uuid,
    /// None: the department's public pool.
    pub owner_id: Option<Uuid>,
    /// Live customers added (negative: removed) at this pair.
    pub n: i64,
    /// Whether the row is a folded sum (false: one change, appended by a trigger).
    pub folded: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
