//! Live signals: what travels between instances when something happened that open
//! sockets or cached sessions must hear of, as a kind and a record id (`pg_notify` on
//! PostgreSQL). The hub that carries them and hands loaded events to subscribers is
//! `access::live`; which changes raise one is decided in `kernel::change`.
use uuid::Uuid;

/// The PostgreSQL channel.
pub const CHANNEL: &str = "crm_events";

/// What happened, as it travels between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    NewLead(Uuid),
    ReminderDue(Uuid),
    /// A user changed: cached actors and open sockets of the user must be checked again.
    UserChanged(Uuid),
    /// The department tree changed: every cached actor's subtree may be wrong.
    StaffChanged,
}

impl Signal {
    /// The text sent over `pg_notify`.
    pub fn encode(self) -> String {
        match self {
            Signal::NewLead(id) => format!("lead:{id}"),
            Signal::ReminderDue(id) => format!("reminder:{id}"),
            Signal::UserChanged(id) => format!("user:{id}"),
            Signal::StaffChanged => "staff:*".into(),
        }
    }

    /// The signal `encode` wrote, if `s` is one.
    pub fn decode(s: &str) -> Option<Signal> {
        let (kind, id) = s.split_once(':')?;
        if (kind, id) == ("staff", "*") {
            return Some(Signal::StaffChanged);
        }
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "lead" => Some(Signal::NewLead(id)),
            "reminder" => Some(Signal::ReminderDue(id)),
            "user" => Some(Signal::UserChanged(id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip() {
        let id = Uuid::now_v7();
        for s in [Signal::NewLead(id), Signal::ReminderDue(id), Signal::UserChanged(id), Signal::StaffChanged] {
            assert_eq!(Signal::decode(&s.encode()), Some(s));
        }
        assert_eq!(Signal::decode("lead:nope"), None);
        assert_eq!(Signal::decode("other:0190a8a0-0000-7000-8000-000000000000"), None);
    }
}
