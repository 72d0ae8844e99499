//! The customer a contact or deal line hangs off: named by `customerId` or by one of the
//! customer's natural keys, and one the importer may add such records to.
use super::{Cells, Field, Importer, Outcome};
use crate::error::{AppError, AppResult, FieldError};
use crate::service::normalize;
use crate::service::record::{CustomerRecord, check_parent};
use entity::customer;
use entity::customer::Column as C;
use entity::enums::ImportOutcome;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use uuid::Uuid;

impl Importer<'_> {
    /// The live customers a line's customer columns name: by id, else by each natural
    /// key given (several when they disagree).
    async fn named(&self, txn: &DatabaseTransaction, cells: &Cells) -> AppResult<Vec<customer::Model>> {
        let live = || customer::Entity::find().filter(C::DeletedAt.is_null());
        let mut found: Vec<customer::Model> = Vec::new();
        let mut add = |m: Option<customer::Model>| {
            if let Some(m) = m
                && !found.iter().any(|f| f.id == m.id)
            {
                found.push(m);
            }
        };
        if let Some(id) = cells.get(Field::CustomerId).and_then(|id| Uuid::parse_str(id).ok()) {
            add(live().filter(C::Id.eq(id)).one(txn).await?);
        }
        if let Some(p) = cells.get(Field::CustomerPhone).and_then(|p| normalize::phone_e164(p).ok()) {
            add(live().filter(C::PhoneNorm.eq(p)).one(txn).await?);
        }
        if let Some(e) = cells.get(Field::CustomerEmail).and_then(|e| normalize::email(e).ok()) {
            add(live().filter(C::EmailNorm.eq(e)).one(txn).await?);
        }
        if let Some(n) = cells.get(Field::CustomerName).map(normalize::org_name).filter(|n| !n.is_empty()) {
            add(live().filter(C::NameNorm.eq(n)).one(txn).await?);
        }
        Ok(found)
    }

    /// The customer a line of `E` records hangs off, or the line's outcome when there is
    /// none to use: no match (INVALID, with the line's `problems`), several (DUPLICATE),
    /// or one the importer may not add records of `E` to (DUPLICATE naming its
    /// department, as a customer import reports someone else's customer).
    pub(super) async fn parent_of<E: CustomerRecord>(
        &mut self,
        txn: &DatabaseTransaction,
        number: i64,
        cells: &Cells,
        mut problems: Vec<FieldError>,
    ) -> AppResult<Result<customer::Model, Outcome>> {
        if cells.get(Field::CustomerId).is_some_and(|id| Uuid::parse_str(id).is_err()) {
            problems.push(FieldError::new("customerId", "not an id"));
            return Ok(Err(Outcome::invalid(number, problems)));
        }
        let parent = match self.named(txn, cells).await?.as_slice() {
            [] => {
                problems.push(FieldError::new("customer", "no live customer matches the line's customer columns"));
                return Ok(Err(Outcome::invalid(number, problems)));
            }
            [one] => one.clone(),
            many => {
                let message = format!("the customer columns match {} different customers", many.len());
                return Ok(Err(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message))));
            }
        };
        match check_parent::<E>(txn, self.actor, parent.id).await {
            Ok(_) => Ok(Ok(parent)),
            Err(AppError::NotFound(_) | AppError::Forbidden(_)) => {
                let message = self.untouchable(txn, &parent).await?;
                Ok(Err(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message))))
            }
            Err(e) => Err(e),
        }
    }
}
