//! The recording proxy: forwards AMQP connections to a broker and cuts what each client sent into inputs of the
//! `frames`, `methods` and `content` targets.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use warren_protocol::{FrameKind, FrameSplitter};

use crate::{hash, write};

/// What one client may send that is kept for cutting into inputs.
const MAX_RECORDED: usize = 1 << 20;
/// The longest `frames` input: the start of a connection, cut at a frame boundary.
const MAX_STREAM_INPUT: usize = 16 << 10;
/// `frames` inputs kept per run.
const MAX_STREAMS: usize = 6;
/// `methods` inputs kept per method (more for the methods that carry a field table).
const PER_METHOD: usize = 1;
const PER_METHOD_WITH_TABLE: usize = 3;
/// `content` inputs kept per property-flags value.
const PER_FLAGS: usize = 2;
/// The proxy stops once no client has been connected for this long (after the first one).
const IDLE_STOP: Duration = Duration::from_secs(8);

/// What the proxy has saved so far.
#[derive(Default)]
struct Collector {
    seen: HashSet<u64>,
    per_key: HashMap<String, usize>,
    streams: usize,
}

impl Collector {
    /// Saves `bytes` as `OUT/<target>/<label>-<key>-<hash>` unless it is a duplicate or `key` has `cap` already.
    fn keep(&mut self, out: &Path, target: &str, label: &str, key: &str, cap: usize, bytes: &[u8]) {
        let h = hash(bytes);
        let count = self.per_key.entry(format!("{target}/{key}")).or_default();
        if *count >= cap || !self.seen.insert(h) {
            return;
        }
        *count += 1;
        let path = out.join(target).join(format!("{label}-{key}-{h:016x}"));
        if let Err(e) = write(&path, bytes) {
            eprintln!("{e}");
        }
    }

    /// Cuts what one client sent into inputs.
    fn connection(&mut self, out: &Path, label: &str, sent: &[u8]) {
        let Some(stream) = sent.strip_prefix(b"AMQP\x00\x00\x09\x01") else {
            return;
        };
        let splitter = FrameSplitter::new(0);
        let mut buf = BytesMut::from(stream);
        let mut whole = 0usize;
        while let Ok(Some(frame)) = splitter.next_frame(&mut buf) {
            let payload = &frame.payload[..];
            match frame.kind {
                FrameKind::Method if payload.len() >= 4 => {
                    let ids = (
                        u16::from_be_bytes([payload[0], payload[1]]),
                        u16::from_be_bytes([payload[2], payload[3]]),
                    );
                    let with_table = matches!(
                        ids,
                        (10, 11) | (40, 10 | 30 | 40) | (50, 10 | 20 | 50) | (60, 20)
                    );
                    let cap = if with_table {
                        PER_METHOD_WITH_TABLE
                    } else {
                        PER_METHOD
                    };
                    self.keep(
                        out,
                        "methods",
                        label,
                        &format!("{}.{}", ids.0, ids.1),
                        cap,
                        payload,
                    );
                }
                FrameKind::Header if payload.len() >= 14 => {
                    let flags = u16::from_be_bytes([payload[12], payload[13]]);
                    self.keep(
                        out,
                        "content",
                        label,
                        &format!("flags{flags:04x}"),
                        PER_FLAGS,
                        payload,
                    );
                }
                _ => {}
            }
            let end = stream.len() - buf.len();
            if end <= MAX_STREAM_INPUT {
                whole = end;
            }
        }
        if self.streams < MAX_STREAMS && whole > 0 {
            // Default frame_max; the second byte varies how the frames target cuts the stream into reads.
            let mut input = vec![0, self.streams as u8];
            input.extend(&stream[..whole]);
            let before = self.per_key.get("frames/stream").copied().unwrap_or(0);
            self.keep(out, "frames", label, "stream", MAX_STREAMS, &input);
            if self.per_key.get("frames/stream").copied().unwrap_or(0) > before {
                self.streams += 1;
            }
        }
    }
}

/// Copies `from` to `to` until either ends; keeps up to [`MAX_RECORDED`] bytes of it in `record`.
fn pump(mut from: TcpStream, mut to: TcpStream, mut record: Option<&mut Vec<u8>>) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = record.as_deref_mut() {
                    let room = MAX_RECORDED.saturating_sub(r.len());
                    r.extend_from_slice(&buf[..n.min(room)]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

pub(crate) fn proxy(
    listen: &str,
    upstream: &str,
    out: &Path,
    label: &str,
    run_for: Duration,
) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("listen {listen}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let collector = Arc::new(Mutex::new(Collector::default()));
    let started = Instant::now();
    let mut handlers: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut idle_since: Option<Instant> = None;
    eprintln!(
        "proxying {listen} -> {upstream} for {run_for:?}, saving under {}",
        out.display()
    );
    while started.elapsed() < run_for {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let open = handlers.iter().any(|h| !h.is_finished());
                if !handlers.is_empty() && !open {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= IDLE_STOP {
                        break;
                    }
                } else {
                    idle_since = None;
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(format!("accept: {e}")),
        };
        let _ = client.set_nonblocking(false);
        let server =
            TcpStream::connect(upstream).map_err(|e| format!("connect {upstream}: {e}"))?;
        let (collector, out, label) = (collector.clone(), PathBuf::from(out), label.to_string());
        handlers.push(std::thread::spawn(move || {
            let (Ok(client_r), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let back = std::thread::spawn(move || pump(server_r, client, None));
            let mut sent = Vec::new();
            pump(client_r, server, Some(&mut sent));
            let _ = back.join();
            collector
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .connection(&out, &label, &sent);
        }));
    }
    for h in handlers {
        let _ = h.join();
    }
    Ok(())
}
