//! Values printed as Erlang prints them (`io_lib:format("~p")`), where the event exchange plugin hands RabbitMQ's
//! internal terms to clients as text: field-table entries, pids and IP addresses.

use std::fmt::Write;
use std::net::IpAddr;

use warren_protocol::field_type::rabbit_type_name;
use warren_protocol::AMQPValue;

/// `{<<"name">>,type,value}`: one entry of a field table as RabbitMQ holds it.
pub(super) fn table_entry(name: &str, value: &AMQPValue) -> String {
    let mut out = String::from("{");
    binary(&mut out, name.as_bytes());
    let _ = write!(out, ",{},", rabbit_type_name(value));
    term(&mut out, value);
    out.push('}');
    out
}

/// The value of a field as an Erlang term: tables as lists of entries, arrays as lists of `{type,value}`.
fn term(out: &mut String, value: &AMQPValue) {
    match value {
        AMQPValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        AMQPValue::ShortShortInt(v) => push(out, v),
        AMQPValue::ShortShortUInt(v) => push(out, v),
        AMQPValue::ShortInt(v) => push(out, v),
        AMQPValue::ShortUInt(v) => push(out, v),
        AMQPValue::LongInt(v) => push(out, v),
        AMQPValue::LongUInt(v) => push(out, v),
        AMQPValue::LongLongInt(v) => push(out, v),
        AMQPValue::Timestamp(v) => push(out, v),
        AMQPValue::Float(v) => push(out, &format!("{v:?}")),
        AMQPValue::Double(v) => push(out, &format!("{v:?}")),
        AMQPValue::DecimalValue(d) => {
            let _ = write!(out, "{{{},{}}}", d.scale, d.value);
        }
        AMQPValue::ShortString(s) => binary(out, s.as_str().as_bytes()),
        AMQPValue::LongString(s) => binary(out, s.as_bytes()),
        AMQPValue::ByteArray(b) => binary(out, b.as_slice()),
        AMQPValue::Void => out.push_str("undefined"),
        AMQPValue::FieldTable(table) => {
            out.push('[');
            for (i, (name, value)) in table.inner().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&table_entry(name.as_str(), value));
            }
            out.push(']');
        }
        AMQPValue::FieldArray(items) => {
            out.push('[');
            for (i, value) in items.as_slice().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{{},", rabbit_type_name(value));
                term(out, value);
                out.push('}');
            }
            out.push(']');
        }
    }
}

fn push(out: &mut String, value: &impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

/// An Erlang binary: `<<"text">>` when every byte is printable ASCII (quotes and backslashes escaped), else its
/// bytes, `<<1,2,3>>`.
fn binary(out: &mut String, bytes: &[u8]) {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        out.push_str("<<\"");
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        }
        out.push_str("\">>");
    } else {
        out.push_str("<<");
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push(out, b);
        }
        out.push_str(">>");
    }
}

/// An IP address as the Erlang tuple RabbitMQ prints for `host` and `peer_host`: `{127,0,0,1}`, or eight decimal
/// groups for IPv6.
pub(crate) fn ip_tuple(ip: IpAddr) -> String {
    let parts: Vec<String> = match ip {
        IpAddr::V4(v4) => v4.octets().iter().map(u8::to_string).collect(),
        IpAddr::V6(v6) => v6.segments().iter().map(u16::to_string).collect(),
    };
    format!("{{{}}}", parts.join(","))
}

/// The "pid" of a connection, written as RabbitMQ writes its connection process (`<node.N.M.0>`): Warren has no
/// processes, so the numbers are the connection's id; channel and consumer events name it as their connection.
pub(crate) fn connection_pid(node: &str, connection_id: u64) -> String {
    format!("<{node}.{connection_id}.0.0>")
}

/// The "pid" of a channel: the connection's id, the channel's number and its serial (a number reused after a
/// close is another channel, as a new process is in RabbitMQ).
pub(crate) fn channel_pid(node: &str, connection_id: u64, channel: u16, serial: u64) -> String {
    format!("<{node}.{connection_id}.{channel}.{serial}>")
}
