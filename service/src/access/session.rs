//! What an instance knows about live sessions: a cache of actors, the per-user caps on
//! requests in flight and open WebSockets, and the changes that end sessions.
//!
//! **The actor cache.** Loading an actor takes three statements (user, role permissions,
//! department subtree); every request needs one. The cache keeps each user's actor for at
//! most [`MAX_AGE`] and drops it as soon as the user changes: the service that changes a
//! user (or the department tree) publishes a [`Signal`](crate::kernel::events::Signal), which
//! reaches every instance (LISTEN/NOTIFY on PostgreSQL) and calls [`Sessions::forget`]
//! there. The publishing instance forgets at once, before it answers. A load that raced
//! with a change is used for its own request but not cached (a generation counter).
//! If the PostgreSQL listener loses its connection, notifications may have been lost
//! meanwhile, so the whole cache is dropped when it reconnects; [`MAX_AGE`] bounds
//! staleness should anything else slip (a change made by the CLI).
//!
//! **Session versions.** A token carries the user's session version (`sv`); a token
//! behind the user's version is refused. A newer one than the cached actor's means the
//! cache missed a change: the actor is loaded again.
use crate::access::Actor;
use crate::access::jwt::Verified;
use crate::error::{AppError, AppResult};
use sea_orm::ConnectionTrait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use uuid::Uuid;

/// The longest an actor is served from the cache without being loaded again.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// Whose sessions a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One user changed (role, department, activity, password, session version, name).
    User(Uuid),
    /// Something every actor depends on changed (the department tree), or changes may
    /// have been missed.
    Everyone,
}

impl Change {
    /// Whether the change concerns `user`.
    pub fn concerns(self, user: Uuid) -> bool {
        match self {
            Change::User(id) => id == user,
            Change::Everyone => true,
        }
    }
}

/// Per-user caps of one instance.
#[derive(Debug, Clone, Copy)]
pub struct UserCaps {
    /// Requests of one user in flight at once (`CRM_MAX_REQUESTS_PER_USER`).
    pub requests: usize,
    /// Open WebSockets of one user (`CRM_MAX_SOCKETS_PER_USER`).
    pub sockets: usize,
}

struct Cached {
    actor: Actor,
    loaded: Instant,
}

/// A checked API key (by its SHA-256), what it stands for, and when it was read.
struct CachedKey {
    verified: Verified,
    loaded: Instant,
}

/// Most keys cached at once (only keys that checked out are cached).
const MAX_KEYS: usize = 10_000;

struct Inner {
    cache: Mutex<HashMap<Uuid, Cached>>,
    keys: Mutex<HashMap<String, CachedKey>>,
    /// Raised by every `forget`: a load that started before it is not cached.
    generation: AtomicU64,
    changes: broadcast::Sender<Change>,
    caps: UserCaps,
    requests: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    sockets: crate::kernel::counted::Counted<Uuid>,
}

/// The instance's sessions (cheap to clone).
#[derive(Clone)]
pub struct Sessions(Arc<Inner>);

impl Sessions {
    pub fn new(caps: UserCaps) -> Sessions {
        Sessions(Arc::new(Inner {
            cache: Mutex::default(),
            keys: Mutex::default(),
            generation: AtomicU64::new(0),
            changes: broadcast::channel(1024).0,
            caps,
            requests: Mutex::default(),
            sockets: crate::kernel::counted::Counted::new(caps.sockets),
        }))
    }

    /// The actor of a verified token: from the cache when it is fresh and of the token's
    /// session version, else loaded.
    ///
    /// # Errors
    /// UNAUTHENTICATED when the user is unknown or inactive, or the token's session has
    /// ended (password change, deactivation, `logoutEverywhere`).
    pub async fn actor(&self, db: &impl ConnectionTrait, token: &Verified) -> AppResult<Actor> {
        let cached = {
            let cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get(&token.user_id)
                .filter(|c| c.loaded.elapsed() < MAX_AGE)
                .filter(|c| c.actor.user.session_version >= token.session_version)
                .map(|c| c.actor.clone())
        };
        let actor = match cached {
            Some(actor) => actor,
            None => {
                let generation = self.0.generation.load(Ordering::SeqCst);
                let actor = Actor::load(db, token.user_id).await?;
                let mut cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
                if self.0.generation.load(Ordering::SeqCst) == generation {
                    cache.insert(actor.id(), Cached { actor: actor.clone(), loaded: Instant::now() });
                }
                actor
            }
        };
        if actor.user.session_version != token.session_version {
            return Err(AppError::Unauthenticated("this session has ended; log in again"));
        }
        Ok(actor)
    }

