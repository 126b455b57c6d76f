//! The AMQP 0-9-1 wire protocol: frame splitting, method decoding and encoding, content frames, the AMQP exceptions
//! ([`error`]) and the client-side encoders `warren perf` uses. This is the only crate that
//! imports `amq-protocol`; the rest of the broker uses the re-exports below. [`ids`] names every method's
//! (class, method) pair.

pub mod client;
pub mod content;
pub mod error;
pub mod field_type;
pub mod frame;
#[cfg(test)]
mod golden_tests;
pub mod ids;
pub mod method;
pub mod nesting;

pub use amq_protocol::protocol::{
    access, basic, channel, confirm, connection, exchange, queue, tx, AMQPClass,
};
pub use amq_protocol::types;
pub use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
pub use content::ContentHeader;
pub use frame::{FrameKind, FramePayload, FrameSplitter, RawFrame};
pub use method::{decode_method, parse_publish, put_method, PublishArgs};

/// The protocol header a client sends first, and the one the broker answers with when it cannot serve the one it got.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Decodes a length-prefixed field table (used for SASL AMQPLAIN responses).
pub fn decode_field_table(bytes: &[u8]) -> Option<FieldTable> {
    nesting::check_table(bytes).ok()?;
    amq_protocol::types::parsing::parse_field_table(bytes)
        .ok()
        .map(|(_, t)| t)
}
