//! Giving freed memory back to the system. SQLite allocates with the C allocator, and glibc
//! keeps what a thread's arena freed for that arena's later allocations: the service's RSS
//! grew ~20 MiB over its first 400,000 tokens that nothing live held (BENCHMARKS.md,
//! "Memory per live token"). `malloc_trim` hands the free pages of every arena back.
//!
//! The Rust heap (mimalloc) asks for transparent huge pages on its arena; the kernel then
//! keeps whole 2 MiB pages resident around a few live 64 KiB pieces and merges them again
//! after frees, so RSS climbed with every 100,000 tokens while live Rust data stayed flat
//! (~48 MiB). [`without_huge_pages`] turns them off for the process.

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

/// Turns transparent huge pages off for this process's memory from now on (Linux; a
/// no-op elsewhere). Called first thing in `main`; whether it took effect is returned.
pub fn without_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sets a flag on this process's memory map; passes no pointers.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_are_turned_off_for_the_process() {
        assert!(without_huge_pages(), "prctl refused");
        // SAFETY: reads the flag back; passes no pointers.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }

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
