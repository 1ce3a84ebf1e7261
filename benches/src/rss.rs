//! Resident memory of this process, from `/proc/self` (Linux).

use std::fs;

/// Bytes per MiB, for reporting.
pub const MIB: f64 = (1u64 << 20) as f64;

/// Current resident set size in bytes (`VmRSS`), or 0 where `/proc` is not
/// available.
pub fn current() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident set size in bytes since start or the last
/// [`reset_peak`] (`VmHWM`), or 0 where `/proc` is not available.
pub fn peak() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// Resets the peak to the current resident size (writes `5` to
/// `/proc/self/clear_refs`, Linux 4.0+). Returns false if that failed, in
/// which case [`peak`] keeps counting from the start of the process.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(key: &str) -> u64 {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Asks the allocator to give freed memory back to the OS: glibc's
/// `malloc_trim(0)` when this build uses the system allocator on
/// glibc; returns false (and does nothing) otherwise.
pub fn release_free_memory() -> bool {
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "jemalloc"),
        not(feature = "mimalloc")
    ))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: glibc's malloc_trim takes a padding size and only
        // releases memory that is free; it is safe to call at any time.
        unsafe { malloc_trim(0) };
        true
    }
    #[cfg(not(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "jemalloc"),
        not(feature = "mimalloc")
    )))]
    {
        false
    }
}
