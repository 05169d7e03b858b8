//! The `coffer` binary: parse, run, print, exit. All logic is in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    bound_allocator();
    cli::main()
}

/// Chunk buffers are 0.5-8 MiB, allocated on one thread and freed on
/// another. glibc's dynamic mmap threshold then serves them from per-thread
/// arenas that keep freed memory, and peak RSS drifts far above what is in
/// flight. A fixed threshold (buffers mmapped, returned on free) and few
/// arenas keep RSS at what the pipeline holds.
#[allow(unsafe_code)]
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
