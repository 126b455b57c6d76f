//! Golden bytes for every method of the classes Warren speaks (connection, channel, access, exchange, queue, basic,
//! confirm, tx): each method value, with non-default fields, is encoded with `put_method`, compared with bytes
//! written out by hand from the AMQP 0-9-1 spec (class and method ids, field encodings, bits packed low bit first
//! into octets), and decoded back with `decode_method` to an equal value.
//!
//! amq-protocol does not keep the spec's deprecated fields: it writes `ticket` (reserved-1) as 0, connection.open's
//! capabilities and insist as "" and 0, connection.open-ok's known-hosts, channel.open's out-of-band and
//! basic.get-empty's cluster-id as "", channel.open-ok's channel-id as an empty long string, access.request-ok's
//! ticket as 1 and basic.qos's prefetch-size as 0. The expected bytes below carry those values.

use bytes::BytesMut;

use crate::frame::{FrameKind, FrameSplitter};
use crate::{
    access, basic, channel, confirm, connection, decode_method, exchange, put_method, queue, tx,
    AMQPClass, AMQPValue, FieldTable, LongString,
};

/// One method and its expected method-frame payload.
struct Golden {
    name: &'static str,
    method: AMQPClass,
    bytes: Vec<u8>,
}

fn golden(name: &'static str, method: AMQPClass, parts: &[&[u8]]) -> Golden {
    Golden {
        name,
        method,
        bytes: parts.concat(),
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (key, value) in entries {
        t.insert((*key).into(), value.clone());
    }
    t
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn connection_methods() -> Vec<Golden> {
    use connection::AMQPMethod as M;
    let c = AMQPClass::Connection;
    vec![
        golden(
            "connection.start",
            c(M::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: table(&[("product", long("Warren"))]),
                mechanisms: "PLAIN AMQPLAIN".into(),
                locales: "en_US".into(),
            })),
            &[
                &[0, 10, 0, 10],
                &[0, 9],                               // version-major, version-minor: octets
                &[0, 0, 0, 19],                        // server-properties: table of 19 bytes
                b"\x07productS\x00\x00\x00\x06Warren", // shortstr key, 'S' long string
                &[0, 0, 0, 14],
                b"PLAIN AMQPLAIN", // mechanisms: longstr
                &[0, 0, 0, 5],
                b"en_US", // locales: longstr
            ],
        ),
        golden(
            "connection.start-ok",
            c(M::StartOk(connection::StartOk {
                client_properties: table(&[("product", long("lapin"))]),
                mechanism: "PLAIN".into(),
                response: "\0guest\0guest".into(),
                locale: "en_US".into(),
            })),
            &[
                &[0, 10, 0, 11],
                &[0, 0, 0, 18],
                b"\x07productS\x00\x00\x00\x05lapin",
                b"\x05PLAIN", // mechanism: shortstr
                &[0, 0, 0, 12],
                b"\0guest\0guest", // response: longstr
                b"\x05en_US",      // locale: shortstr
            ],
        ),
        golden(
            "connection.secure",
            c(M::Secure(connection::Secure {
                challenge: "abc".into(),
            })),
            &[&[0, 10, 0, 20], &[0, 0, 0, 3], b"abc"],
        ),
        golden(
            "connection.secure-ok",
            c(M::SecureOk(connection::SecureOk {
                response: "xyz".into(),
            })),
            &[&[0, 10, 0, 21], &[0, 0, 0, 3], b"xyz"],
        ),
        golden(
            "connection.tune",
            c(M::Tune(connection::Tune {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 60,
            })),
            &[&[0, 10, 0, 30], &[0x07, 0xFF], &[0, 2, 0, 0], &[0, 60]],
        ),
        golden(
            "connection.tune-ok",
            c(M::TuneOk(connection::TuneOk {
                channel_max: 10,
                frame_max: 4096,
                heartbeat: 5,
            })),
            &[&[0, 10, 0, 31], &[0, 10], &[0, 0, 0x10, 0], &[0, 5]],
        ),
        golden(
            "connection.open",
            c(M::Open(connection::Open {
                virtual_host: "/prod".into(),
            })),
            // virtual-host, reserved-1 (capabilities) "", reserved-2 (insist) bit 0
            &[&[0, 10, 0, 40], b"\x05/prod", &[0], &[0]],
        ),
        golden(
            "connection.open-ok",
            c(M::OpenOk(connection::OpenOk {})),
            &[&[0, 10, 0, 41], &[0]], // reserved-1 (known-hosts) ""
        ),
        golden(
            "connection.close",
            c(M::Close(connection::Close {
                reply_code: 504,
                reply_text: "CHANNEL_ERROR - x".into(),
                class_id: 20,
                method_id: 10,
            })),
            &[
                &[0, 10, 0, 50],
                &[0x01, 0xF8],
                b"\x11CHANNEL_ERROR - x",
                &[0, 20],
                &[0, 10],
            ],
        ),
        golden(
            "connection.close-ok",
            c(M::CloseOk(connection::CloseOk {})),
            &[&[0, 10, 0, 51]],
        ),
        golden(
            "connection.blocked",
            c(M::Blocked(connection::Blocked {
                reason: "low on memory".into(),
            })),
            &[&[0, 10, 0, 60], b"\x0dlow on memory"],
        ),
        golden(
            "connection.unblocked",
            c(M::Unblocked(connection::Unblocked {})),
            &[&[0, 10, 0, 61]],
        ),
        golden(
            "connection.update-secret",
            c(M::UpdateSecret(connection::UpdateSecret {
                new_secret: "token".into(),
                reason: "refresh".into(),
            })),
            &[&[0, 10, 0, 70], &[0, 0, 0, 5], b"token", b"\x07refresh"],
        ),
        golden(
            "connection.update-secret-ok",
            c(M::UpdateSecretOk(connection::UpdateSecretOk {})),
            &[&[0, 10, 0, 71]],
        ),
    ]
}

