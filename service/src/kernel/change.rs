//! Typed changes: every write yields one [`Change`] (what kind of record, which one, what
//! was done to it, by whom, the row before and after), and [`Change::record`] derives
//! everything a change causes from it, in one place and in the writer's transaction:
//!
//! - the audit row (`audit_log`: its `action` and `entity` are [`Verb::as_str`] and
//!   [`Subject::as_str`], the only place these names are spelt);
//! - the domain event for webhooks (`webhook_event`, the outbox the webhook engine fans
//!   out), see [`Change::event`];
//! - the live signal it raises once committed ([`Change::signal`]);
//! - the webhooks that stop with it: an account that can no longer act (a person
//!   deactivated, an API key revoked) stops the webhooks that read with its rights
//!   ([`Change::silences`]);
//! - a note for the end of its use case, where the engines' finishers see every change of
//!   the use case at once (`kernel::store::FINISHERS`: the regrade after deal writes).
//!
//! Nothing else writes `audit_log` or `webhook_event` rows (the care tick's due reminders
//! raise theirs through [`raise`]), and no action or entity string is written outside this
//! module.
use crate::error::AppResult;
use crate::kernel::events::Signal;
use crate::kernel::{new_id, now};
use entity::enums::WebhookEventKind as Kind;
use entity::{audit_log, webhook, webhook_event};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Declares a string-backed enum: its variants, their stored names, and the list of all.
macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name stored in the audit log.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value stored as `s`, if any.
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// What a change is about: a record of a family, a setting, a person, a key.
    Subject {
        Customer => "customer",
        Contact => "contact",
        Deal => "deal",
        Feedback => "feedback",
        Interaction => "interaction",
        Consent => "consent",
        User => "user",
        Department => "department",
        RolePermission => "role_permission",
        ApiKey => "api_key",
        Reminder => "reminder",
        Holiday => "holiday",
        MessageTemplate => "message_template",
        Category => "category",
        CarePolicy => "care_policy",
        ClassificationPolicy => "classification_policy",
        ClassificationRun => "classification_run",
        DuplicateReport => "duplicate_report",
        Webhook => "webhook",
        WebhookDelivery => "webhook_delivery",
        ExchangeRate => "exchange_rate",
        /// A list as exported (the change of an export is the export itself).
        CustomerList => "customers",
        ContactList => "contacts",
        DealList => "deals",
    }
}

named! {
    /// What was done.
    Verb {
        Create => "create",
        /// Created or updated by a CSV import line.
        Import => "import",
        /// Created or updated by an integration's upsert by external id.
        Upsert => "upsert",
        Update => "update",
        Delete => "delete",
        Restore => "restore",
        Assign => "assign",
        Claim => "claim",
        /// Returned to the public pool by the pool sweep.
        PoolReturn => "pool_return",
        Merge => "merge",
        OverrideTier => "override_tier",
        LegalHold => "legal_hold",
        ReplaceLineItems => "replace_line_items",
        IdNumberChange => "id_number_change",
        ExportPersonalData => "export_personal_data",
        ErasePersonalData => "erase_personal_data",
        ConsentGiven => "consent_given",
        ConsentWithdrawn => "consent_withdrawn",
        /// A classification run started.
        Start => "start",
        Revoke => "revoke",
        Deactivate => "deactivate",
        Dismiss => "dismiss",
        RotateSecret => "rotate_secret",
        Redeliver => "redeliver",
        PasswordChange => "password_change",
        LogoutEverywhere => "logout_everywhere",
        LoginFailed => "login_failed",
        /// A refresh token was presented twice: its family is revoked.
        RefreshReuse => "refresh_reuse",
        /// A list was exported to CSV.
        Export => "export",
    }
}

