//! Answers no larger than `CRM_MAX_RESPONSE_BYTES`: a response is serialised into a buffer
//! that refuses to grow past the cap, so an answer too large is never held twice (as the
//! executor's value tree and as bytes) nor sent; the client gets an error saying so.
use serde::Serialize;

/// A `Vec` that fails a write taking it past `cap` bytes.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.cap {
            return Err(std::io::Error::other("over the response cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON of `value`, or None when it would be larger than `cap` bytes.
pub fn to_json(value: &impl Serialize, cap: usize) -> Option<Vec<u8>> {
    let mut out = Capped { bytes: Vec::with_capacity(1024.min(cap)), cap };
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => Some(out.bytes),
        Err(e) if e.is_io() => None,
        Err(e) => {
            tracing::error!(error = %e, "response not serialisable");
            Some(br#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#.to_vec())
        }
    }
}

/// The error sent in place of an answer over the cap.
pub fn too_large(cap: usize) -> serde_json::Value {
    serde_json::json!({
        "message": format!(
            "the answer is larger than this server sends ({cap} bytes, CRM_MAX_RESPONSE_BYTES) and was not sent; \
             anything the request wrote stays written: ask for fewer fields, aliases or smaller pages"
        ),
        "extensions": { "code": "RESPONSE_TOO_LARGE" }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_over_the_cap_is_refused_and_one_under_it_kept() {
        let value = serde_json::json!({"data": "x".repeat(100)});
        assert!(super::to_json(&value, 50).is_none());
        assert_eq!(super::to_json(&value, 1000).unwrap(), serde_json::to_vec(&value).unwrap());
    }
}
