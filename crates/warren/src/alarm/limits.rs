//! What the alarms compare: the broker's resident memory against the high watermark (a fraction of the machine's
//! or the cgroup's memory, or bytes), and the free space of the data directory's file system against its limit.
//! Linux sources (`/proc`, the cgroup files, statvfs); None where one cannot be read.

use std::path::Path;

use crate::config::{DiskFreeLimit, MemoryWatermark};

/// The memory available to the broker: the machine's total, or the cgroup's limit when lower (a container).
pub(super) fn total_memory() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|line| {
            let kib = line.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()
        })?
        .saturating_mul(1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|path| std::fs::read_to_string(path).ok())
    .find_map(|text| text.trim().parse::<u64>().ok());
    Some(match cgroup {
        Some(limit) => machine.min(limit),
        None => machine,
    })
}

/// The watermark in bytes for `total` bytes of memory.
pub(super) fn memory_threshold(watermark: MemoryWatermark, total: u64) -> u64 {
    match watermark {
        MemoryWatermark::Absolute(bytes) => bytes,
        MemoryWatermark::Relative(fraction) => (total as f64 * fraction) as u64,
    }
}

/// The free disk limit in bytes for `total` bytes of memory (a relative limit is a multiple of memory).
pub(super) fn disk_threshold(limit: DiskFreeLimit, total: u64) -> u64 {
    match limit {
        DiskFreeLimit::Absolute(bytes) => bytes,
        DiskFreeLimit::Relative(factor) => (total as f64 * factor) as u64,
    }
}

/// The broker's resident set size in bytes (`/proc/self/statm`, what RabbitMQ's default `rss` strategy reads).
pub(super) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// The bytes an unprivileged writer may still use on the file system holding `path`.
pub(super) fn free_disk(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_rabbitmqs_definitions() {
        let gib = 1 << 30;
        assert_eq!(
            memory_threshold(MemoryWatermark::Relative(0.5), 8 * gib),
            4 * gib
        );
        assert_eq!(
            memory_threshold(MemoryWatermark::Absolute(123), 8 * gib),
            123
        );
        assert_eq!(
            disk_threshold(DiskFreeLimit::Relative(1.5), 2 * gib),
            3 * gib
        );
        assert_eq!(
            disk_threshold(DiskFreeLimit::Absolute(50_000_000), gib),
            50_000_000
        );
    }

    #[test]
    fn this_machine_reports_its_memory_and_disk() {
        let total = total_memory().expect("MemTotal");
        let rss = resident_bytes().expect("statm");
        assert!(rss > 0 && rss < total);
        assert!(free_disk(Path::new("/")).is_some());
    }
}
