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
