//! Places counted per key up to a cap: one user's open WebSockets (`access::session`), one
//! client address's connections and unauthenticated sockets (the api's `addresses.rs`).
//! A place is given back when its [`Held`] is dropped; a key holding nothing is forgotten.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Counts per key (cheap to clone).
pub struct Counted<K>(Arc<Inner<K>>);

impl<K> Clone for Counted<K> {
    fn clone(&self) -> Self {
        Counted(self.0.clone())
    }
}

struct Inner<K> {
    cap: usize,
    held: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Copy> Counted<K> {
    /// At most `cap` places per key (at least one).
    pub fn new(cap: usize) -> Self {
        Counted(Arc::new(Inner { cap: cap.max(1), held: Mutex::default() }))
    }

    pub fn cap(&self) -> usize {
        self.0.cap
    }

    /// A place for `key`, or None when it holds the cap already.
    pub fn take(&self, key: K) -> Option<Held<K>> {
        let mut held = self.0.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= self.0.cap {
            return None;
        }
        *n += 1;
        Some(Held { owner: self.clone(), key })
    }
}

/// One place of a key; given back when dropped.
pub struct Held<K: Hash + Eq + Copy> {
    owner: Counted<K>,
    key: K,
}

impl<K: Hash + Eq + Copy> Drop for Held<K> {
    fn drop(&mut self) {
        let mut held = self.owner.0.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}
