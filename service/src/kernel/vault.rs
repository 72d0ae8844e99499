//! Sensitive fields at rest (`docs/privacy.md`): sealed with XChaCha20-Poly1305 under a
//! data key, found again through a keyed blind index (HMAC-SHA256), keys rotated by id.
//!
//! A sealed value is text: `enc1:<key id>:<base64url(nonce || ciphertext)>`. The 24-byte
//! nonce is random (XChaCha's nonce is long enough for that to be safe), and the field and
//! record it belongs to are the associated data, so a value copied into another row or
//! column does not open. A value without the prefix is plain text written before the field
//! was sealed; it reads as is until the re-seal pass (`reseal`) turns it into a sealed one.
//!
//! `CRM_DATA_KEY` is a comma-separated list of `id:base64url(32 bytes)`; the first key
//! seals, every key opens. Rotating is putting a new key first, restarting (each instance
//! re-seals in the background) or running `crm rotate-data-key`, then dropping the old key.
use crate::error::{AppError, AppResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use uuid::Uuid;

const PREFIX: &str = "enc1:";

/// One data key: the sealing, blind-index and pseudonym keys, all derived from it.
struct DataKey {
    id: String,
    cipher: XChaCha20Poly1305,
    index: [u8; 32],
    pseudonym: [u8; 32],
}

/// The configured data keys; the first one seals.
pub struct Keyring {
    keys: Vec<DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("keys", &ids).finish_non_exhaustive()
    }
}

/// HMAC-SHA256 of `data` under `key` (a key of any length is accepted by HMAC).
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl DataKey {
    fn new(id: &str, secret: &[u8; 32]) -> DataKey {
        // Independent keys from one secret (HMAC as the key-derivation function).
        let seal = hmac(secret, b"crm data key: seal");
        DataKey {
            id: id.to_string(),
            cipher: XChaCha20Poly1305::new(&seal.into()),
            index: hmac(secret, b"crm data key: index"),
            pseudonym: hmac(secret, b"crm data key: pseudonym"),
        }
    }

    fn index(&self, field: &str, value: &str) -> String {
        let digest = hmac(&self.index, format!("{field}\u{0}{value}").as_bytes());
        format!("{}:{}", self.id, URL_SAFE_NO_PAD.encode(&digest[..16]))
    }
}

fn aad(field: &str, record: Uuid) -> Vec<u8> {
    format!("{field}\u{0}{record}").into_bytes()
}

