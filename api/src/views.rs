//! Shared subscription views: subscribers whose copies of an event would be the same are
//! served by one resolution and one serialisation.
//!
//! Two subscriptions share a view when they send the same document, variables and
//! operation name and their actors have the same rights (`Actor::same_rights`: role,
//! department subtree, every grant) and, where what they read depends on who they are
//! (`Actor::view_owner`), are the same user. The view runs the subscription once, as the
//! first of them, serialises each result once, and every member's socket wraps that text
//! in its own `next` message. A member whose rights change is closed by its socket
//! (`ws.rs`) and subscribes again into another view; the view ends with its last member.
//!
//! Only topics whose items depend on nothing but the subscriber's rights are shared
//! (`SHARED_TOPICS`); `reminderDue` is personal and runs per subscriber.
//!
//! Part of the WebSocket transport (`ws.rs` joins and relays); no rule lives here.
use async_graphql::{Request, Response};
use futures::StreamExt;
use service::access::Actor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Root fields of subscriptions that may be shared between subscribers.
pub const SHARED_TOPICS: &[&str] = &["newLead"];

/// Items a view may publish before a slow member skips some (it is told in the log).
const BACKLOG: usize = 256;

/// What a view publishes.
#[derive(Clone)]
pub enum Item {
    /// The JSON of one result (`{"data": ...}`), to go out as a `next` payload.
    Next(Arc<str>),
    /// The JSON list of errors that refused the operation before it ran.
    Refused(Arc<str>),
    /// The stream ended.
    Complete,
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Key {
    query: String,
    variables: String,
    operation: Option<String>,
    owner: Option<Uuid>,
}

/// One running subscription and its audience.
pub struct View {
    rights: Actor,
    tx: broadcast::Sender<Item>,
    ended: std::sync::atomic::AtomicBool,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Where it is registered, to unregister when its last member leaves.
    key: Key,
    views: Views,
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        // Never dropped under the registry's lock (see `join` and `Ending`), so this
        // cannot deadlock: the key goes with its last view.
        let mut views = lock(&self.views.inner);
        if let Some(list) = views.get_mut(&self.key) {
            list.retain(|w| w.strong_count() > 0);
            if list.is_empty() {
                views.remove(&self.key);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The views of this instance.
#[derive(Clone, Default)]
pub struct Views {
    inner: Arc<Mutex<HashMap<Key, Vec<Weak<View>>>>>,
}

/// A member's hold on a view: results arrive on `items`; dropping it leaves.
pub struct Membership {
    pub items: broadcast::Receiver<Item>,
    _view: Arc<View>,
}

impl Views {
    /// Joins the view of `request` for `actor`, starting it with `start` when there is
    /// none: `start` gets the request and returns the stream of its results.
    pub fn join<F>(&self, request: Request, actor: &Actor, start: F) -> Membership
    where
        F: FnOnce(Request) -> futures::stream::BoxStream<'static, Response>,
    {
        let key = Key {
            query: request.query.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
            operation: request.operation_name.clone(),
            owner: actor.view_owner(),
        };
        // Views upgraded while looking are dropped after the lock is released: dropping
        // the last hold on a view takes the lock (`View::drop`).
        let mut looked_at = Vec::new();
        let mut views = lock(&self.inner);
        let list = views.entry(key.clone()).or_default();
        for view in list.iter().filter_map(Weak::upgrade) {
            if !view.ended.load(std::sync::atomic::Ordering::SeqCst) && view.rights.same_rights(actor) {
                let items = view.tx.subscribe();
                drop(views);
                return Membership { items, _view: view };
            }
            looked_at.push(view);
        }
        let (tx, items) = broadcast::channel(BACKLOG);
        let view = Arc::new(View {
            rights: actor.clone(),
            tx: tx.clone(),
            ended: Default::default(),
            task: Mutex::new(None),
            key,
            views: self.clone(),
        });
        list.push(Arc::downgrade(&view));
        let ending = Ending { views: self.clone(), view: Arc::downgrade(&view), tx, last: Item::Complete };
        *lock(&view.task) = Some(tokio::spawn(run(start(request), ending)));
        drop(views);
        drop(looked_at);
        Membership { items, _view: view }
    }

    /// Views registered now (for tests and metrics); a view unregisters with its last
    /// member.
    pub fn running(&self) -> usize {
        lock(&self.inner).values().map(Vec::len).sum()
    }
}

/// Ends a view however its task stops (the stream's end, a refusal, a panic): marks it
/// ended and sends the last item, under the registry's lock so that no member joins
/// between the two.
struct Ending {
    views: Views,
    view: Weak<View>,
    tx: broadcast::Sender<Item>,
    last: Item,
}

impl Drop for Ending {
    fn drop(&mut self) {
        let registry = lock(&self.views.inner);
        let view = self.view.upgrade();
        if let Some(view) = &view {
            view.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let _ = self.tx.send(std::mem::replace(&mut self.last, Item::Complete));
        drop(registry);
        drop(view);
    }
}

/// A result with every error coded (`schema::error::default_code`).
pub fn coded(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(crate::schema::error::default_code);
    response
}

/// Whether a first result is a refusal (errors and no data at all).
pub fn refused(response: &Response) -> bool {
    !response.errors.is_empty() && response.data == async_graphql::Value::Null
}

/// Runs a view's subscription, serialising each result once for every member.
async fn run(mut results: futures::stream::BoxStream<'static, Response>, mut ending: Ending) {
    let mut first = true;
    while let Some(response) = results.next().await {
        let response = coded(response);
        if first && refused(&response) {
            ending.last = Item::Refused(serde_json::to_string(&response.errors).unwrap_or_else(|_| "[]".into()).into());
            return;
        }
        first = false;
        match serde_json::to_string(&response) {
            Ok(json) => {
                let _ = ending.tx.send(Item::Next(json.into()));
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise a subscription result"),
        }
    }
}
