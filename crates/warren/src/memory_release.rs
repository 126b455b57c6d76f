//! Giving the memory of a large release back to the system.
//!
//! The allocator keeps a thread's freed pages for reuse and returns them to the system only after a delay, and only
//! when that thread allocates or frees again. After a queue of millions of messages is deleted, most of those pages
//! belong to runtime workers that have gone idle, so the process kept its peak RSS and the memory alarm stayed raised
//! with nothing queued. Returning pages eagerly everywhere (mimalloc's `purge_delay=0`) cost up to 40 % of publish
//! throughput, so the broker instead notes the rare large release here, and the binary's runtime workers collect
//! their heaps once as each next goes idle (`main.rs`, `on_thread_park`). A count, not a flag: every worker sees
//! each release once, whichever parks first.

use std::sync::atomic::{AtomicU64, Ordering};

/// Releases smaller than this are left to the allocator's own pace: collecting costs a walk of the heap.
const LARGE_RELEASE_BYTES: u64 = 32 << 20;

/// Per message, what a queue holds beside the body: its entry, properties and bookkeeping, roughly.
const PER_MESSAGE_BYTES: u64 = 128;

/// How many large releases the process has seen.
static LARGE_RELEASES: AtomicU64 = AtomicU64::new(0);

/// Notes that `messages` messages with `body_bytes` of bodies were just dropped at once (a queue deleted or purged);
/// counted only if large.
pub(crate) fn note_dropped(messages: u64, body_bytes: u64) {
    if is_large(messages, body_bytes) {
        LARGE_RELEASES.fetch_add(1, Ordering::Relaxed);
    }
}

fn is_large(messages: u64, body_bytes: u64) -> bool {
    body_bytes.saturating_add(messages.saturating_mul(PER_MESSAGE_BYTES)) >= LARGE_RELEASE_BYTES
}

/// Whether a large release happened since the caller last looked: `seen` is the caller's count (per thread, starting
/// at 0) and is brought up to date. A runtime worker that gets true should return its free memory to the system.
pub fn released_since(seen: &mut u64) -> bool {
    let now = LARGE_RELEASES.load(Ordering::Relaxed);
    let released = now != *seen;
    *seen = now;
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_releases_count() {
        assert!(!is_large(10, 10_000));
        assert!(is_large(0, 64 << 20), "a few large bodies");
        assert!(is_large(1_000_000, 0), "a million empty messages");
    }

    #[test]
    fn a_large_release_is_seen_once_by_each_looker() {
        let (mut first, mut second) = (0, 0);
        released_since(&mut first);
        released_since(&mut second);
        note_dropped(1_000_000, 1 << 30);
        assert!(released_since(&mut first));
        assert!(!released_since(&mut first), "seen once");
        assert!(released_since(&mut second), "each looker sees it");
    }
}