fn channel_methods() -> Vec<Golden> {
    use channel::AMQPMethod as M;
    let c = AMQPClass::Channel;
    vec![
        golden(
            "channel.open",
            c(M::Open(channel::Open {})),
            &[&[0, 20, 0, 10], &[0]], // reserved-1 (out-of-band) ""
        ),
        golden(
            "channel.open-ok",
            c(M::OpenOk(channel::OpenOk {})),
            &[&[0, 20, 0, 11], &[0, 0, 0, 0]], // reserved-1 (channel-id) longstr ""
        ),
        golden(
            "channel.flow",
            c(M::Flow(channel::Flow { active: true })),
            &[&[0, 20, 0, 20], &[1]],
        ),
        golden(
            "channel.flow-ok",
            c(M::FlowOk(channel::FlowOk { active: true })),
            &[&[0, 20, 0, 21], &[1]],
        ),
        golden(
            "channel.close",
            c(M::Close(channel::Close {
                reply_code: 406,
                reply_text: "PRECONDITION_FAILED - x".into(),
                class_id: 50,
                method_id: 10,
            })),
            &[
                &[0, 20, 0, 40],
                &[0x01, 0x96],
                b"\x17PRECONDITION_FAILED - x",
                &[0, 50],
                &[0, 10],
            ],
        ),
        golden(
            "channel.close-ok",
            c(M::CloseOk(channel::CloseOk {})),
            &[&[0, 20, 0, 41]],
        ),
    ]
}

fn access_methods() -> Vec<Golden> {
    use access::AMQPMethod as M;
    let c = AMQPClass::Access;
    vec![
        golden(
            "access.request",
            c(M::Request(access::Request {
                realm: "/data".into(),
                exclusive: true,
                passive: false,
                active: true,
                write: false,
                read: true,
            })),
            // exclusive bit 0, passive bit 1, active bit 2, write bit 3, read bit 4
            &[&[0, 30, 0, 10], b"\x05/data", &[0b0001_0101]],
        ),
        golden(
            "access.request-ok",
            c(M::RequestOk(access::RequestOk {})),
            &[&[0, 30, 0, 11], &[0, 1]], // reserved-1 (ticket) 1
        ),
    ]
}

