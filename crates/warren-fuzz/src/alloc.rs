//! The allocation bound the stable smoke checks: a global allocator that, on the threads that ask, remembers the
//! largest single allocation. A parser that sizes a buffer from a length field the peer declared (rather than from
//! bytes it has) shows up here as one huge allocation. libFuzzer runs check the same with `-malloc_limit_mb`.
//!
//! Only a binary can install a global allocator: `tests/smoke.rs` installs [`TrackingAlloc`]; [`installed`] tells
//! whether it was.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest allocation made on a thread inside [`measure`].
#[derive(Debug)]
pub struct TrackingAlloc;

fn note(size: usize) {
    // try_with: an allocation during thread teardown must not panic.
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` has too.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` came from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and gives the largest single allocation it made on this thread (0 if [`TrackingAlloc`] is not the
/// global allocator). Threads `f` starts are not counted.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(0));
    TRACKING.with(|tracking| tracking.set(true));
    let out = f();
    TRACKING.with(|tracking| tracking.set(false));
    (out, LARGEST.with(Cell::get))
}

/// Whether [`TrackingAlloc`] is the global allocator of this process.
pub fn installed() -> bool {
    let (_, largest) = measure(|| std::hint::black_box(Vec::<u8>::with_capacity(4321)));
    largest >= 4321
}
