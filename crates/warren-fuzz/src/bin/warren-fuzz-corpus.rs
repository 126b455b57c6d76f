//! Builds the fuzz seed corpus from real traffic (docs/fuzzing.md, "The corpus"):
//! - `proxy LISTEN UPSTREAM OUT LABEL SECONDS`: a loopback TCP proxy between AMQP clients and a broker; what each
//!   client sent is cut into frames and saved as inputs of the `frames`, `methods` and `content` targets under
//!   `OUT/<target>/`, a few of each kind, named `LABEL-KEY-HASH`, deduplicated. Stops after SECONDS, or once no
//!   client has been connected for [`IDLE_STOP`].
//! - `select RAW OUT`: picks a small corpus out of one or more proxies' output: per method (per property-flags value
//!   for content headers) a few inputs, from as many different clients as there are, and a few streams.
//! - `pack-store MSGS_DIR OUT_FILE FLAGS`: packs a real store directory (`<data_dir>/msgs`) into one input of the
//!   `store` target (FLAGS is its flags byte), each file cut to at most 16 KiB of whole records from its front and
//!   its back.
//! - `seeds OUT`: writes the hand-built deep-nesting inputs (`warren_fuzz::seeds`) under `OUT/<target>/`.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use warren_protocol::{FrameKind, FrameSplitter};

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
/// What `select` keeps: inputs per method id, per method id that carries a table, per property-flags value, and
/// streams in all.
const SELECT_PER_METHOD: usize = 1;
const SELECT_PER_METHOD_WITH_TABLE: usize = 2;
const SELECT_PER_FLAGS: usize = 1;
const SELECT_STREAMS: usize = 8;
/// A store file kept in a `store` input.
const MAX_STORE_FILE: usize = 16 << 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["proxy", listen, upstream, out, label, seconds] => match seconds.parse() {
            Ok(s) => proxy(
                listen,
                upstream,
                Path::new(out),
                label,
                Duration::from_secs(s),
            ),
            Err(_) => Err(format!("bad SECONDS {seconds}")),
        },
        ["pack-store", dir, out, flags] => match flags.parse() {
            Ok(flags) => pack_store(Path::new(dir), Path::new(out), flags),
            Err(_) => Err(format!("bad FLAGS {flags}")),
        },
        ["seeds", out] => write_seeds(Path::new(out)),
        ["select", raw, out] => select(Path::new(raw), Path::new(out)),
        _ => Err(
            "usage: warren-fuzz-corpus proxy LISTEN UPSTREAM OUT LABEL SECONDS | \
                  pack-store MSGS_DIR OUT_FILE FLAGS | seeds OUT | select RAW OUT"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("warren-fuzz-corpus: {e}");
        std::process::exit(1);
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_seeds(out: &Path) -> Result<(), String> {
    for (target, name, bytes) in warren_fuzz::seeds::deep_nesting() {
        write(&out.join(target).join(name), &bytes)?;
    }
    Ok(())
}

/// FNV-1a, to name and deduplicate inputs.
fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

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

fn proxy(
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

/// A store file cut down to at most [`MAX_STORE_FILE`] bytes: its header, the whole records that fit in half of it
/// from the front (publishes, mostly) and in the other half from the back (acks, drops, the last writes before the
/// kill), in order, and any torn bytes after the last whole record.
fn cut_store_file(file: &[u8]) -> Vec<u8> {
    let header = 16usize.min(file.len());
    let mut records = Vec::new();
    let mut at = header;
    while let Some(h) = file.get(at..at + 9) {
        let end = at + 9 + u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if end > file.len() {
            break;
        }
        records.push(at..end);
        at = end;
    }
    let torn = &file[at..file.len().min(at + 1024)];
    let half = (MAX_STORE_FILE - header - torn.len()) / 2;
    let mut front = 0;
    let mut used = 0;
    while front < records.len() && used + records[front].len() <= half {
        used += records[front].len();
        front += 1;
    }
    let mut back = records.len();
    used = 0;
    while back > front && used + records[back - 1].len() <= half {
        used += records[back - 1].len();
        back -= 1;
    }
    let mut out = file[..header].to_vec();
    for r in records[..front].iter().chain(&records[back..]) {
        out.extend_from_slice(&file[r.clone()]);
    }
    out.extend_from_slice(torn);
    out
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn pack_store(dir: &Path, out: &Path, flags: u8) -> Result<(), String> {
    let mut input = vec![flags];
    let mut push = |slot: u8, path: &Path| -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let kept = cut_store_file(&bytes);
        input.push(slot);
        input.extend((kept.len() as u16).to_le_bytes());
        input.extend(&kept);
        Ok(())
    };
    let wal: Vec<PathBuf> = sorted_entries(&dir.join("wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    for (i, path) in wal.iter().take(4).enumerate() {
        push(i as u8, path)?;
    }
    // The first queues found become durable queues 1..4, the rest deleted queues 5..8.
    for (q, queue_dir) in sorted_entries(&dir.join("queues"))
        .iter()
        .take(8)
        .enumerate()
    {
        let segments = sorted_entries(queue_dir);
        for (seq, path) in segments
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .take(2)
            .enumerate()
        {
            push(64 + ((q as u8) << 3) + seq as u8, path)?;
        }
    }
    write(out, &input)
}

/// Reads `LABEL-KEY-HASH` file names (a label may hold dashes, a key does not): (label, key).
fn label_and_key(name: &str) -> Option<(&str, &str)> {
    let (rest, _hash) = name.rsplit_once('-')?;
    rest.rsplit_once('-')
}

fn select(raw: &Path, out: &Path) -> Result<(), String> {
    for target in ["frames", "methods", "content"] {
        // Group by key; within a group take one input per client in turn, so the kept ones differ in origin.
        let mut groups: std::collections::BTreeMap<String, Vec<(String, PathBuf)>> =
            Default::default();
        for path in sorted_entries(&raw.join(target)) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some((label, key)) = label_and_key(&name) else {
                continue;
            };
            if label.starts_with("deep") {
                continue;
            }
            let key = if target == "frames" {
                "stream".to_string()
            } else {
                key.to_string()
            };
            groups
                .entry(key)
                .or_default()
                .push((label.to_string(), path));
        }
        let mut used: HashMap<String, usize> = HashMap::new();
        for (key, mut inputs) in groups {
            let cap = match target {
                "frames" => SELECT_STREAMS,
                "content" => SELECT_PER_FLAGS,
                _ if matches!(
                    key.as_str(),
                    "10.11" | "40.10" | "40.30" | "40.40" | "50.10" | "50.20" | "50.50" | "60.20"
                ) =>
                {
                    SELECT_PER_METHOD_WITH_TABLE
                }
                _ => SELECT_PER_METHOD,
            };
            // Within a group no client twice while another is left; across groups the least used client first.
            let mut kept = Vec::new();
            let mut labels_seen = HashSet::new();
            while kept.len() < cap && !inputs.is_empty() {
                let unseen = |l: &String| !labels_seen.contains(l);
                let pool = if inputs.iter().any(|(l, _)| unseen(l)) {
                    inputs
                        .iter()
                        .enumerate()
                        .filter(|(_, (l, _))| unseen(l))
                        .collect::<Vec<_>>()
                } else {
                    inputs.iter().enumerate().collect()
                };
                let pick = pool
                    .iter()
                    .min_by_key(|(_, (l, _))| used.get(l).copied().unwrap_or(0))
                    .map_or(0, |(i, _)| *i);
                let (label, path) = inputs.remove(pick);
                *used.entry(label.clone()).or_insert(0usize) += 1;
                labels_seen.insert(label);
                kept.push(path);
            }
            for path in kept {
                let name = path
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_default();
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                write(&out.join(target).join(name), &bytes)?;
            }
        }
    }
    for path in sorted_entries(&raw.join("store")) {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(name) = path.file_name() {
            write(&out.join("store").join(name), &bytes)?;
        }
    }
    write_seeds(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_client_and_key() {
        assert_eq!(
            label_and_key("python-more-60.40-00ff"),
            Some(("python-more", "60.40"))
        );
        assert_eq!(label_and_key("c-stream-1234"), Some(("c", "stream")));
        assert_eq!(label_and_key("nodash"), None);
    }

    /// A file of `n` records of `size` payload bytes each, record i's payload filled with byte i.
    fn store_file(n: usize, size: usize) -> Vec<u8> {
        let mut file = b"WRNWAL\0\0\x02\0\0\0\0\0\0\0".to_vec();
        for i in 0..n {
            file.extend((size as u32).to_le_bytes());
            file.extend([0, 0, 0, 0, 2]);
            file.extend(std::iter::repeat_n(i as u8, size));
        }
        file
    }

    #[test]
    fn store_files_keep_whole_records_from_both_ends_and_the_torn_tail() {
        let small = store_file(3, 100);
        assert_eq!(cut_store_file(&small), small);
        let mut big = store_file(100, 991); // 1,000 bytes a record
        big.extend([7, 7, 7]); // a torn tail
        let cut = cut_store_file(&big);
        assert!(cut.len() <= MAX_STORE_FILE);
        assert_eq!(&cut[..16], &big[..16]);
        assert_eq!(cut[16 + 9], 0, "the first record leads");
        assert_eq!(&cut[cut.len() - 3..], &[7, 7, 7]);
        assert_eq!(cut[cut.len() - 4], 99, "the last whole record is kept");
        assert_eq!((cut.len() - 16 - 3) % 1000, 0, "only whole records");
    }
}