fn exchange_methods() -> Vec<Golden> {
    use exchange::AMQPMethod as M;
    let c = AMQPClass::Exchange;
    vec![
        golden(
            "exchange.declare",
            c(M::Declare(exchange::Declare {
                exchange: "logs".into(),
                kind: "topic".into(),
                passive: false,
                durable: true,
                auto_delete: true,
                internal: false,
                nowait: true,
                arguments: table(&[("alternate-exchange", long("ae"))]),
            })),
            &[
                &[0, 40, 0, 10],
                &[0, 0], // reserved-1 (ticket)
                b"\x04logs",
                b"\x05topic",
                // passive bit 0, durable bit 1, auto-delete bit 2, internal bit 3, no-wait bit 4
                &[0b0001_0110],
                &[0, 0, 0, 26],
                b"\x12alternate-exchangeS\x00\x00\x00\x02ae",
            ],
        ),
        golden(
            "exchange.declare-ok",
            c(M::DeclareOk(exchange::DeclareOk {})),
            &[&[0, 40, 0, 11]],
        ),
        golden(
            "exchange.delete",
            c(M::Delete(exchange::Delete {
                exchange: "logs".into(),
                if_unused: true,
                nowait: false,
            })),
            &[&[0, 40, 0, 20], &[0, 0], b"\x04logs", &[0b01]],
        ),
        golden(
            "exchange.delete-ok",
            c(M::DeleteOk(exchange::DeleteOk {})),
            &[&[0, 40, 0, 21]],
        ),
        golden(
            "exchange.bind",
            c(M::Bind(exchange::Bind {
                destination: "dst".into(),
                source: "src".into(),
                routing_key: "a.*".into(),
                nowait: true,
                arguments: table(&[("x-match", long("any"))]),
            })),
            &[
                &[0, 40, 0, 30],
                &[0, 0],
                b"\x03dst",
                b"\x03src",
                b"\x03a.*",
                &[1],
                &[0, 0, 0, 16],
                b"\x07x-matchS\x00\x00\x00\x03any",
            ],
        ),
        golden(
            "exchange.bind-ok",
            c(M::BindOk(exchange::BindOk {})),
            &[&[0, 40, 0, 31]],
        ),
        golden(
            "exchange.unbind",
            c(M::Unbind(exchange::Unbind {
                destination: "dst".into(),
                source: "src".into(),
                routing_key: "a.#".into(),
                nowait: true,
                arguments: FieldTable::default(),
            })),
            &[
                &[0, 40, 0, 40],
                &[0, 0],
                b"\x03dst",
                b"\x03src",
                b"\x03a.#",
                &[1],
                &[0, 0, 0, 0],
            ],
        ),
        golden(
            "exchange.unbind-ok",
            c(M::UnbindOk(exchange::UnbindOk {})),
            &[&[0, 40, 0, 51]], // RabbitMQ's extension numbers it 51
        ),
    ]
}

fn queue_methods() -> Vec<Golden> {
    use queue::AMQPMethod as M;
    let c = AMQPClass::Queue;
    vec![
        golden(
            "queue.declare",
            c(M::Declare(queue::Declare {
                queue: "jobs".into(),
                passive: false,
                durable: true,
                exclusive: false,
                auto_delete: true,
                nowait: false,
                arguments: table(&[("x-message-ttl", AMQPValue::LongInt(60000))]),
            })),
            &[
                &[0, 50, 0, 10],
                &[0, 0],
                b"\x04jobs",
                // passive bit 0, durable bit 1, exclusive bit 2, auto-delete bit 3, no-wait bit 4
                &[0b0000_1010],
                &[0, 0, 0, 19],
                b"\x0dx-message-ttlI",
                &[0, 0, 0xEA, 0x60],
            ],
        ),
        golden(
            "queue.declare-ok",
            c(M::DeclareOk(queue::DeclareOk {
                queue: "jobs".into(),
                message_count: 42,
                consumer_count: 3,
            })),
            &[&[0, 50, 0, 11], b"\x04jobs", &[0, 0, 0, 42], &[0, 0, 0, 3]],
        ),
        golden(
            "queue.bind",
            c(M::Bind(queue::Bind {
                queue: "jobs".into(),
                exchange: "logs".into(),
                routing_key: "#".into(),
                nowait: true,
                arguments: table(&[("x-match", long("all"))]),
            })),
            &[
                &[0, 50, 0, 20],
                &[0, 0],
                b"\x04jobs",
                b"\x04logs",
                b"\x01#",
                &[1],
                &[0, 0, 0, 16],
                b"\x07x-matchS\x00\x00\x00\x03all",
            ],
        ),
        golden(
            "queue.bind-ok",
            c(M::BindOk(queue::BindOk {})),
            &[&[0, 50, 0, 21]],
        ),
        golden(
            "queue.purge",
            c(M::Purge(queue::Purge {
                queue: "jobs".into(),
                nowait: true,
            })),
            &[&[0, 50, 0, 30], &[0, 0], b"\x04jobs", &[1]],
        ),
        golden(
            "queue.purge-ok",
            c(M::PurgeOk(queue::PurgeOk { message_count: 7 })),
            &[&[0, 50, 0, 31], &[0, 0, 0, 7]],
        ),
        golden(
            "queue.delete",
            c(M::Delete(queue::Delete {
                queue: "jobs".into(),
                if_unused: true,
                if_empty: false,
                nowait: true,
            })),
            // if-unused bit 0, if-empty bit 1, no-wait bit 2
            &[&[0, 50, 0, 40], &[0, 0], b"\x04jobs", &[0b101]],
        ),
        golden(
            "queue.delete-ok",
            c(M::DeleteOk(queue::DeleteOk { message_count: 9 })),
            &[&[0, 50, 0, 41], &[0, 0, 0, 9]],
        ),
        golden(
            "queue.unbind",
            c(M::Unbind(queue::Unbind {
                queue: "jobs".into(),
                exchange: "logs".into(),
                routing_key: "a.b".into(),
                arguments: FieldTable::default(),
            })),
            // queue.unbind has no no-wait bit
            &[
                &[0, 50, 0, 50],
                &[0, 0],
                b"\x04jobs",
                b"\x04logs",
                b"\x03a.b",
                &[0, 0, 0, 0],
            ],
        ),
        golden(
            "queue.unbind-ok",
            c(M::UnbindOk(queue::UnbindOk {})),
            &[&[0, 50, 0, 51]],
        ),
    ]
}

