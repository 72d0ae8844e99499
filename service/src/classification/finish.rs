//! The regrade at the end of a write: a customer whose deals changed (created, updated,
//! line items replaced, trashed, restored) or into whom others were merged is regraded
//! once, before the write commits, after every change of the use case is made (a deal's
//! new line items are in; a merge has moved the records). Registered with the kernel's
//! finishers, so the deal and customer writes need not know the engine. An import defers
//! it (`kernel::store::deferring`) and regrades each chunk's customers in id order.
use crate::classification::{Reason, recompute};
use crate::error::AppResult;
use crate::kernel::change::{Change, Subject, Verb};
use crate::kernel::store::{FINISHERS, Finisher, Finishing};
use entity::enums::DealStage;
use linkme::distributed_slice;
use sea_orm::DatabaseTransaction;
use serde_json::Value;
use uuid::Uuid;

#[distributed_slice(FINISHERS)]
static REGRADE: Finisher = Finisher { name: "regrade", run: regrade };

fn regrade<'a>(txn: &'a DatabaseTransaction, changes: &'a [Change]) -> Finishing<'a> {
    Box::pin(async move {
        for (customer, reason, actor) in due(changes) {
            recompute(txn, customer, reason, actor).await?;
        }
        AppResult::Ok(())
    })
}

/// Why a deal write changes its customer's classification.
pub fn deal_reason(before: Option<DealStage>, after: DealStage) -> Reason {
    match after {
        DealStage::Won if before != Some(DealStage::Won) => Reason::DealWon,
        DealStage::Lost if before != Some(DealStage::Lost) => Reason::DealLost,
        _ => Reason::DealChanged,
    }
}

/// The customers to regrade after `changes`, each once, with the reason of its first
/// change and who made it, in id order (each regrade locks its customer until the commit;
/// a full pass takes the same locks in id order, so two writes never wait on each other
/// in a circle).
fn due(changes: &[Change]) -> Vec<(Uuid, Reason, Option<Uuid>)> {
    let mut out: Vec<(Uuid, Reason, Option<Uuid>)> = Vec::new();
    for change in changes {
        if let Some((customer, reason)) = regrades(change)
            && !out.iter().any(|(c, ..)| *c == customer)
        {
            out.push((customer, reason, change.actor));
        }
    }
    out.sort_by_key(|(c, ..)| *c);
    out
}

/// The customer a change regrades, and why.
fn regrades(change: &Change) -> Option<(Uuid, Reason)> {
    // A created deal's row comes with its line items.
    let row = |v: &Option<Value>| v.as_ref().map(|v| v.get("deal").cloned().unwrap_or_else(|| v.clone()));
    let stage = |r: &Option<Value>| {
        r.as_ref().and_then(|r| r.get("stage")).and_then(|s| serde_json::from_value(s.clone()).ok())
    };
    let customer_of = |r: &Option<Value>| {
        r.as_ref().and_then(|r| r.get("customer_id")).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
    };
    match (change.subject, change.verb) {
        (Subject::Deal, Verb::Create | Verb::Update | Verb::Delete | Verb::Restore) => {
            let (old, new) = (row(&change.old), row(&change.new));
            let customer = customer_of(&new).or_else(|| customer_of(&old))?;
            let reason = match change.verb {
                Verb::Create | Verb::Update => deal_reason(stage(&old), stage(&new)?),
                _ => Reason::DealChanged,
            };
            Some((customer, reason))
        }
        // The merge's summary (not a row: no version), written once the records moved.
        (Subject::Customer, Verb::Merge) if change.new.as_ref().is_some_and(|n| n.get("merged").is_some()) => {
            Some((change.id, Reason::Merge))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_regrade_is_registered_with_the_kernel() {
        assert_eq!(FINISHERS.iter().filter(|f| f.name == "regrade").count(), 1);
    }

    #[test]
    fn each_customer_once_with_its_first_reason() {
        let (c1, c2, deal) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let change = |subject, verb, old: Option<Value>, new: Option<Value>| Change {
            subject,
            id: deal,
            verb,
            actor: None,
            old,
            new,
        };
        let open = json!({"customer_id": c1, "stage": "NEGOTIATION"});
        let won = json!({"customer_id": c1, "stage": "WON"});
        let changes = [
            change(Subject::Deal, Verb::Update, Some(open.clone()), Some(won.clone())),
            change(Subject::Deal, Verb::ReplaceLineItems, Some(json!([])), Some(json!([]))),
            change(Subject::Deal, Verb::Create, None, Some(json!({"deal": {"customer_id": c2, "stage": "LOST"}}))),
            change(Subject::Deal, Verb::Delete, Some(won.clone()), Some(won.clone())),
            change(Subject::Customer, Verb::Update, Some(json!({})), Some(json!({"version": 2}))),
        ];
        let due: Vec<(Uuid, Reason)> = due(&changes).into_iter().map(|(c, r, _)| (c, r)).collect();
        let mut expected = vec![(c1, Reason::DealWon), (c2, Reason::DealLost)];
        expected.sort_by_key(|(c, _)| *c);
        assert_eq!(due, expected);
        let merged = Change {
            subject: Subject::Customer,
            id: c2,
            verb: Verb::Merge,
            actor: None,
            old: None,
            new: Some(json!({"merged": [c1]})),
        };
        assert_eq!(regrades(&merged), Some((c2, Reason::Merge)));
        let gone = Change { new: Some(json!({"version": 3, "merged_into": c2})), ..merged };
        assert_eq!(regrades(&gone), None);
    }
}
