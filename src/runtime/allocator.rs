//! An opt-in, process-wide setting of the C allocator for CPU throughput.

/// Keeps the memory that large tensors free inside the process, so that the next batch
/// reuses it instead of asking the kernel for fresh, zeroed pages: allocations up to
/// 32 MiB come from the heap rather than their own mappings, and freed heap memory is
/// not handed back to the system.
///
/// libtorch allocates every activation with the C allocator, and glibc's defaults map and
/// unmap large blocks, or trim the heap, between one batch and the next; the page faults
/// that follow cost up to a quarter of the time on large inputs and make timings vary
/// from run to run (measured: SqueezeNet 256x256 batch 8, 134 -> 109 ms; 2AFC triplets,
/// AlexNet, batch 50, 62 -> 53 ms; see the README's Benchmarks). The `lpips` command
/// calls it at start.
///
/// It affects the whole process and cannot be undone by this crate: the resident size
/// then stays near its peak after a large batch (the peak itself grew by at most 4% on the
/// README's benchmark jobs, from fragmentation). The same
/// effect without code: `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967295`
/// in the environment.
///
/// libtorch's own allocator has a second setting, read from the environment at its first
/// allocation, which this function cannot set safely in a running process:
/// `THP_MEM_ALLOC_ENABLE=1` backs blocks of 2 MiB and more with transparent huge pages
/// (VGG 256x256 batch 8: 1.62 -> 1.31 s); put it in the program's environment. The `lpips`
/// command sets both.
///
/// Returns whether the setting was applied: true with glibc on Linux, false elsewhere
/// (other allocators keep their own policies).
///
/// ```no_run
/// // Once, early in main, before the first model runs.
/// lpips::runtime::tune_cpu_allocator();
/// ```
pub fn tune_cpu_allocator() -> bool {
    imp::tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    // glibc's upper bound for the mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2).
    const MMAP_THRESHOLD: libc::c_int = 32 << 20;

    pub(super) fn tune() -> bool {
        // SAFETY: mallopt only sets allocator parameters; it is thread-safe and these are
        // valid values for both (glibc returns 0 for values it refuses).
        unsafe {
            // Setting the trim threshold turns off glibc's dynamic thresholds, so the mmap
            // threshold has to be set too (alone, it would stay at 128 KiB).
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) == 1
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn tune() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        // Both calls must succeed (mallopt refuses out-of-range values with 0), twice.
        assert!(super::tune_cpu_allocator());
        assert!(super::tune_cpu_allocator());
    }
}
