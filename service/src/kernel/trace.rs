//! The W3C trace a request carries (`traceparent`), for what it causes later: the outbox
//! events it writes keep it, and their webhook deliveries continue the trace.
use std::future::Future;

tokio::task_local! {
    static TRACEPARENT: Option<String>;
}

/// Runs `work` with `traceparent` (already checked by the HTTP layer) as the current trace.
pub async fn scope<F: Future>(traceparent: Option<String>, work: F) -> F::Output {
    TRACEPARENT.scope(traceparent, work).await
}

/// The current request's `traceparent`, if it sent one.
pub fn current() -> Option<String> {
    TRACEPARENT.try_with(Clone::clone).ok().flatten()
}

/// The `traceparent` of a call made on behalf of `parent`: the same trace and flags, a new
/// span id (16 random hex digits), as W3C Trace Context asks of a service that calls on.
pub fn child_of(parent: &str) -> Option<String> {
    let mut parts = parent.split('-');
    let (version, trace, _span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let span: u64 = rand::random::<u64>().max(1);
    Some(format!("{version}-{trace}-{span:016x}-{flags}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trace_is_current_within_its_scope_and_continued_by_a_child() {
        assert_eq!(current(), None);
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string();
        let seen = scope(Some(parent.clone()), async { current() }).await;
        assert_eq!(seen.as_deref(), Some(parent.as_str()));
        let child = child_of(&parent).unwrap();
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.ends_with("-01"), "{child}");
        assert_ne!(child, parent);
        assert_eq!(child.len(), parent.len());
    }
}