fn basic_methods() -> Vec<Golden> {
    use basic::AMQPMethod as M;
    let c = AMQPClass::Basic;
    vec![
        golden(
            "basic.qos",
            c(M::Qos(basic::Qos {
                prefetch_count: 250,
                global: true,
            })),
            &[&[0, 60, 0, 10], &[0, 0, 0, 0], &[0, 250], &[1]], // prefetch-size written as 0
        ),
        golden(
            "basic.qos-ok",
            c(M::QosOk(basic::QosOk {})),
            &[&[0, 60, 0, 11]],
        ),
        golden(
            "basic.consume",
            c(M::Consume(basic::Consume {
                queue: "jobs".into(),
                consumer_tag: "ctag-1".into(),
                no_local: false,
                no_ack: true,
                exclusive: true,
                nowait: false,
                arguments: table(&[("x-priority", AMQPValue::LongInt(5))]),
            })),
            &[
                &[0, 60, 0, 20],
                &[0, 0],
                b"\x04jobs",
                b"\x06ctag-1",
                // no-local bit 0, no-ack bit 1, exclusive bit 2, no-wait bit 3
                &[0b0110],
                &[0, 0, 0, 16],
                b"\x0ax-priorityI\x00\x00\x00\x05",
            ],
        ),
        golden(
            "basic.consume-ok",
            c(M::ConsumeOk(basic::ConsumeOk {
                consumer_tag: "ctag-1".into(),
            })),
            &[&[0, 60, 0, 21], b"\x06ctag-1"],
        ),
        golden(
            "basic.cancel",
            c(M::Cancel(basic::Cancel {
                consumer_tag: "ctag-1".into(),
                nowait: true,
            })),
            &[&[0, 60, 0, 30], b"\x06ctag-1", &[1]],
        ),
        golden(
            "basic.cancel-ok",
            c(M::CancelOk(basic::CancelOk {
                consumer_tag: "ctag-1".into(),
            })),
            &[&[0, 60, 0, 31], b"\x06ctag-1"],
        ),
        golden(
            "basic.publish",
            c(M::Publish(basic::Publish {
                exchange: "logs".into(),
                routing_key: "a.b".into(),
                mandatory: true,
                immediate: false,
            })),
            // mandatory bit 0, immediate bit 1
            &[&[0, 60, 0, 40], &[0, 0], b"\x04logs", b"\x03a.b", &[0b01]],
        ),
        golden(
            "basic.return",
            c(M::Return(basic::Return {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "logs".into(),
                routing_key: "a.b".into(),
            })),
            &[
                &[0, 60, 0, 50],
                &[0x01, 0x38],
                b"\x08NO_ROUTE",
                b"\x04logs",
                b"\x03a.b",
            ],
        ),
        golden(
            "basic.deliver",
            c(M::Deliver(basic::Deliver {
                consumer_tag: "ctag-1".into(),
                delivery_tag: (1 << 40) | 5,
                redelivered: true,
                exchange: "logs".into(),
                routing_key: "a.b".into(),
            })),
            &[
                &[0, 60, 0, 60],
                b"\x06ctag-1",
                &[0, 0, 1, 0, 0, 0, 0, 5], // delivery-tag: longlong
                &[1],
                b"\x04logs",
                b"\x03a.b",
            ],
        ),
        golden(
            "basic.get",
            c(M::Get(basic::Get {
                queue: "jobs".into(),
                no_ack: true,
            })),
            &[&[0, 60, 0, 70], &[0, 0], b"\x04jobs", &[1]],
        ),
        golden(
            "basic.get-ok",
            c(M::GetOk(basic::GetOk {
                delivery_tag: 9,
                redelivered: true,
                exchange: "".into(),
                routing_key: "jobs".into(),
                message_count: 4,
            })),
            &[
                &[0, 60, 0, 71],
                &[0, 0, 0, 0, 0, 0, 0, 9],
                &[1],
                &[0],
                b"\x04jobs",
                &[0, 0, 0, 4],
            ],
        ),
        golden(
            "basic.get-empty",
            c(M::GetEmpty(basic::GetEmpty {})),
            &[&[0, 60, 0, 72], &[0]], // reserved-1 (cluster-id) ""
        ),
        golden(
            "basic.ack",
            c(M::Ack(basic::Ack {
                delivery_tag: 77,
                multiple: true,
            })),
            &[&[0, 60, 0, 80], &[0, 0, 0, 0, 0, 0, 0, 77], &[1]],
        ),
        golden(
            "basic.reject",
            c(M::Reject(basic::Reject {
                delivery_tag: 78,
                requeue: true,
            })),
            &[&[0, 60, 0, 90], &[0, 0, 0, 0, 0, 0, 0, 78], &[1]],
        ),
        golden(
            "basic.recover-async",
            c(M::RecoverAsync(basic::RecoverAsync { requeue: true })),
            &[&[0, 60, 0, 100], &[1]],
        ),
        golden(
            "basic.recover",
            c(M::Recover(basic::Recover { requeue: true })),
            &[&[0, 60, 0, 110], &[1]],
        ),
        golden(
            "basic.recover-ok",
            c(M::RecoverOk(basic::RecoverOk {})),
            &[&[0, 60, 0, 111]],
        ),
        golden(
            "basic.nack",
            c(M::Nack(basic::Nack {
                delivery_tag: 79,
                multiple: false,
                requeue: true,
            })),
            // multiple bit 0, requeue bit 1
            &[&[0, 60, 0, 120], &[0, 0, 0, 0, 0, 0, 0, 79], &[0b10]],
        ),
    ]
}