/// One change: the record kind, its id, what was done, by whom, and its stored row before
/// and after (as serialised; `None` where there was none).
#[derive(Debug, Clone)]
pub struct Change {
    pub subject: Subject,
    pub id: Uuid,
    pub verb: Verb,
    /// Who made it (`None`: the system, as the pool sweep).
    pub actor: Option<Uuid>,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl Change {
    /// A change of `subject` `id`, with its rows before and after.
    pub fn new<T: Serialize + ?Sized>(
        subject: Subject,
        verb: Verb,
        id: Uuid,
        actor: Option<Uuid>,
        old: Option<&T>,
        new: Option<&T>,
    ) -> Change {
        let to_json = |v: Option<&T>| v.and_then(|v| serde_json::to_value(v).ok());
        Change { subject, id, verb, actor, old: to_json(old), new: to_json(new) }
    }

    /// The domain event this change raises for webhooks, if any, with the customer it is
    /// about: a customer created, assigned, updated, merged away or deleted; a deal that
    /// reaches WON or LOST; feedback received.
    pub fn event(&self) -> Option<(Kind, Uuid)> {
        let id_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
        let (old, new) = (self.old.as_ref(), self.new.as_ref());
        match self.subject {
            Subject::Customer => {
                // Rows only: the merge's summary row (`{"merged": …}`) is no change of a record.
                let row = new.filter(|n| n.get("version").is_some())?;
                let kind = match (self.verb, old) {
                    (Verb::Create | Verb::Import | Verb::Upsert, None) => Kind::CustomerCreated,
                    (Verb::Assign | Verb::Claim | Verb::PoolReturn, _) => Kind::CustomerAssigned,
                    (Verb::Delete, _) => Kind::CustomerDeleted,
                    (Verb::Merge, _) if row.get("merged_into").is_some_and(|m| !m.is_null()) => Kind::CustomerMerged,
                    (
                        Verb::Update | Verb::Restore | Verb::Import | Verb::Upsert | Verb::OverrideTier | Verb::Merge,
                        Some(_),
                    ) => Kind::CustomerUpdated,
                    _ => return None,
                };
                Some((kind, self.id))
            }
            Subject::Deal => {
                // A created deal's row comes with its line items.
                fn row(v: Option<&Value>) -> Option<&Value> {
                    v.map(|v| v.get("deal").unwrap_or(v))
                }
                fn stage(v: Option<&Value>) -> Option<&str> {
                    row(v).and_then(|r| r.get("stage")).and_then(Value::as_str)
                }
                if !matches!(self.verb, Verb::Create | Verb::Import | Verb::Update) || stage(old) == stage(new) {
                    return None;
                }
                let kind = match stage(new)? {
                    "WON" => Kind::DealWon,
                    "LOST" => Kind::DealLost,
                    _ => return None,
                };
                Some((kind, id_of(row(new)?, "customer_id")?))
            }
            Subject::Feedback if matches!(self.verb, Verb::Create | Verb::Import) && old.is_none() => {
                Some((Kind::FeedbackReceived, id_of(new?, "customer_id")?))
            }
            _ => None,
        }
    }

    /// The live signal this change raises once committed: every customer created (by a
    /// front end, an integration, an import or the demo loader) enters at TARGET or
    /// PROSPECT, a lead for `newLead`.
    pub fn signal(&self) -> Option<Signal> {
        match (self.subject, self.verb, &self.old) {
            (Subject::Customer, Verb::Create | Verb::Import | Verb::Upsert, None) => Some(Signal::NewLead(self.id)),
            _ => None,
        }
    }

    /// The account whose webhooks stop with this change, and why: a person deactivated,
    /// or the service account of a revoked API key (the key's row names it).
    pub fn silences(&self) -> Option<(Uuid, &'static str)> {
        match (self.subject, self.verb) {
            (Subject::User, Verb::Deactivate) => Some((self.id, "its account was deactivated")),
            (Subject::ApiKey, Verb::Revoke) => self
                .new
                .as_ref()
                .and_then(|k| k.get("user_id"))
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .map(|account| (account, "its API key was revoked")),
            _ => None,
        }
    }

    /// Writes what the change causes in the writer's transaction: its domain event, if
    /// any, the webhooks it stops, and its audit row. Returns the live signal to publish
    /// after commit.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record(self, db: &impl ConnectionTrait) -> AppResult<Option<Signal>> {
        journal::note(&self);
        if let Some((kind, customer_id)) = self.event() {
            raise(db, kind, self.id, customer_id).await?;
        }
        if let Some((account, why)) = self.silences() {
            disable_webhooks(db, Condition::all().add(webhook::Column::AccountId.eq(account)), why).await?;
        }
        let signal = self.signal();
        audit_log::ActiveModel {
            id: Set(new_id()),
            actor_id: Set(self.actor),
            action: Set(self.verb.as_str().to_string()),
            entity: Set(self.subject.as_str().to_string()),
            record_id: Set(self.id),
            old_values: Set(self.old),
            new_values: Set(self.new),
            at: Set(now()),
        }
        .insert(db)
        .await?;
        Ok(signal)
    }
}

