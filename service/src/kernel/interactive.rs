//! Interactive work in flight, and heavy reads that give way to it.
//!
//! A report scanning 100,000 customers keeps a core busy for a tenth of a second; at any OS
//! priority (nice 19, the idle class) that doubled a rep's list p99 on a 2-core machine,
//! because the scheduler lets the running scan finish its slice before the rep's threads
//! get the core back. So on SQLite the scan itself steps aside: each heavy-read connection's
//! progress handler ([`give_way`]) sleeps while an interactive request is being executed,
//! for at most [`MAX_PAUSE`] at a time and then runs at least [`MIN_RUN`], so a server that
//! is never idle still finishes its reports (at a sixth of a core or more).
//!
//! Interactive means an authenticated GraphQL request over HTTP being executed that holds
//! no heavy read (anonymous requests such as logins could otherwise slow every report, and
//! a WebSocket answer may wait for a slow reader with its request alive): the HTTP layer
//! takes a [`Ticket`] per such request, and a request's heavy field steps aside
//! ([`Ticket::step_aside`]) from before it queues for its turn until it ends, so an
//! analyst's 16 requests waiting for reports do not count as interactive.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Interactive requests in flight on this instance.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The longest a heavy read sleeps at once for interactive work.
pub const MAX_PAUSE: Duration = Duration::from_millis(5);
/// The least a heavy read runs between two pauses.
pub const MIN_RUN: Duration = Duration::from_millis(1);

/// Interactive requests in flight now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// One request's share of [`in_flight`]: counted while none of its fields holds or waits
/// for a heavy read, until it is dropped.
pub struct Ticket(Arc<Mutex<State>>);

struct State {
    alive: bool,
    counted: bool,
    heavy: usize,
}

impl State {
    fn count(&mut self, on: bool) {
        if on && !self.counted {
            IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        } else if !on && self.counted {
            IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        }
        self.counted = on;
    }
}

impl Ticket {
    /// A request starts executing.
    pub fn begin() -> Ticket {
        let mut state = State { alive: true, counted: false, heavy: 0 };
        state.count(true);
        Ticket(Arc::new(Mutex::new(state)))
    }

    /// A heavy field of this request: the request is not interactive until the returned
    /// guard (and every other heavy field's) is dropped.
    pub fn step_aside(&self) -> Aside {
        let mut state = lock(&self.0);
        state.heavy += 1;
        state.count(false);
        Aside(self.0.clone())
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.alive = false;
        state.count(false);
    }
}

/// A heavy field's step aside from its request's ticket.
pub struct Aside(Arc<Mutex<State>>);

impl Drop for Aside {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        state.heavy -= 1;
        let back = state.heavy == 0 && state.alive;
        state.count(back);
    }
}

thread_local! {
    /// When this heavy-read thread last ended a pause.
    static RESUMED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Called often by a heavy read while it runs (SQLite's progress handler): sleeps while
/// interactive work is in flight, at most [`MAX_PAUSE`], unless it paused less than
/// [`MIN_RUN`] ago.
pub fn give_way() {
    if in_flight() == 0 {
        return;
    }
    let now = Instant::now();
    if RESUMED.get().is_some_and(|t| now.duration_since(t) < MIN_RUN) {
        return;
    }
    let until = now + MAX_PAUSE;
    while in_flight() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(100));
    }
    RESUMED.set(Some(Instant::now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the counter is global to the process.
    #[test]
    fn a_request_counts_until_it_holds_a_heavy_read_and_after() {
        let base = in_flight();
        let ticket = Ticket::begin();
        assert_eq!(in_flight(), base + 1);
        let (a, b) = (ticket.step_aside(), ticket.step_aside());
        assert_eq!(in_flight(), base, "a request waiting for reports is not interactive");
        drop(a);
        assert_eq!(in_flight(), base);
        drop(b);
        assert_eq!(in_flight(), base + 1, "its light fields count again");
        let late = ticket.step_aside();
        drop(ticket);
        assert_eq!(in_flight(), base, "an ended request never counts");
        drop(late);
        assert_eq!(in_flight(), base, "nor when a field outlives it");

        let started = Instant::now();
        give_way();
        assert!(started.elapsed() < MAX_PAUSE, "no interactive work: no pause");
    }
}
