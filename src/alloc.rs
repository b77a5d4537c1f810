//! The engine allocates through mimalloc; every other command through the system allocator.
//!
//! Why: under glibc's malloc the engine slowed down once it had worked. After 20 000 workflows,
//! `_int_malloc` and `malloc_consolidate` took three times their share of a schedule's CPU,
//! searching a fragmented heap for hyper's per-request read buffers, and the schedule
//! throughput fell by about a tenth. mimalloc keeps it flat (BENCHMARKS.md). The client
//! commands stay on glibc because mimalloc costs them RSS: `--follow`'s peak went from 8 to
//! 16 MB, over the 15 MB target, with nothing to gain in a process that lives milliseconds.
//!
//! The choice is made once, before anything allocates (an `.init_array` function that reads
//! argv), so every block is freed by the allocator that made it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

static ENGINE: AtomicBool = AtomicBool::new(false);

pub struct Chosen;

fn chosen() -> &'static dyn GlobalAlloc {
    if ENGINE.load(Ordering::Relaxed) {
        &MiMalloc
    } else {
        &System
    }
}

// SAFETY: each call goes to one allocator, and which one never changes after the first
// allocation, so a block is always freed or resized by the allocator that made it.
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { chosen().alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { chosen().alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { chosen().dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { chosen().realloc(ptr, layout, new_size) }
    }
}

/// glibc calls `.init_array` functions with (argc, argv, envp) before `main` and before the
/// Rust runtime allocates. An argument `serve` picks the engine's allocator; a false positive
/// (say, an agent named `serve`) only means that command runs on mimalloc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".init_array")]
static CHOOSE: extern "C" fn(i32, *const *const std::ffi::c_char, *const *const std::ffi::c_char) =
    choose;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" fn choose(
    argc: i32,
    argv: *const *const std::ffi::c_char,
    _envp: *const *const std::ffi::c_char,
) {
    for i in 1..argc.max(0) as usize {
        // SAFETY: glibc passes argc valid, NUL-terminated argument pointers.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        if arg.to_bytes() == b"serve" {
            ENGINE.store(true, Ordering::Relaxed);
            return;
        }
    }
}
