//! Giving freed memory back to the system. SQLite allocates with the C allocator, and glibc
//! keeps what a thread's arena freed for that arena's later allocations: the service's RSS
//! grew ~20 MiB over its first 400,000 tokens that nothing live held (BENCHMARKS.md,
//! "Memory per live token"). `malloc_trim` hands the free pages of every arena back.

/// Returns the C allocator's free pages to the system; whether any were returned. A no-op
/// where the C library is not glibc.
pub fn give_back() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` takes a byte count and works on glibc's own arenas, each
        // under its own lock; it touches no memory of ours.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn pages_freed_in_a_threads_arena_are_given_back() {
        // As SQLite does on its threads: C allocations freed, all but the last, whose
        // chunk keeps the freed ones from shrinking the arena by themselves.
        let given_back = std::thread::spawn(|| {
            // SAFETY: every pointer is glibc's, freed once; the sizes are plain numbers.
            let blocks: Vec<usize> = (0..4096)
                .map(|_| unsafe { libc::malloc(1024) } as usize)
                .collect();
            assert!(blocks.iter().all(|&b| b != 0), "malloc failed");
            for &b in &blocks[..blocks.len() - 1] {
                unsafe { libc::free(b as *mut libc::c_void) };
            }
            let given_back = give_back();
            unsafe { libc::free(blocks[blocks.len() - 1] as *mut libc::c_void) };
            given_back
        })
        .join()
        .expect("thread");
        assert!(given_back, "4 MiB freed in an arena were not handed back");
    }
}
