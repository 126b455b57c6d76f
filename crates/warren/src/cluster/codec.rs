//! How a group's entries, snapshots and RPCs are encoded: JSON for the definitions group (small, rare, readable
//! when debugging), postcard (a compact binary serde format) for the quorum queues' groups, whose entries carry
//! message bodies.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An encoding of serde values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// serde_json.
    Json,
    /// postcard.
    Binary,
}

impl Codec {
    /// `value` encoded.
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::Binary => postcard::to_stdvec(value).map_err(|e| e.to_string()),
        }
    }

    /// A value decoded from `bytes`.
    pub(crate) fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            Codec::Binary => postcard::from_bytes(bytes).map_err(|e| e.to_string()),
        }
    }

    /// The HTTP content type of an encoded body.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Binary => "application/octet-stream",
        }
    }
}

/// `Bytes` as serde bytes (a length and the bytes in the group's binary encoding).
pub(crate) mod serde_bytes {
    use bytes::Bytes;
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    pub(crate) fn serialize<S: Serializer>(
        bytes: &Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(byte) = seq.next_element::<u8>()? {
                bytes.push(byte);
            }
            Ok(Bytes::from(bytes))
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Bytes, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}