impl Keyring {
    /// Parses `id:base64url,id:base64url,...` (the first key seals).
    ///
    /// # Errors
    /// A message saying what is wrong (never the key itself).
    pub fn parse(spec: &str) -> Result<Keyring, String> {
        let mut keys: Vec<DataKey> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = part.split_once(':').ok_or("CRM_DATA_KEY: each key is id:base64url")?;
            if id.is_empty()
                || id.len() > 16
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("CRM_DATA_KEY: a key id is 1 to 16 letters, digits, '-' or '_'".into());
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("CRM_DATA_KEY: key id {id} appears twice"));
            }
            let bytes = URL_SAFE_NO_PAD
                .decode(secret.trim_end_matches('='))
                .map_err(|_| format!("CRM_DATA_KEY: key {id} is not base64url"))?;
            let secret: [u8; 32] = bytes.try_into().map_err(|_| format!("CRM_DATA_KEY: key {id} must be 32 bytes"))?;
            keys.push(DataKey::new(id, &secret));
        }
        if keys.is_empty() {
            return Err("CRM_DATA_KEY: no key".into());
        }
        Ok(Keyring { keys })
    }

    /// A new random key, as a `CRM_DATA_KEY` entry with the given id.
    pub fn new_spec(id: &str) -> String {
        let secret: [u8; 32] = rand::random();
        format!("{id}:{}", URL_SAFE_NO_PAD.encode(secret))
    }

    /// Reads the key file beside an embedded database, or creates it (mode 0600).
    ///
    /// # Errors
    /// A message when the file cannot be read, written or parsed.
    pub fn from_file(path: &Path) -> Result<Keyring, String> {
        match std::fs::read_to_string(path) {
            Ok(spec) => Keyring::parse(spec.trim()).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let spec = Keyring::new_spec(&format!("k{}", chrono::Utc::now().format("%Y%m%d")));
                write_private(path, &format!("{spec}\n"))
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                Keyring::parse(&spec)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The id of the sealing key.
    pub fn current(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plain` as the value of `field` of the record `record`.
    pub fn seal(&self, field: &str, record: Uuid, plain: &str) -> String {
        let key = &self.keys[0];
        let nonce: [u8; 24] = rand::random();
        let sealed = key
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain.as_bytes(), aad: &aad(field, record) })
            .expect("XChaCha20-Poly1305 seals any message that fits in memory");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Opens a stored value of `field` of `record`; plain text written before sealing
    /// passes through.
    ///
    /// # Errors
    /// INTERNAL when the key is not configured or the value does not open (tampered, or
    /// moved from another record).
    pub fn open(&self, field: &str, record: Uuid, stored: &str) -> AppResult<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
        let fail = |why: &str| {
            tracing::error!(field, %record, why, "a sealed value does not open");
            AppError::Internal(format!("a sealed {field} cannot be read ({why})").into())
        };
        let (id, body) = rest.split_once(':').ok_or_else(|| fail("malformed"))?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| fail("its data key is not configured"))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| fail("malformed"))?;
        if bytes.len() < 24 {
            return Err(fail("malformed"));
        }
        let (nonce, sealed) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| fail("malformed"))?;
        let plain = key
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad: &aad(field, record) })
            .map_err(|_| fail("it does not authenticate"))?;
        String::from_utf8(plain).map_err(|_| fail("not text"))
    }

    /// Whether a stored value is sealed under the current key (else the re-seal pass
    /// rewrites it).
    pub fn is_current(&self, stored: &str) -> bool {
        stored.strip_prefix(PREFIX).and_then(|r| r.split_once(':')).is_some_and(|(id, _)| id == self.current())
    }

    /// The blind index of a (normalized) value of `field` under the current key.
    pub fn index(&self, field: &str, value: &str) -> String {
        self.keys[0].index(field, value)
    }

    /// A pseudonymous id for a record in exports to roles that may not read the record:
    /// the same for the same record in every export under the current key, unlinkable to
    /// the record id without the key (`p_` and 22 base64url characters).
    pub fn pseudonym(&self, kind: &str, record: Uuid) -> String {
        let digest = hmac(&self.keys[0].pseudonym, format!("{kind}\u{0}{record}").as_bytes());
        format!("p_{}", URL_SAFE_NO_PAD.encode(&digest[..16]))
    }

    /// Its blind index under every configured key: what a lookup matches while a
    /// rotation is under way.
    pub fn indexes(&self, field: &str, value: &str) -> Vec<String> {
        self.keys.iter().map(|k| k.index(field, value)).collect()
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let old = Keyring::parse(&Keyring::new_spec("old")).unwrap();
        let id = Uuid::now_v7();
        let sealed = old.seal("contact.id_number", id, "11010519491231002X");
        assert!(sealed.starts_with("enc1:old:") && !sealed.contains("1101051949"));
        assert_ne!(sealed, old.seal("contact.id_number", id, "11010519491231002X"), "a fresh nonce each time");
        assert_eq!(old.open("contact.id_number", id, &sealed).unwrap(), "11010519491231002X");
        assert!(old.open("contact.id_number", Uuid::now_v7(), &sealed).is_err(), "bound to its record");
        assert!(old.open("contact.address", id, &sealed).is_err(), "bound to its field");
        assert_eq!(old.open("contact.id_number", id, "plain").unwrap(), "plain");

        let old_spec = old.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
        assert_eq!(old_spec, ["old"]);
        let both = Keyring::parse(&format!(
            "{},{}",
            Keyring::new_spec("new"),
            "x:".to_string() + &URL_SAFE_NO_PAD.encode([7u8; 32])
        ))
        .unwrap();
        assert_eq!(both.current(), "new");
        assert!(!both.is_current(&sealed));
        assert!(both.open("contact.id_number", id, &sealed).is_err(), "the old key is not in this ring");
        let idx = both.indexes("contact.id_number", "X");
        assert_eq!(idx.len(), 2);
        assert_eq!(idx[0], both.index("contact.id_number", "X"));
        assert!(idx[0].starts_with("new:"));
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_the_key() {
        for bad in ["", "nokey", "a:!!!", "a:AAAA", "a b:AAAA", &format!("{0},{0}", Keyring::new_spec("a"))] {
            let e = Keyring::parse(bad).unwrap_err();
            assert!(e.starts_with("CRM_DATA_KEY"), "{e}");
        }
    }
}