/// The changes of the use case a task's transaction serves, kept for its end
/// (`kernel::store::write` opens a journal and hands what it holds to the finishers).
pub(crate) mod journal {
    use super::Change;
    use std::cell::RefCell;
    use std::future::Future;

    struct Journal {
        /// Whether changes are kept (not for a use case that finishes itself).
        keep: bool,
        changes: Vec<Change>,
    }

    tokio::task_local! {
        static JOURNAL: RefCell<Journal>;
    }

    /// `f` with a journal of its own (returned as is, not wrapped in another future: a
    /// write's future is held by every caller up the stack).
    pub(crate) fn scoped<F: Future>(keep: bool, f: F) -> impl Future<Output = F::Output> {
        JOURNAL.scope(RefCell::new(Journal { keep, changes: Vec::new() }), f)
    }

    /// Whether a journal is open in this task.
    pub(crate) fn open() -> bool {
        JOURNAL.try_with(|_| ()).is_ok()
    }

    /// Notes a recorded change (no journal, or one that keeps nothing: nothing to do).
    pub(crate) fn note(change: &Change) {
        let _ = JOURNAL.try_with(|j| {
            let mut j = j.borrow_mut();
            if j.keep {
                j.changes.push(change.clone());
            }
        });
    }

    /// How many changes are noted.
    pub(crate) fn noted() -> usize {
        JOURNAL.try_with(|j| j.borrow().changes.len()).unwrap_or(0)
    }

    /// Forgets the changes noted after `mark` (their savepoint was rolled back).
    pub(crate) fn forget_after(mark: usize) {
        let _ = JOURNAL.try_with(|j| j.borrow_mut().changes.truncate(mark));
    }

    /// Takes the changes noted so far, still keeping those noted later.
    pub(crate) fn take_kept() -> Vec<Change> {
        JOURNAL.try_with(|j| std::mem::take(&mut j.borrow_mut().changes)).unwrap_or_default()
    }

    /// Takes the noted changes (those noted later are not kept for anyone).
    pub(crate) fn take() -> Vec<Change> {
        JOURNAL
            .try_with(|j| {
                let mut j = j.borrow_mut();
                j.keep = false;
                std::mem::take(&mut j.changes)
            })
            .unwrap_or_default()
    }
}

/// Records a change: [`Change::new`] then [`Change::record`], the signal dropped (the
/// writes whose changes raise one publish it from [`Change::signal`]).
///
/// # Errors
/// Database errors.
pub async fn record<T: Serialize + ?Sized>(
    db: &impl ConnectionTrait,
    actor: Option<Uuid>,
    verb: Verb,
    subject: Subject,
    id: Uuid,
    old: Option<&T>,
    new: Option<&T>,
) -> AppResult<()> {
    Change::new(subject, verb, id, actor, old, new).record(db).await.map(drop)
}

