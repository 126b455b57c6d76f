//! RabbitMQ's password hashes, so that users exported from RabbitMQ (`rabbitmqctl export_definitions`) log in
//! unchanged and users created here export to RabbitMQ: a hash is base64 of a 4-byte random salt followed by the
//! digest of salt ++ the UTF-8 password, under one of RabbitMQ's `rabbit_password_hashing_*` modules.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::Rng;
use sha2::Digest;

/// The salt length RabbitMQ uses (`rabbit_password:generate_salt/0`: 32 random bits).
const SALT_LEN: usize = 4;

/// A hashing module, by RabbitMQ's name for it (the `hashing_algorithm` of a user in definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashingAlgorithm {
    /// `rabbit_password_hashing_sha256`, RabbitMQ's default since 3.6 and Warren's.
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
    /// `rabbit_password_hashing_md5`: users stored by RabbitMQ before 3.6 (and those without an algorithm).
    Md5,
}

impl HashingAlgorithm {
    /// RabbitMQ's module name.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
            HashingAlgorithm::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// The algorithm RabbitMQ names `name`; None for any other (a plugin's module Warren does not have).
    pub fn from_name(name: &str) -> Option<HashingAlgorithm> {
        [Self::Sha256, Self::Sha512, Self::Md5]
            .into_iter()
            .find(|a| a.name() == name)
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => {
                let mut d = sha2::Sha256::new();
                d.update(salt);
                d.update(password);
                d.finalize().to_vec()
            }
            HashingAlgorithm::Sha512 => {
                let mut d = sha2::Sha512::new();
                d.update(salt);
                d.update(password);
                d.finalize().to_vec()
            }
            HashingAlgorithm::Md5 => {
                let mut d = md5::Md5::new();
                d.update(salt);
                d.update(password);
                d.finalize().to_vec()
            }
        }
    }
}

/// Hashes `password` with a fresh random salt, as `rabbitmqctl add_user` stores it: base64(salt ++ digest).
pub fn hash_password(algorithm: HashingAlgorithm, password: &str) -> String {
    let salt: [u8; SALT_LEN] = rand::rng().random();
    hash_with_salt(algorithm, salt, password)
}

/// The hash of `password` under a given salt (what `hash_password` does after drawing the salt).
pub fn hash_with_salt(algorithm: HashingAlgorithm, salt: [u8; SALT_LEN], password: &str) -> String {
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(&algorithm.digest(&salt, password.as_bytes()));
    STANDARD.encode(bytes)
}

/// Whether `password` matches the stored `hash` (RabbitMQ's `user_login_authentication`): the first 4 bytes of
/// the decoded hash are the salt. A hash that does not decode, or is empty (a cleared password), matches nothing.
pub fn verify_password(algorithm: HashingAlgorithm, hash: &str, password: &str) -> bool {
    let Ok(bytes) = STANDARD.decode(hash) else {
        return false;
    };
    if bytes.len() <= SALT_LEN {
        return false;
    }
    let (salt, digest) = bytes.split_at(SALT_LEN);
    let computed = algorithm.digest(salt, password.as_bytes());
    // Compared in full whatever the first difference, so the time taken says nothing of where it is.
    computed.len() == digest.len()
        && computed
            .iter()
            .zip(digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether `hash` is a well-formed hash for `algorithm` (base64 of a salt and a digest of the right length);
/// the empty hash (no password: only passwordless mechanisms may log in) is accepted too.
pub fn is_valid_hash(algorithm: HashingAlgorithm, hash: &str) -> bool {
    if hash.is_empty() {
        return true;
    }
    let digest_len = algorithm.digest(&[], b"").len();
    STANDARD
        .decode(hash)
        .is_ok_and(|bytes| bytes.len() == SALT_LEN + digest_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// User `hashcheck` added by RabbitMQ 3.10.8 (`rabbitmqctl add_user hashcheck warren-secret`), as
    /// `rabbitmqctl export_definitions` wrote it (rabbit_password_hashing_sha256).
    const RABBITMQ_SHA256: &str = "cGOAk+Re0RHdmMqAB2L+8f+o+1Cq1MpP5hn/tRHcQcfbU67Y";

    #[test]
    fn a_hash_made_by_rabbitmq_verifies() {
        assert!(verify_password(
            HashingAlgorithm::Sha256,
            RABBITMQ_SHA256,
            "warren-secret"
        ));
        assert!(!verify_password(
            HashingAlgorithm::Sha256,
            RABBITMQ_SHA256,
            "warren-secreT"
        ));
        assert!(is_valid_hash(HashingAlgorithm::Sha256, RABBITMQ_SHA256));
    }

    #[test]
    fn hashes_are_salt_then_digest_in_base64() {
        // Computed independently with Python's hashlib: base64(salt ++ H(salt ++ b"guest")), salt 908DC60A.
        let salt = [0x90, 0x8D, 0xC6, 0x0A];
        let expected = [
            (HashingAlgorithm::Sha256, "kI3GCrswBLNZQzHJJ95QLoyfAVooYhnvf7jbqiW9BjOYUloe"),
            (
                HashingAlgorithm::Sha512,
                "kI3GCrf65LdSkFyP8BVa8fB/67dDZ7ljrRF4WEjLDwWuHFxFQjgE88vc4EqLc8+dW4j5onKsGl4Ty32Icokl1iJrRxk=",
            ),
            (HashingAlgorithm::Md5, "kI3GCsLphS59YDqYemSoxQGij64="),
        ];
        for (algorithm, hash) in expected {
            assert_eq!(hash_with_salt(algorithm, salt, "guest"), hash);
            assert!(verify_password(algorithm, hash, "guest"));
            assert!(!verify_password(algorithm, hash, "Guest"));
        }
    }

    #[test]
    fn every_algorithm_round_trips_and_salts_differ() {
        for algorithm in [
            HashingAlgorithm::Sha256,
            HashingAlgorithm::Sha512,
            HashingAlgorithm::Md5,
        ] {
            let a = hash_password(algorithm, "pässword");
            assert!(verify_password(algorithm, &a, "pässword"));
            assert!(!verify_password(algorithm, &a, "password"));
            assert!(is_valid_hash(algorithm, &a));
            assert_eq!(
                HashingAlgorithm::from_name(algorithm.name()),
                Some(algorithm)
            );
        }
        assert!(!verify_password(HashingAlgorithm::Sha256, "", ""));
        assert!(!verify_password(
            HashingAlgorithm::Sha256,
            "not base64!",
            "x"
        ));
        assert_eq!(
            HashingAlgorithm::from_name("rabbit_password_hashing_bcrypt"),
            None
        );
    }
}
