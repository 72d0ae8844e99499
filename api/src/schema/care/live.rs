//! Subscriptions: `newLead` and `reminderDue`, filtered per subscriber by what it may read.
use super::*;

/// Live events over WebSocket (/graphql/ws, graphql-transport-ws).
#[derive(Default)]
pub struct Subscription;

/// The events of this instance, filtered for one subscriber.
pub(super) fn events<T, F>(ctx: &Context<'_>, pick: F) -> BoxStream<'static, T>
where
    T: Send + 'static,
    F: Fn(&Event) -> Option<T> + Send + Sync + 'static,
{
    let rx = ctx.data_unchecked::<AppState>().events.subscribe();
    async_graphql::futures_util::stream::unfold((rx, pick), |(mut rx, pick)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if let Some(item) = pick(&event) {
                        return Some((item, (rx, pick)));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscriber fell behind and skipped events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

#[Subscription]
impl Subscription {
    /// Customers created at TARGET or PROSPECT stage (by anyone, integrations included)
    /// that you may read.
    async fn new_lead(&self, ctx: &Context<'_>) -> Result<BoxStream<'static, Customer>> {
        let actor = Arc::new(actor(ctx)?.clone());
        service::access::live::authorize(&actor, service::access::live::Topic::NewLead).gql()?;
        Ok(events(ctx, move |e| match e {
            Event::NewLead(c) if e.visible_to(&actor) => Some(Customer(c.clone())),
            _ => None,
        }))
    }

    /// Your reminders as they fall due.
    async fn reminder_due(&self, ctx: &Context<'_>) -> Result<BoxStream<'static, Reminder>> {
        let actor = Arc::new(actor(ctx)?.clone());
        service::access::live::authorize(&actor, service::access::live::Topic::ReminderDue).gql()?;
        Ok(events(ctx, move |e| match e {
            Event::ReminderDue { reminder, .. } if e.visible_to(&actor) => Some(Reminder(reminder.clone())),
            _ => None,
        }))
    }
}
