//! Caps per client address, beside the instance's global ones: connections
//! (`CRM_MAX_CONNECTIONS_PER_ADDRESS`) and WebSockets that have not yet sent a valid
//! `connection_init` (`CRM_MAX_ANONYMOUS_SOCKETS_PER_ADDRESS`). Without them, one address
//! reopening upgrades that never authenticate held every connection slot and a logged-in
//! admin's requests failed.
//!
//! An IPv6 client is counted by its /64 (one subscriber's network: a host picks any address
//! in it), an IPv4 client (IPv4-mapped IPv6 included) by its address. Behind a trusted
//! proxy (`CRM_TRUST_FORWARDED_FOR`) every connection comes from the proxy, so the
//! connection cap per address is not applied; the anonymous-socket cap counts the address
//! the proxy saw.
use service::kernel::counted::{Counted, Held};
use std::net::IpAddr;

/// What an address is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    V4([u8; 4]),
    /// The first 64 bits.
    V6Net(u64),
}

impl Key {
    pub fn of(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(v4) => Key::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::V4(v4.octets()),
                None => Key::V6Net((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// Counts what each address holds, up to a cap (cheap to clone).
#[derive(Clone)]
pub struct PerAddress(Counted<Key>);

/// One place of an address; given back when dropped.
pub type AddressSlot = Held<Key>;

impl PerAddress {
    pub fn new(cap: usize) -> Self {
        PerAddress(Counted::new(cap))
    }

    pub fn cap(&self) -> usize {
        self.0.cap()
    }

    /// A place for `ip`, or None when its address holds the cap already.
    pub fn take(&self, ip: IpAddr) -> Option<AddressSlot> {
        self.0.take(Key::of(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_network_counts_as_one_address_and_slots_come_back() {
        let caps = PerAddress::new(2);
        let a = caps.take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _b = caps.take("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert!(caps.take("2001:db8:1:2::77".parse().unwrap()).is_none(), "same /64");
        assert!(caps.take("2001:db8:1:3::1".parse().unwrap()).is_some(), "another /64");
        let _c = caps.take("10.0.0.1".parse().unwrap()).unwrap();
        let _d = caps.take("::ffff:10.0.0.1".parse().unwrap()).unwrap();
        assert!(caps.take("10.0.0.1".parse().unwrap()).is_none(), "mapped IPv4 is the IPv4 address");
        drop(a);
        assert!(caps.take("2001:db8:1:2::77".parse().unwrap()).is_some());
    }
}
