//! Live events for subscriptions: `newLead` and `reminderDue`.
//!
//! The same road carries the changes that end sessions (a user changed, the department
//! tree changed): every instance drops the cached actor and closes the user's sockets
//! (`access/session.rs`).
//!
//! An event travels as a kind and a record id. On PostgreSQL it is published with
//! `pg_notify` and every instance (the publishing one included) receives it through
//! `LISTEN`, loads the record once and hands it to its local subscribers; on SQLite (one
//! instance) it goes straight to the local dispatcher. Subscribers filter in memory by
//! what their actor may read, so one event costs one load per instance, not one query
//! per subscriber.
use crate::access::{Actor, Change, Sessions};
use crate::error::AppResult;
use crate::kernel::events::{CHANNEL, Signal};
use entity::enums::{Action, Resource};
use entity::{customer, reminder};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// The session change a signal carries, if it carries one.
fn session_change(signal: Signal) -> Option<Change> {
    match signal {
        Signal::UserChanged(id) => Some(Change::User(id)),
        Signal::StaffChanged => Some(Change::Everyone),
        Signal::NewLead(_) | Signal::ReminderDue(_) => None,
    }
}

/// An event with its record loaded, shared by every local subscriber.
// Events travel behind an `Arc`, loaded once per instance: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    NewLead(customer::Model),
    ReminderDue { reminder: reminder::Model, customer: customer::Model },
}

/// What a client may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    NewLead,
    ReminderDue,
}

/// Whether `actor` may subscribe to `topic` at all: new leads need customer read access;
/// anyone may hear of their own reminders.
///
/// # Errors
/// FORBIDDEN.
pub fn authorize(actor: &Actor, topic: Topic) -> AppResult<()> {
    match topic {
        Topic::NewLead => actor.require(Resource::Customer, Action::Read).map(|_| ()),
        Topic::ReminderDue => Ok(()),
    }
}

impl Event {
    /// Whether `actor` may receive this event: the same scope rules as a query of the
    /// record (`docs/access.md`), evaluated in memory.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        match self {
            Event::NewLead(c) => actor.may(Resource::Customer, Action::Read, c),
            Event::ReminderDue { reminder, customer } => {
                actor.holds_reminder(reminder, customer) && actor.may(Resource::Customer, Action::Read, customer)
            }
        }
    }
}

/// The instance's event hub.
#[derive(Clone)]
pub struct Events {
    db: DatabaseConnection,
    sessions: Sessions,
    local: broadcast::Sender<Arc<Event>>,
    /// SQLite: signals go straight to the dispatcher.
    direct: Option<mpsc::UnboundedSender<Signal>>,
}

impl Events {
    /// Starts the hub: on PostgreSQL a listener connection, on SQLite a local queue.
    ///
    /// # Errors
    /// When the PostgreSQL listener cannot connect.
    pub async fn start(db: DatabaseConnection, sessions: Sessions) -> Result<Events, String> {
        // Room for bursts (a holiday's reminders); a subscriber that falls further behind
        // skips what it missed rather than holding memory for everyone.
        let (local, _) = broadcast::channel(16_384);
        let (tx, rx) = mpsc::unbounded_channel::<Signal>();
        let postgres = db.get_database_backend() == sea_orm::DatabaseBackend::Postgres;
        let events = Events {
            db: db.clone(),
            sessions: sessions.clone(),
            local: local.clone(),
            direct: (!postgres).then_some(tx.clone()),
        };
        if postgres {
            let pool = db.get_postgres_connection_pool().clone();
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .map_err(|e| format!("cannot LISTEN: {e}"))?;
            listener.listen(CHANNEL).await.map_err(|e| format!("cannot LISTEN: {e}"))?;
            let forget = sessions.clone();
            tokio::spawn(async move {
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => match Signal::decode(n.payload()) {
                            Some(s) => {
                                let _ = tx.send(s);
                            }
                            None => tracing::warn!(payload = n.payload(), "unknown event"),
                        },
                        // The connection was lost and is listening again: events sent
                        // meanwhile are lost, session changes among them, so every
                        // cached actor goes.
                        Ok(None) => {
                            tracing::warn!("event listener lost its connection and reconnected; events may be lost");
                            forget.forget(Change::Everyone);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event listener failed; reconnecting");
                            forget.forget(Change::Everyone);
                            // Listen again explicitly, so that the cache is dropped once
                            // more only when notifications flow again.
                            loop {
                                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                                match listener.listen(CHANNEL).await {
                                    Ok(()) => break,
                                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN yet"),
                                }
                            }
                            forget.forget(Change::Everyone);
                        }
                    }
                }
            });
        }
        tokio::spawn(dispatch(db, sessions, rx, local));
        Ok(events)
    }

    /// Publishes a signal to every instance. Call it after the transaction that wrote the
    /// record has committed.
    ///
    /// A session change takes effect on this instance before `publish` returns; other
    /// instances follow when the notification reaches them.
    pub async fn publish(&self, signal: Signal) {
        if let Some(change) = session_change(signal) {
            self.sessions.forget(change);
        }
        match &self.direct {
            Some(_) if session_change(signal).is_some() => {}
            Some(tx) => {
                let _ = tx.send(signal);
            }
            None => {
                use sea_orm::sea_query::{Alias, Func, Query};
                let notify = Query::select()
                    .expr(Func::cust(Alias::new("pg_notify")).arg(CHANNEL).arg(signal.encode()))
                    .to_owned();
                if let Err(e) = self.db.execute(&notify).await {
                    tracing::error!(error = %e, ?signal, "cannot publish event");
                }
            }
        }
    }

    /// A receiver of this instance's loaded events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    /// Local subscribers right now.
    pub fn receivers(&self) -> usize {
        self.local.receiver_count()
    }
}

/// Loads each signalled record once and broadcasts it locally.
async fn dispatch(
    db: DatabaseConnection,
    sessions: Sessions,
    mut rx: mpsc::UnboundedReceiver<Signal>,
    local: broadcast::Sender<Arc<Event>>,
) {
    while let Some(signal) = rx.recv().await {
        if let Some(change) = session_change(signal) {
            sessions.forget(change);
            continue;
        }
        match load(&db, signal).await {
            Ok(Some(event)) => {
                let _ = local.send(Arc::new(event));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, ?signal, "cannot load event record"),
        }
    }
}

async fn load(db: &DatabaseConnection, signal: Signal) -> AppResult<Option<Event>> {
    Ok(match signal {
        Signal::NewLead(id) => customer::Entity::find_by_id(id).one(db).await?.map(Event::NewLead),
        Signal::UserChanged(_) | Signal::StaffChanged => None,
        Signal::ReminderDue(id) => {
            let Some(r) = reminder::Entity::find_by_id(id).one(db).await? else { return Ok(None) };
            customer::Entity::find_by_id(r.customer_id)
                .one(db)
                .await?
                .map(|c| Event::ReminderDue { reminder: r, customer: c })
        }
    })
}
