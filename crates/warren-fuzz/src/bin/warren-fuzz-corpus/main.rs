//! Builds the fuzz seed corpus from real traffic (docs/fuzzing.md, "The corpus"):
//! - `proxy LISTEN UPSTREAM OUT LABEL SECONDS`: a loopback TCP proxy between AMQP clients and a broker; what each
//!   client sent is cut into frames and saved as inputs of the `frames`, `methods` and `content` targets under
//!   `OUT/<target>/`, a few of each kind, named `LABEL-KEY-HASH`, deduplicated. Stops after SECONDS, or once no
//!   client has been connected for a few seconds.
//! - `select RAW OUT`: picks a small corpus out of one or more proxies' output: per method (per property-flags value
//!   for content headers) a few inputs, from as many different clients as there are, and a few streams.
//! - `pack-store MSGS_DIR OUT_FILE FLAGS`: packs a real store directory (`<data_dir>/msgs`) into one input of the
//!   `store` target (FLAGS is its flags byte), each file cut to at most 16 KiB of whole records from its front and
//!   its back.
//! - `seeds OUT`: writes the hand-built deep-nesting inputs (`warren_fuzz::seeds`) under `OUT/<target>/`.

mod pack_store;
mod proxy;
mod select;

use std::path::{Path, PathBuf};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["proxy", listen, upstream, out, label, seconds] => match seconds.parse() {
            Ok(s) => proxy::proxy(
                listen,
                upstream,
                Path::new(out),
                label,
                Duration::from_secs(s),
            ),
            Err(_) => Err(format!("bad SECONDS {seconds}")),
        },
        ["pack-store", dir, out, flags] => match flags.parse() {
            Ok(flags) => pack_store::pack_store(Path::new(dir), Path::new(out), flags),
            Err(_) => Err(format!("bad FLAGS {flags}")),
        },
        ["seeds", out] => write_seeds(Path::new(out)),
        ["select", raw, out] => select::select(Path::new(raw), Path::new(out)),
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

/// The entries of a directory, sorted; none if it cannot be read.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}