/// Writes one domain event to the outbox, in the caller's transaction.
///
/// # Errors
/// Database errors.
pub async fn raise(db: &impl ConnectionTrait, kind: Kind, record_id: Uuid, customer_id: Uuid) -> AppResult<()> {
    webhook_event::Entity::insert(webhook_event::ActiveModel {
        id: Set(new_id()),
        kind: Set(kind),
        record_id: Set(record_id),
        customer_id: Set(customer_id),
        at: Set(now()),
        dispatched_at: Set(None),
        traceparent: Set(crate::kernel::trace::current()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Turns the active webhooks `which` off for `reason` (their account is gone or their key
/// revoked, the receiver answered 410, too many failures in a row); their pending
/// deliveries wait until they are enabled again.
///
/// # Errors
/// Database errors.
pub async fn disable_webhooks(db: &impl ConnectionTrait, which: Condition, reason: &str) -> AppResult<()> {
    use sea_orm::sea_query::Expr;
    let at = now();
    webhook::Entity::update_many()
        .col_expr(webhook::Column::Active, Expr::value(false))
        .col_expr(webhook::Column::DisabledReason, Expr::value(reason))
        .col_expr(webhook::Column::DisabledAt, Expr::value(at))
        .col_expr(webhook::Column::UpdatedAt, Expr::value(at))
        .filter(which)
        .filter(webhook::Column::Active.eq(true))
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(verb: Verb, subject: Subject, id: Uuid, old: Option<&Value>, new: Option<&Value>) -> Change {
        Change::new(subject, verb, id, None, old, new)
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in Subject::ALL {
            assert_eq!(Subject::parse(s.as_str()), Some(*s));
        }
        for v in Verb::ALL {
            assert_eq!(Verb::parse(v.as_str()), Some(*v));
        }
        let names: std::collections::HashSet<_> = Verb::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(names.len(), Verb::ALL.len());
        assert_eq!(Verb::parse("updat"), None);
    }

    #[test]
    fn changes_raise_their_events_and_signals() {
        use Subject::{Customer, Deal, Feedback};
        let id = Uuid::now_v7();
        let c = Uuid::now_v7().to_string();
        let row = json!({"id": id, "version": 1, "merged_into": null});
        let kind = |verb, subject, old: Option<&Value>, new: Option<&Value>| {
            change(verb, subject, id, old, new).event().map(|(k, _)| k)
        };
        assert_eq!(kind(Verb::Create, Customer, None, Some(&row)), Some(Kind::CustomerCreated));
        assert_eq!(kind(Verb::Import, Customer, None, Some(&row)), Some(Kind::CustomerCreated));
        assert_eq!(kind(Verb::Import, Customer, Some(&row), Some(&row)), Some(Kind::CustomerUpdated));
        assert_eq!(kind(Verb::Claim, Customer, Some(&row), Some(&row)), Some(Kind::CustomerAssigned));
        assert_eq!(kind(Verb::PoolReturn, Customer, Some(&row), Some(&row)), Some(Kind::CustomerAssigned));
        assert_eq!(kind(Verb::Delete, Customer, Some(&row), Some(&row)), Some(Kind::CustomerDeleted));
        let gone = json!({"id": id, "version": 2, "merged_into": c});
        assert_eq!(kind(Verb::Merge, Customer, Some(&row), Some(&gone)), Some(Kind::CustomerMerged));
        assert_eq!(kind(Verb::Merge, Customer, Some(&row), Some(&row)), Some(Kind::CustomerUpdated));
        assert_eq!(kind(Verb::Merge, Customer, None, Some(&json!({"merged": [c]}))), None);
        assert_eq!(kind(Verb::LegalHold, Customer, Some(&row), Some(&row)), None);
        let open = json!({"stage": "NEGOTIATION", "customer_id": c});
        let won = json!({"stage": "WON", "customer_id": c});
        assert_eq!(kind(Verb::Update, Deal, Some(&open), Some(&won)), Some(Kind::DealWon));
        assert_eq!(kind(Verb::Update, Deal, Some(&won), Some(&won)), None);
        assert_eq!(kind(Verb::Create, Deal, None, Some(&json!({"deal": won, "lineItems": []}))), Some(Kind::DealWon));
        assert_eq!(
            kind(Verb::Update, Deal, Some(&open), Some(&json!({"stage": "LOST", "customer_id": c}))),
            Some(Kind::DealLost)
        );
        assert_eq!(kind(Verb::Create, Deal, None, Some(&json!({"deal": open}))), None);
        assert_eq!(kind(Verb::Create, Feedback, None, Some(&json!({"customer_id": c}))), Some(Kind::FeedbackReceived));
        assert_eq!(kind(Verb::Update, Feedback, Some(&json!({})), Some(&json!({"customer_id": c}))), None);

        let lead = |verb, old: Option<&Value>| change(verb, Customer, id, old, Some(&row)).signal();
        assert_eq!(lead(Verb::Create, None), Some(Signal::NewLead(id)));
        assert_eq!(lead(Verb::Import, None), Some(Signal::NewLead(id)));
        assert_eq!(lead(Verb::Import, Some(&row)), None);
        assert_eq!(lead(Verb::Update, Some(&row)), None);
        assert_eq!(change(Verb::Create, Deal, id, None, Some(&open)).signal(), None);

        let account = Uuid::now_v7();
        let key = json!({"id": id, "user_id": account});
        assert_eq!(
            change(Verb::Revoke, Subject::ApiKey, id, Some(&key), Some(&key)).silences().map(|(a, _)| a),
            Some(account)
        );
        assert_eq!(change(Verb::Deactivate, Subject::User, id, None, Some(&row)).silences().map(|(a, _)| a), Some(id));
        assert_eq!(change(Verb::Update, Subject::User, id, None, Some(&row)).silences(), None);
    }
}
