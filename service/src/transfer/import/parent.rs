//! The customer a contact or deal line hangs off: named by `customerId` or by one of the
//! customer's natural keys, and one the importer may add such records to.
use crate::error::{AppError, AppResult, FieldError};
use crate::kernel::normalize;
use crate::records::{CustomerRecord, check_parent};
use crate::transfer::import::{Cells, Field, Importer, Outcome};
use entity::customer::{self, Column as C};
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
        match check_parent::<E>(txn, self.actor, crate::kernel::types::Id::new(parent.id)).await {
            Ok(_) => Ok(Ok(parent)),
            Err(AppError::NotFound(_) | AppError::Forbidden(_)) => Ok(Err(self.theirs(txn, number, &parent).await?)),
            Err(e) => Err(e),
        }
    }
}

/// A contact's or deal's write for one line, as tried in its savepoint.
pub(super) struct Attempt {
    pub number: i64,
    pub parent: customer::Model,
    /// The line matched a stored record (the write was an update).
    pub matched: bool,
    /// The line's own cell problems (the service's checks ran all the same).
    pub problems: Vec<FieldError>,
    /// The keys a creation is remembered under on a dry run.
    pub remembered: Vec<String>,
    /// A FORBIDDEN update means the record is someone else's (DUPLICATE); otherwise it is
    /// a field group the importer may not change (FAILED with its reason).
    pub forbidden_is_theirs: bool,
}

impl Importer<'_> {
    /// Ends a child record's savepoint: kept when the line had no problems of its own and
    /// the write changed something (an unchanged write is undone, so a re-run moves no
    /// version and writes no audit row); returns the line's outcome and whether it was
    /// kept.
    ///
    /// # Errors
    /// Database errors, INTERNAL ones of the write.
    pub(super) async fn settle(
        &mut self,
        txn: &DatabaseTransaction,
        sp: DatabaseTransaction,
        attempt: Attempt,
        result: AppResult<Outcome>,
    ) -> AppResult<(Outcome, bool)> {
        let Attempt { number, parent, matched, mut problems, remembered, forbidden_is_theirs } = attempt;
        let kept = problems.is_empty() && result.as_ref().is_ok_and(|o| o.outcome != ImportOutcome::Unchanged);
        if kept {
            sp.commit().await?;
        } else {
            sp.rollback().await?;
        }
        if let Ok(Outcome { outcome: ImportOutcome::Created, record_id: Some(id), .. }) = &result
            && kept
        {
            self.created(*id);
            self.remember(number, remembered, None);
        }
        let outcome = match result {
            Ok(_) if !problems.is_empty() => Outcome::invalid(number, problems),
            Ok(o) => o,
            Err(AppError::Validation(mut fields)) => {
                problems.append(&mut fields);
                Outcome::invalid(number, problems)
            }
            Err(e @ AppError::Duplicate { .. }) => {
                Outcome::new(number, ImportOutcome::Duplicate, None, Some(e.to_string()))
            }
            Err(e @ AppError::Internal(_)) => return Err(e),
            Err(AppError::NotFound(_)) if matched => self.theirs(txn, number, &parent).await?,
            Err(AppError::Forbidden(_)) if matched && forbidden_is_theirs => self.theirs(txn, number, &parent).await?,
            Err(e) => Outcome::new(number, ImportOutcome::Failed, None, Some(e.to_string())),
        };
        Ok((outcome, kept))
    }

    /// DUPLICATE: the line's record is someone else's (its customer's department named).
    async fn theirs(&mut self, txn: &DatabaseTransaction, number: i64, parent: &customer::Model) -> AppResult<Outcome> {
        let message = self.untouchable(txn, parent).await?;
        Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)))
    }
}