    /// What a presented API key stands for, as a verified token would say it: from the
    /// cache for at most [`MAX_AGE`] (and never past the key's expiry), else checked in the
    /// database, which also records the key's use. Revocation reaches the cache as a
    /// change of the key's account ([`Sessions::forget`]).
    ///
    /// # Errors
    /// UNAUTHENTICATED for an unknown, revoked or expired key.
    pub async fn key(&self, db: &sea_orm::DatabaseConnection, presented: &str) -> AppResult<Verified> {
        let digest = crate::access::api_key::digest(presented);
        let cached = {
            let keys = self.0.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(&digest).filter(|k| k.loaded.elapsed() < MAX_AGE).map(|k| k.verified)
        };
        if let Some(verified) = cached {
            if verified.expires > chrono::Utc::now() {
                return Ok(verified);
            }
            self.0.keys.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest);
        }
        let generation = self.0.generation.load(Ordering::SeqCst);
        let verified = crate::access::api_key::verify(db, presented).await?;
        let mut keys = self.0.keys.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.generation.load(Ordering::SeqCst) == generation {
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
            keys.insert(digest, CachedKey { verified, loaded: Instant::now() });
        }
        Ok(verified)
    }

    /// Drops what the cache holds for a change and tells this instance's WebSockets.
    pub fn forget(&self, change: Change) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        {
            let mut cache = self.0.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut keys = self.0.keys.lock().unwrap_or_else(|e| e.into_inner());
            match change {
                Change::User(id) => {
                    cache.remove(&id);
                    keys.retain(|_, k| k.verified.user_id != id);
                }
                Change::Everyone => {
                    cache.clear();
                    keys.clear();
                }
            }
        }
        let _ = self.0.changes.send(change);
    }

    /// Changes as they reach this instance (open WebSockets re-check their user).
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.0.changes.subscribe()
    }

    /// A slot for one request of `user`, or None when the user already has the maximum
    /// in flight on this instance.
    pub fn request_slot(&self, user: Uuid) -> Option<RequestSlot> {
        let mut requests = self.0.requests.lock().unwrap_or_else(|e| e.into_inner());
        let semaphore = requests.entry(user).or_insert_with(|| Arc::new(Semaphore::new(self.0.caps.requests)));
        let permit = semaphore.clone().try_acquire_owned().ok()?;
        Some(RequestSlot { permit: Some(permit), user, sessions: self.clone() })
    }

    /// A slot for one WebSocket of `user`, or None at the cap.
    pub fn socket_slot(&self, user: Uuid) -> Option<SocketSlot> {
        self.0.sockets.take(user).map(SocketSlot)
    }

    /// The per-user caps.
    pub fn caps(&self) -> UserCaps {
        self.0.caps
    }
}

/// One request in flight; frees its slot when dropped.
pub struct RequestSlot {
    permit: Option<OwnedSemaphorePermit>,
    user: Uuid,
    sessions: Sessions,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        let mut requests = self.sessions.0.requests.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.permit.take());
        // The map holds the last reference once no request of the user is in flight.
        if requests.get(&self.user).is_some_and(|s| Arc::strong_count(s) == 1) {
            requests.remove(&self.user);
        }
    }
}

/// One open WebSocket; frees its slot when dropped.
pub struct SocketSlot(#[allow(dead_code)] crate::kernel::counted::Held<Uuid>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_freed() {
        let sessions = Sessions::new(UserCaps { requests: 2, sockets: 1 });
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = sessions.request_slot(a).unwrap();
        let second = sessions.request_slot(a).unwrap();
        assert!(sessions.request_slot(a).is_none());
        assert!(sessions.request_slot(b).is_some());
        drop(first);
        let third = sessions.request_slot(a).unwrap();
        drop((second, third));
        assert!(sessions.0.requests.lock().unwrap().is_empty(), "no entry is kept for idle users");

        let socket = sessions.socket_slot(a).unwrap();
        assert!(sessions.socket_slot(a).is_none());
        drop(socket);
        assert!(sessions.socket_slot(a).is_some());
    }

    #[test]
    fn changes_concern_their_user() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(Change::User(a).concerns(a));
        assert!(!Change::User(a).concerns(b));
        assert!(Change::Everyone.concerns(b));
    }
}
