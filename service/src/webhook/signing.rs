//! How deliveries are signed (`docs/webhooks.md`): the receiver recomputes
//! `HMAC-SHA256(secret, "{t}.{body}")` and compares, and refuses an old `t`. During a
//! secret rotation the header carries a signature under each secret.
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "x-crm-signature";

/// `HMAC-SHA256(secret, "{t}.{body}")`, hex.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// `t=<unix seconds>,v1=<signature>[,v1=<signature under the previous secret>]`.
pub fn signature_header(secrets: &[String], t: i64, body: &[u8]) -> String {
    let mut out = format!("t={t}");
    for s in secrets {
        out.push_str(",v1=");
        out.push_str(&sign(s, t, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_the_time_and_the_body() {
        let body = br#"{"id":"1"}"#;
        let a = sign("whsec_a", 1_700_000_000, body);
        assert_eq!(a.len(), 64);
        assert_ne!(a, sign("whsec_a", 1_700_000_001, body));
        assert_ne!(a, sign("whsec_b", 1_700_000_000, body));
        assert_ne!(a, sign("whsec_a", 1_700_000_000, br#"{"id":"2"}"#));
        let header = signature_header(&["whsec_a".into(), "whsec_b".into()], 1_700_000_000, body);
        assert_eq!(header, format!("t=1700000000,v1={a},v1={}", sign("whsec_b", 1_700_000_000, body)));
    }
}
