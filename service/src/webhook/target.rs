//! Where a webhook may deliver: `https://` to public addresses; `http://` and private,
//! loopback or link-local addresses only when the operator allows them
//! (`CRM_WEBHOOK_ALLOW_PRIVATE`). A webhook's URL is chosen by its maker, and the server
//! reaches places its makers cannot (the database, the cloud's metadata service), so the
//! addresses are checked when the URL is given and again, after name resolution, on every
//! connection (`webhooks.rs`).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest URL a webhook may have.
const MAX_URL: usize = 2000;

/// Checks a receiver URL.
///
/// # Errors
/// Why the URL is refused.
pub fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    if url.len() > MAX_URL {
        return Err(format!("must have at most {MAX_URL} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err("must be https:// (this server delivers plain http only to private receivers)".into()),
        other => return Err(format!("scheme {other} is not delivered to; use https://")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; the signature authenticates deliveries".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    match parsed.host() {
        None => Err("must name a host".into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !allow_private && (name == "localhost" || name.ends_with(".localhost")) {
                Err("must not be a local address".into())
            } else {
                Ok(())
            }
        }
        Some(url::Host::Ipv4(ip)) => admitted(IpAddr::V4(ip), allow_private),
        Some(url::Host::Ipv6(ip)) => admitted(IpAddr::V6(ip), allow_private),
    }
}

/// Whether a receiver's address may be connected to.
///
/// # Errors
/// Why not.
pub fn admitted(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{ip} is not a receiver's address"));
    }
    if !allow_private && !is_public(ip) {
        return Err(format!("{ip} is a private, loopback or reserved address"));
    }
    Ok(())
}

/// Whether an address is on the public internet (std's `is_global` is not stable).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        // Carrier-grade NAT, 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; benchmarking, 198.18.0.0/15.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // 6to4 relay anycast, 192.88.99.0/24.
        || (a == 192 && b == 88 && c == 99)
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let first = seg[0];
    let o = ip.octets();
    // Forms that carry an IPv4 address are judged by it: IPv4-compatible ::a.b.c.d (and
    // ::ffff:0:a.b.c.d), 6to4 2002:a.b.c.d::/16.
    if seg[..5] == [0; 5] && (seg[5] == 0 || seg[5] == 0xffff) && (seg[6] != 0 || seg[7] > 1) {
        return public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[..4] == [0, 0, 0, 0] && seg[4] == 0xffff && seg[5] == 0 {
        return public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if first == 0x2002 {
        return public_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        // Site-local fec0::/10 (deprecated), Teredo 2001::/32, discard 100::/64.
        || (first & 0xffc0) == 0xfec0
        || (first == 0x2001 && seg[1] == 0)
        || (first == 0x0100 && seg[1..4] == [0, 0, 0])
        || (first == 0x2001 && seg[1] == 0x0db8)
        // NAT64 64:ff9b::/96 reaches IPv4 addresses: judged by the IPv4 address.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b && {
            let o = ip.octets();
            !public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_receivers_by_default() {
        assert!(check_url("https://hooks.example.com/crm", false).is_ok());
        for bad in [
            "http://hooks.example.com/crm",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://a.localhost/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[::7f00:1]/",
            "https://[::ffff:0:7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[fec0::1]/",
            "https://[2001::1]/",
            "https://[100::1]/",
            "https://192.88.99.1/",
            "not a url",
            "https://hooks.example.com/#x",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} should be refused");
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_url("https://0.0.0.0/", true).is_err());
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(is_public("2606:4700::1111".parse().unwrap()));
        assert!(is_public("64:ff9b::808:808".parse().unwrap()));
        assert!(is_public("2002:808:808::1".parse().unwrap()));
    }
}