fn confirm_methods() -> Vec<Golden> {
    use confirm::AMQPMethod as M;
    let c = AMQPClass::Confirm;
    vec![
        golden(
            "confirm.select",
            c(M::Select(confirm::Select { nowait: true })),
            &[&[0, 85, 0, 10], &[1]],
        ),
        golden(
            "confirm.select-ok",
            c(M::SelectOk(confirm::SelectOk {})),
            &[&[0, 85, 0, 11]],
        ),
    ]
}

fn tx_methods() -> Vec<Golden> {
    use tx::AMQPMethod as M;
    let c = AMQPClass::Tx;
    vec![
        golden("tx.select", c(M::Select(tx::Select {})), &[&[0, 90, 0, 10]]),
        golden(
            "tx.select-ok",
            c(M::SelectOk(tx::SelectOk {})),
            &[&[0, 90, 0, 11]],
        ),
        golden("tx.commit", c(M::Commit(tx::Commit {})), &[&[0, 90, 0, 20]]),
        golden(
            "tx.commit-ok",
            c(M::CommitOk(tx::CommitOk {})),
            &[&[0, 90, 0, 21]],
        ),
        golden(
            "tx.rollback",
            c(M::Rollback(tx::Rollback {})),
            &[&[0, 90, 0, 30]],
        ),
        golden(
            "tx.rollback-ok",
            c(M::RollbackOk(tx::RollbackOk {})),
            &[&[0, 90, 0, 31]],
        ),
    ]
}

