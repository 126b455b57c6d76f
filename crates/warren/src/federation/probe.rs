//! The upstream's cluster name, which a link writes into each message's `x-received-from` entry and loop detection
//! compares: read from the `cluster_name` server property of the upstream's connection.start (lapin does not
//! expose the server properties, so a short plain-TCP handshake start reads them; over TLS the URI's host stands
//! in for the name).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_protocol::{decode_method, AMQPClass, AMQPValue};

use crate::shovel::endpoint::{Endpoint, LocalNode};

/// How long the probe may take before the host stands in for the name.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The upstream's `cluster_name`, or its host when it cannot be read.
pub(crate) async fn cluster_name(uri: &Endpoint, local: &LocalNode) -> String {
    let (host, port, tls) = uri.address(local);
    if tls {
        return host;
    }
    match tokio::time::timeout(PROBE_TIMEOUT, read_cluster_name(&host, port)).await {
        Ok(Some(name)) => name,
        _ => host,
    }
}

async fn read_cluster_name(host: &str, port: u16) -> Option<String> {
    let mut stream = TcpStream::connect((host, port)).await.ok()?;
    stream.write_all(b"AMQP\x00\x00\x09\x01").await.ok()?;
    let mut head = [0u8; 7];
    stream.read_exact(&mut head).await.ok()?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    // connection.start is small; anything larger is not one.
    if head[0] != 1 || size > 64 * 1024 {
        return None;
    }
    let mut payload = vec![0u8; size + 1];
    stream.read_exact(&mut payload).await.ok()?;
    payload.pop();
    let AMQPClass::Connection(warren_protocol::connection::AMQPMethod::Start(start)) =
        decode_method(&payload).ok()?
    else {
        return None;
    };
    match start.server_properties.inner().get("cluster_name")? {
        AMQPValue::LongString(name) => Some(String::from_utf8_lossy(name.as_bytes()).into_owned()),
        _ => None,
    }
}
