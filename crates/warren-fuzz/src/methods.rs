//! The method decoding target. Input: a method frame's payload (class and method ids first), as a client sends it.
//!
//! Contract: `decode_method` either decodes, and then the method re-encodes to a fixpoint and every field table in
//! it nests within the bound (so the bound was enforced before amq-protocol's recursive decoder ran), or it fails
//! with a connection-level 540 for a method the spec does not define and 501 for anything else, naming the method
//! whenever the ids could be read. `parse_publish`, the allocation-free fast path, accepts exactly the payloads
//! amq-protocol decodes as basic.publish and reads the same arguments from them.

use bytes::BytesMut;
use warren_protocol::error::{ReplyCode, Scope};
use warren_protocol::ids::ALL_METHODS;
use warren_protocol::method::qos_prefetch_size;
use warren_protocol::{
    basic, connection, decode_method, exchange, parse_publish, put_method, queue, AMQPClass,
    FieldTable, FrameSplitter, PublishArgs,
};

use crate::tables;
use crate::Target;

/// The method decoding target.
pub const TARGET: Target = Target {
    name: "methods",
    run,
    alloc_limit,
};

/// Decoded values take more room than their bytes (an array of one-byte voids becomes an array of enum values,
/// grown by doubling), but never more than a constant factor of them.
fn alloc_limit(data: &[u8]) -> usize {
    128 * data.len() + 65_536
}

/// The field tables a method carries.
fn tables_of(method: &AMQPClass) -> Vec<&FieldTable> {
    match method {
        AMQPClass::Connection(connection::AMQPMethod::Start(m)) => vec![&m.server_properties],
        AMQPClass::Connection(connection::AMQPMethod::StartOk(m)) => vec![&m.client_properties],
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(m)) => vec![&m.arguments],
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(m)) => vec![&m.arguments],
        AMQPClass::Exchange(exchange::AMQPMethod::Unbind(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Declare(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Bind(m)) => vec![&m.arguments],
        AMQPClass::Queue(queue::AMQPMethod::Unbind(m)) => vec![&m.arguments],
        AMQPClass::Basic(basic::AMQPMethod::Consume(m)) => vec![&m.arguments],
        _ => Vec::new(),
    }
}

/// A method's payload as Warren encodes it.
fn encode(method: &AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_method(&mut out, 1, method.clone());
    match FrameSplitter::new(0).next_frame(&mut out) {
        Ok(Some(frame)) if out.is_empty() => frame.payload.to_vec(),
        other => panic!("{method:?} does not encode to one frame: {other:?}"),
    }
}

/// Checks one input.
pub fn run(data: &[u8]) {
    let decoded = decode_method(data);
    let ids = (data.len() >= 4).then(|| {
        (
            u16::from_be_bytes([data[0], data[1]]),
            u16::from_be_bytes([data[2], data[3]]),
        )
    });
    match &decoded {
        Ok(method) => {
            for table in tables_of(method) {
                tables::assert_within_bound(table, "method arguments");
            }
            let encoded = encode(method);
            let again = match decode_method(&encoded) {
                Ok(m) => m,
                Err(e) => panic!("{method:?} re-encoded does not decode: {e}"),
            };
            assert_eq!(encode(&again), encoded, "method encoding is not a fixpoint");
        }
        Err(e) => {
            assert_eq!(e.scope, Scope::Connection, "{e}");
            match ids {
                None => assert_eq!(
                    (e.code, e.class_id, e.method_id),
                    (ReplyCode::FrameError, 0, 0)
                ),
                Some(id) => {
                    let known = ALL_METHODS.contains(&id);
                    let code = if known {
                        ReplyCode::FrameError
                    } else {
                        ReplyCode::NotImplemented
                    };
                    assert_eq!((e.code, e.class_id, e.method_id), (code, id.0, id.1), "{e}");
                }
            }
        }
    }
    let publish = match &decoded {
        Ok(AMQPClass::Basic(basic::AMQPMethod::Publish(p))) => Some(PublishArgs::of(p)),
        _ => None,
    };
    assert_eq!(
        parse_publish(data),
        publish,
        "parse_publish and amq-protocol disagree"
    );
    if let Ok(AMQPClass::Basic(basic::AMQPMethod::Qos(_))) = &decoded {
        let size = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        assert_eq!(qos_prefetch_size(data), Some(size));
    } else {
        let _ = qos_prefetch_size(data);
    }
}
