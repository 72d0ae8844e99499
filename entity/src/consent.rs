//! A customer's marketing consent on one channel: when given, when withdrawn, and where it
//! was recorded (seed 003: do not pester customers).
use crate::enums::ConsentChannel;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "consent")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: ConsentChannel,
    pub given_at: Option<DateTimeUtc>,
    /// Set when withdrawn after being given; consent counts while given and not withdrawn.
    pub withdrawn_at: Option<DateTimeUtc>,
    /// Where it was recorded: a signed form, the web shop's checkbox, a call.
    pub source: Option<String>,
    pub recorded_by: Option<Uuid>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
