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
use crate::auth::Actor;
use async_graphql::{Request, Response};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Root fields of subscriptions that may be shared between subscribers.
pub const SHARED_TOPICS: &[&str] = &["newLead"];

/// Items a view may publish before a slow member skips some (it is told in the log).
const BACKLOG: usize = 1024;

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

#[derive(Hash, PartialEq, Eq)]
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
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
    }
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
        let mut views = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = views.entry(key).or_default();
        list.retain(|w| w.strong_count() > 0);
        let running = list
            .iter()
            .filter_map(Weak::upgrade)
            .find(|v| !v.ended.load(std::sync::atomic::Ordering::SeqCst) && v.rights.same_rights(actor));
        if let Some(view) = running {
            return Membership { items: view.tx.subscribe(), _view: view };
        }
        let (tx, items) = broadcast::channel(BACKLOG);
        let view =
            Arc::new(View { rights: actor.clone(), tx: tx.clone(), ended: Default::default(), task: Mutex::new(None) });
        list.push(Arc::downgrade(&view));
        let stream = start(request);
        let task = tokio::spawn(run(self.clone(), Arc::downgrade(&view), stream, tx));
        *view.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        Membership { items, _view: view }
    }

    /// Views running now (for tests and metrics).
    pub fn running(&self) -> usize {
        let views = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        views.values().flatten().filter(|w| w.strong_count() > 0).count()
    }
}

/// Adds `BAD_REQUEST` to errors that carry no code (parse and validation errors).
pub fn coded(mut response: Response) -> Response {
    for error in &mut response.errors {
        let ext = error.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", "BAD_REQUEST");
        }
    }
    response
}

/// Whether a first result is a refusal (errors and no data at all).
pub fn refused(response: &Response) -> bool {
    !response.errors.is_empty() && response.data == async_graphql::Value::Null
}

/// Runs a view's subscription, serialising each result once for every member.
async fn run(
    views: Views,
    view: Weak<View>,
    mut results: futures::stream::BoxStream<'static, Response>,
    tx: broadcast::Sender<Item>,
) {
    let mut first = true;
    let mut last = Item::Complete;
    while let Some(response) = results.next().await {
        let response = coded(response);
        if first && refused(&response) {
            last = Item::Refused(serde_json::to_string(&response.errors).unwrap_or_else(|_| "[]".into()).into());
            break;
        }
        first = false;
        match serde_json::to_string(&response) {
            Ok(json) => {
                let _ = tx.send(Item::Next(json.into()));
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise a subscription result"),
        }
    }
    // Under the registry's lock, so that no member joins between the end and its notice.
    let _views = views.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(view) = view.upgrade() {
        view.ended.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let _ = tx.send(last);
}
