//! Inter-node requests prove the cluster secret: each body is signed with HMAC-SHA256 keyed by the secret, the
//! signature sent hex-encoded in [`SIGNATURE_HEADER`], and checked in constant time by the receiver. The secret
//! itself never travels. (A captured request could be replayed; Raft's messages carry terms and indexes, so a
//! replay is at worst a stale message the group already ignores. Inter-node TLS is not built yet.)

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying a request's signature.
pub(crate) const SIGNATURE_HEADER: &str = "x-warren-cluster-signature";

/// Signs and checks request bodies with the cluster secret.
#[derive(Clone)]
pub(crate) struct Signer {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// A signer with `secret`.
    pub(crate) fn new(secret: &str) -> Signer {
        Signer {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }

    /// The signature of `body`, hex-encoded.
    pub(crate) fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `signature` (hex) is the signature of `body`.
    pub(crate) fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Some(bytes) = decode_hex(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_signed_with_the_secret_verifies_and_nothing_else_does() {
        let signer = Signer::new("a shared secret");
        let signature = signer.sign(b"body");
        assert!(signer.verify(b"body", &signature));
        assert!(!signer.verify(b"other body", &signature));
        assert!(!Signer::new("another secret").verify(b"body", &signature));
        assert!(!signer.verify(b"body", "zz"));
        assert!(!signer.verify(b"body", ""));
    }
}
