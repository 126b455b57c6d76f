//! The task that samples memory and disk and raises or clears the alarms, with the limits it applies (changeable at
//! run time, as `rabbitmqctl set_vm_memory_high_watermark` and `set_disk_free_limit` change them).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::limits::{disk_threshold, free_disk, memory_threshold, resident_bytes, total_memory};
use super::{Alarms, Resource};
use crate::config::{AlarmsConfig, DiskFreeLimit, MemoryWatermark};

/// How often memory is sampled: a flat-out publisher adds hundreds of megabytes a second.
const MEMORY_EVERY: Duration = Duration::from_millis(200);
/// Disk is sampled every this many memory samples (once a second).
const DISK_EVERY: u32 = 5;

/// The limits and the last samples, shared by the monitor, the broker's API and the management API.
pub(crate) struct ResourceMonitor {
    /// The configured limits; changed through [`ResourceMonitor::set_limits`].
    limits: Mutex<AlarmsConfig>,
    /// Wakes the monitor to re-check at once after a limit changed.
    changed: Notify,
    /// Where the free disk space is measured.
    data_dir: PathBuf,
    /// Last sampled resident memory, bytes.
    pub(crate) mem_used: AtomicU64,
    /// The memory watermark in bytes at the last sample.
    pub(crate) mem_limit: AtomicU64,
    /// Last sampled free disk space, bytes.
    pub(crate) disk_free: AtomicU64,
    /// The free disk limit in bytes at the last sample.
    pub(crate) disk_free_limit: AtomicU64,
}

impl ResourceMonitor {
    /// A monitor of `data_dir`'s file system with `limits`; nothing sampled yet.
    pub(crate) fn new(limits: AlarmsConfig, data_dir: PathBuf) -> ResourceMonitor {
        ResourceMonitor {
            limits: Mutex::new(limits),
            changed: Notify::new(),
            data_dir,
            mem_used: AtomicU64::new(0),
            mem_limit: AtomicU64::new(0),
            disk_free: AtomicU64::new(0),
            disk_free_limit: AtomicU64::new(0),
        }
    }

    /// Replaces the memory watermark and/or the disk limit and re-checks at once.
    pub(crate) fn set_limits(&self, memory: Option<MemoryWatermark>, disk: Option<DiskFreeLimit>) {
        {
            let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(memory) = memory {
                limits.memory_high_watermark = memory;
            }
            if let Some(disk) = disk {
                limits.disk_free_limit = disk;
            }
        }
        self.changed.notify_one();
    }

    /// Samples and raises or clears the alarms; the disk too when `disk`.
    fn check(&self, alarms: &Alarms, total: u64, disk: bool) {
        let limits = *self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(used) = resident_bytes() {
            let limit = memory_threshold(limits.memory_high_watermark, total);
            self.mem_used.store(used, Ordering::Relaxed);
            self.mem_limit.store(limit, Ordering::Relaxed);
            alarms.set(Resource::Memory, used > limit);
        }
        if disk {
            if let Some(free) = free_disk(&self.data_dir) {
                let limit = disk_threshold(limits.disk_free_limit, total);
                self.disk_free.store(free, Ordering::Relaxed);
                self.disk_free_limit.store(limit, Ordering::Relaxed);
                let short = free < limit;
                if short && !alarms.list().contains(&Resource::Disk) {
                    tracing::warn!(
                        "Free disk space is insufficient. Free bytes: {free}. Limit: {limit}"
                    );
                }
                alarms.set(Resource::Disk, short);
            }
        }
    }
}

/// Starts the monitor task; it ends when the broker (`alarms` and `monitor`'s owner) is dropped.
pub(crate) fn spawn_monitor(alarms: Weak<Alarms>, monitor: Weak<ResourceMonitor>) {
    let Some(total) = total_memory() else {
        tracing::warn!("cannot read the memory size of this machine: the memory alarm is off");
        return;
    };
    tokio::spawn(async move {
        let mut round = 0u32;
        loop {
            let (Some(alarms), Some(monitor)) = (alarms.upgrade(), monitor.upgrade()) else {
                return;
            };
            monitor.check(&alarms, total, round.is_multiple_of(DISK_EVERY));
            round = round.wrapping_add(1);
            let monitor: Arc<ResourceMonitor> = monitor;
            drop(alarms);
            tokio::select! {
                _ = tokio::time::sleep(MEMORY_EVERY) => {}
                _ = monitor.changed.notified() => round = 0,
            }
        }
    });
}
