//! A product line of a deal; replaced as a whole with its deal.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "deal_line_item")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub deal_id: Uuid,
    pub position: i32,
    pub product: String,
    /// SKU or style number.
    pub sku: Option<String>,
    pub quantity: i64,
    /// Minor units of the deal's currency.
    pub unit_price_minor: i64,
    pub unit_cost_minor: Option<i64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