fn all_methods() -> Vec<Golden> {
    [
        connection_methods(),
        channel_methods(),
        access_methods(),
        exchange_methods(),
        queue_methods(),
        basic_methods(),
        confirm_methods(),
        tx_methods(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Encodes `method` on channel 7 and returns the method frame's payload, after checking the frame around it.
fn encode(name: &str, method: AMQPClass) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_method(&mut out, 7, method);
    let mut head = vec![1, 0, 7];
    head.extend_from_slice(&(out.len().saturating_sub(8) as u32).to_be_bytes());
    assert_eq!(
        out.get(..7),
        Some(&head[..]),
        "{name}: frame header (type 1, channel 7, payload size)"
    );
    assert_eq!(out.last(), Some(&0xCE), "{name}: frame end octet");
    let frame = FrameSplitter::new(0)
        .next_frame(&mut out)
        .unwrap_or_else(|e| panic!("{name}: encoded frame does not split: {e}"))
        .unwrap_or_else(|| panic!("{name}: encoded frame is incomplete"));
    assert_eq!(frame.kind, FrameKind::Method, "{name}");
    assert_eq!(frame.channel, 7, "{name}");
    assert!(out.is_empty(), "{name}: bytes after the frame end");
    frame.payload.to_vec()
}

#[test]
fn every_method_encodes_to_its_golden_bytes_and_decodes_back() {
    let methods = all_methods();
    // Every (class, method) pair of the eight classes, each once.
    let mut ids: Vec<(u16, u16)> = methods
        .iter()
        .map(|g| (g.method.get_amqp_class_id(), g.method.get_amqp_method_id()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), methods.len(), "a method is listed twice");
    assert_eq!(methods.len(), 14 + 6 + 2 + 8 + 10 + 18 + 2 + 6);
    for g in methods {
        let payload = encode(g.name, g.method.clone());
        assert_eq!(payload, g.bytes, "{}: encoded bytes", g.name);
        match decode_method(&g.bytes) {
            Ok(decoded) => assert_eq!(decoded, g.method, "{}: decoded value", g.name),
            Err(e) => panic!("{}: golden bytes do not decode: {e}", g.name),
        }
    }
}

#[test]
fn every_golden_payload_cut_short_is_refused() {
    for g in all_methods() {
        for len in 0..g.bytes.len() {
            let cut = &g.bytes[..len];
            // Every field is needed: no prefix of a method's payload is a whole method.
            if let Ok(decoded) = decode_method(cut) {
                panic!(
                    "{}: {len} of {} bytes decoded to {decoded:?}",
                    g.name,
                    g.bytes.len()
                );
            }
        }
    }
}

/// Deprecated fields other clients still fill in are read and dropped, not refused.
#[test]
fn deprecated_fields_from_other_encoders_are_accepted() {
    let cases: [(&str, Vec<u8>, AMQPClass); 4] = [
        (
            "connection.open with capabilities and insist set",
            [&[0, 10, 0, 40][..], b"\x01/", b"\x03abc", &[1]].concat(),
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        ),
        (
            "queue.declare with a non-zero ticket",
            [
                &[0, 50, 0, 10][..],
                &[0, 5],
                b"\x01q",
                &[0b10],
                &[0, 0, 0, 0],
            ]
            .concat(),
            AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                queue: "q".into(),
                durable: true,
                ..Default::default()
            })),
        ),
        (
            "basic.qos with a prefetch-size (refused later, see qos_prefetch_size)",
            [&[0, 60, 0, 10][..], &[0, 0, 0, 10], &[0, 3], &[0]].concat(),
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 3,
                global: false,
            })),
        ),
        (
            "channel.open-ok with a channel-id",
            [&[0, 20, 0, 11][..], &[0, 0, 0, 2], b"id"].concat(),
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        ),
    ];
    for (name, bytes, expected) in cases {
        match decode_method(&bytes) {
            Ok(decoded) => assert_eq!(decoded, expected, "{name}"),
            Err(e) => panic!("{name}: {e}"),
        }
    }
    let qos = [&[0, 60, 0, 10][..], &[0, 0, 0, 10], &[0, 3], &[0]].concat();
    assert_eq!(super::method::qos_prefetch_size(&qos), Some(10));
}
