//! Deals imported the way contacts are (`POST /imports/deals`): each line names its
//! customer by id or natural key and is matched among that customer's live deals by id,
//! else by title and close date; the deal service writes, in a savepoint of the chunk,
//! so its checks and the customer's regrading are the API's.
use crate::classification::Reason;
use crate::error::AppResult;
use crate::kernel::types::Id;
use crate::records::deal as service;
use crate::transfer::import::parent::Attempt;
use crate::transfer::import::{Cells, Field, FieldName, Importer, Outcome, choice, date};
use entity::deal;
use entity::enums::{DealStage, ImportOutcome};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

/// Each deal field an import reads (its other headers: `catalogue::DEAL`).
pub(super) const FIELDS: &[FieldName] = &[
    (Field::Id, "id"),
    (Field::CustomerId, "customerId"),
    (Field::CustomerName, "customerName"),
    (Field::CustomerPhone, "customerPhone"),
    (Field::CustomerEmail, "customerEmail"),
    (Field::Title, "title"),
    (Field::Stage, "stage"),
    (Field::Amount, "amount"),
    (Field::Currency, "currency"),
    (Field::ExpectedCloseDate, "expectedCloseDate"),
    (Field::ActualCloseDate, "actualCloseDate"),
    (Field::LostReason, "lostReason"),
];

/// Whether two versions of a deal hold the same.
fn same(a: &deal::Model, b: &deal::Model) -> bool {
    (&a.title, a.stage, a.amount_minor, &a.currency, a.expected_close_date, a.actual_close_date, &a.lost_reason)
        == (&b.title, b.stage, b.amount_minor, &b.currency, b.expected_close_date, b.actual_close_date, &b.lost_reason)
}

impl Importer<'_> {
    /// One deal line, in a savepoint of the chunk's transaction.
    pub(super) async fn deal_line(
        &mut self,
        txn: &DatabaseTransaction,
        number: i64,
        cells: &Cells,
    ) -> AppResult<Outcome> {
        let mut problems = Vec::new();
        let stage = choice(
            &mut problems,
            "stage",
            cells.get(Field::Stage),
            DealStage::parse,
            &[
                ("线索", DealStage::Lead),
                ("已确认", DealStage::Qualified),
                ("方案", DealStage::Proposal),
                ("谈判", DealStage::Negotiation),
                ("成交", DealStage::Won),
                ("赢单", DealStage::Won),
                ("丢单", DealStage::Lost),
                ("输单", DealStage::Lost),
            ],
            "LEAD (线索), QUALIFIED (已确认), PROPOSAL (方案), NEGOTIATION (谈判), WON (成交), LOST (丢单)",
        );
        let expected = date(&mut problems, "expectedCloseDate", cells.get(Field::ExpectedCloseDate));
        let actual = date(&mut problems, "actualCloseDate", cells.get(Field::ActualCloseDate));
        let parent = match self.parent_of::<deal::Entity>(txn, number, cells, problems.clone()).await? {
            Ok(parent) => parent,
            Err(outcome) => return Ok(outcome),
        };
        // Only deals the importer may read are matched (and counted in a DUPLICATE).
        let siblings = deal::Entity::find()
            .filter(deal::Column::CustomerId.eq(parent.id))
            .filter(deal::Column::DeletedAt.is_null())
            .filter(crate::records::read_condition::<deal::Entity>(self.actor))
            .all(txn)
            .await?;
        // A deal is its id, else its title and close date (a customer reorders the same
        // product: another date is another deal).
        let id = cells.get(Field::Id).and_then(|id| Uuid::parse_str(id).ok());
        let title = cells.get(Field::Title).map(str::trim);
        // A date the line gives matches that date or none yet (an open deal being closed);
        // a line without a close date matches only deals without one (a reorder is not
        // last year's won deal).
        let matches: Vec<&deal::Model> = match id.and_then(|id| siblings.iter().find(|d| d.id == id)) {
            Some(d) => vec![d],
            None => siblings
                .iter()
                .filter(|d| {
                    title == Some(d.title.as_str())
                        && match actual {
                            Some(a) => d.actual_close_date.is_none_or(|x| x == a),
                            None => d.actual_close_date.is_none(),
                        }
                        && expected.is_none_or(|e| d.expected_close_date.is_none_or(|x| x == e))
                })
                .collect(),
        };
        let existing = match matches.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            // With bad cells the line is INVALID anyway (below), whatever it matched.
            _ if !problems.is_empty() => None,
            many => {
                let message = format!("matches {} deals of that customer; give the id or the close date", many.len());
                return Ok(Outcome::new(number, ImportOutcome::Duplicate, None, Some(message)));
            }
        };
        let remembered: Vec<String> =
            title.map(|t| format!("deal:{}:{t}:{actual:?}:{expected:?}", parent.id)).into_iter().collect();
        if existing.is_none()
            && let Some(repeat) = self.repeat_of(number, &remembered, "deal", None, problems.clone())
        {
            return Ok(repeat);
        }
        let text = |f: Field| cells.text(f);
        let matched = existing.is_some();
        let before_stage = existing.as_ref().map(|d| d.stage);
        let sp = txn.begin().await?;
        let result = match existing {
            None => {
                let input = service::NewDeal {
                    customer_id: Id::new(parent.id),
                    title: text(Field::Title).unwrap_or_default(),
                    stage,
                    amount: text(Field::Amount).map(|a| a.replace(',', "")),
                    currency: text(Field::Currency),
                    expected_close_date: expected,
                    actual_close_date: actual,
                    lost_reason: text(Field::LostReason),
                    line_items: Vec::new(),
                };
                service::create(&sp, self.actor, input)
                    .await
                    .map(|m| Outcome::new(number, ImportOutcome::Created, Some(m.id), None))
            }
            Some(old) => {
                let patch = service::DealPatch {
                    title: text(Field::Title),
                    stage,
                    amount: text(Field::Amount).map(|a| a.replace(',', "")),
                    currency: text(Field::Currency),
                    expected_close_date: expected.map(Some),
                    actual_close_date: actual.map(Some),
                    lost_reason: text(Field::LostReason).map(Some),
                    line_items: None,
                };
                service::update(&sp, self.actor, old.id, old.version, patch).await.map(|new| {
                    let outcome = if same(&old, &new) { ImportOutcome::Unchanged } else { ImportOutcome::Updated };
                    Outcome::new(number, outcome, Some(new.id), None)
                })
            }
        };
        // A FORBIDDEN update is the amounts group (FAILED with its reason); a deal gone
        // from the importer's reach (NOT_FOUND) is someone else's.
        let parent_id = parent.id;
        let attempt = Attempt { number, parent, matched, problems, remembered, forbidden_is_theirs: false };
        let (outcome, kept) = self.settle(txn, sp, attempt, result).await?;
        if kept {
            // Regraded at the chunk's end, once per customer, in id order; of several
            // deals of one customer, the history says the weightiest reason.
            let reason =
                crate::classification::deal_reason(before_stage, stage.or(before_stage).unwrap_or(DealStage::Lead));
            let weight = |r: Reason| match r {
                Reason::DealWon => 2,
                Reason::DealLost => 1,
                _ => 0,
            };
            let kept = self.regrade.entry(parent_id).or_insert(reason);
            if weight(reason) > weight(*kept) {
                *kept = reason;
            }
        }
        Ok(outcome)
    }
}
