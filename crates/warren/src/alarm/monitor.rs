//! The task that samples memory and disk and raises or clears the alarms, with the limits it applies (changeable at
//! run time, as `rabbitmqctl set_vm_memory_high_watermark` and `set_disk_free_limit` change them).
//!
//! The disk alarm is raised while free space is below its limit *or* the message store is failed (a write or
//! fsync error, such as a full disk: `warren_store::StoreHealth`). RabbitMQ has only the memory and disk alarms, and
//! a store that cannot write is what the disk alarm exists to prevent, so publishers are blocked the same way and
//! clients see the same "low on disk". It clears once the store has repaired itself and the free space is above the
//! limit again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use warren_store::{Store, StoreHealth};

use super::limits::{disk_threshold, free_disk, memory_threshold, resident_bytes, total_memory};
use super::{Alarms, Resource};
use crate::config::{AlarmsConfig, DiskFreeLimit, MemoryWatermark};
use crate::queue::NodeMemory;

/// How often memory (and the message store's health, one atomic load) is sampled: a flat-out publisher adds
/// hundreds of megabytes a second.
const MEMORY_EVERY: Duration = Duration::from_millis(200);
/// Disk is sampled every this many memory samples (once a second).
const DISK_EVERY: u32 = 5;
/// Queues page out past 1/2 of the memory high watermark (RabbitMQ's `vm_memory_high_watermark_paging_ratio`, 0.5).
const PAGING_RATIO_INVERSE: u64 = 2;

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
    /// Whether the free space was below the limit at the last sample.
    disk_short: AtomicBool,
    /// The message store, whose failure raises the disk alarm.
    store: Store,
    /// Whether the store was failed at the last check (its changes are logged).
    store_failed: AtomicBool,
    /// The queues' shared memory account, told when memory passes the paging threshold.
    node_memory: Arc<NodeMemory>,
    /// Wakes every queue when the memory pressure changes (set by the broker once its vhosts exist).
    wake_queues: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl ResourceMonitor {
    /// A monitor of `data_dir`'s file system with `limits` and of `store`'s health; nothing sampled yet.
    pub(crate) fn new(
        limits: AlarmsConfig,
        data_dir: PathBuf,
        store: Store,
        node_memory: Arc<NodeMemory>,
    ) -> ResourceMonitor {
        ResourceMonitor {
            limits: Mutex::new(limits),
            changed: Notify::new(),
            data_dir,
            mem_used: AtomicU64::new(0),
            mem_limit: AtomicU64::new(0),
            disk_free: AtomicU64::new(0),
            disk_free_limit: AtomicU64::new(0),
            disk_short: AtomicBool::new(false),
            store,
            store_failed: AtomicBool::new(false),
            node_memory,
            wake_queues: OnceLock::new(),
        }
    }

    /// Sets what wakes every queue when the memory pressure changes.
    pub(crate) fn on_pressure_change(&self, wake_queues: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake_queues.set(wake_queues);
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

    /// Samples and raises or clears the alarms; the free disk space too when `disk`. `total`: the machine's memory,
    /// None when it cannot be read (the memory alarm is then off, and a relative disk limit is 0).
    fn check(&self, alarms: &Alarms, total: Option<u64>, disk: bool) {
        let limits = *self.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(total), Some(used)) = (total, resident_bytes()) {
            let limit = memory_threshold(limits.memory_high_watermark, total);
            self.mem_used.store(used, Ordering::Relaxed);
            self.mem_limit.store(limit, Ordering::Relaxed);
            alarms.set(Resource::Memory, used > limit);
            // RabbitMQ's paging ratio: past half the watermark, queues page message bodies out to disk, so that the
            // memory alarm clears by itself once they have (publishers resume at disk speed) instead of holding
            // them until consumers drain the queues.
            let pressure = used > limit / PAGING_RATIO_INVERSE;
            if self.node_memory.set_pressure(pressure) {
                match pressure {
                    true => tracing::info!("memory use {used} bytes is past the paging threshold ({} bytes): queues page message bodies to disk", limit / PAGING_RATIO_INVERSE),
                    false => tracing::info!("memory use is back under the paging threshold: queues keep new messages in memory again"),
                }
                if let Some(wake) = self.wake_queues.get() {
                    wake();
                }
            }
        }
        if disk {
            if let Some(free) = free_disk(&self.data_dir) {
                let limit = disk_threshold(limits.disk_free_limit, total.unwrap_or(0));
                self.disk_free.store(free, Ordering::Relaxed);
                self.disk_free_limit.store(limit, Ordering::Relaxed);
                let short = free < limit;
                let was_short = self.disk_short.swap(short, Ordering::Relaxed);
                if short && !was_short {
                    tracing::warn!(
                        "Free disk space is insufficient. Free bytes: {free}. Limit: {limit}"
                    );
                }
            }
        }
        let store_failed = match self.store.health() {
            StoreHealth::Healthy => {
                if self.store_failed.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "the message store has recovered; it no longer holds the disk alarm"
                    );
                }
                false
            }
            StoreHealth::Failed { cause } => {
                if !self.store_failed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the message store cannot write ({cause}); raising the disk alarm until it recovers"
                    );
                }
                true
            }
        };
        alarms.set(
            Resource::Disk,
            self.disk_short.load(Ordering::Relaxed) || store_failed,
        );
    }
}

/// Checks memory, disk and the store once now (so a broker started on a full disk blocks even its first
/// publisher), then starts the monitor task; it ends when the broker (`alarms` and `monitor`'s owner) is dropped.
pub(crate) fn spawn_monitor(alarms: Weak<Alarms>, monitor: Weak<ResourceMonitor>) {
    let total = total_memory();
    if total.is_none() {
        tracing::warn!("cannot read the memory size of this machine: the memory alarm is off");
    }
    if let (Some(alarms), Some(monitor)) = (alarms.upgrade(), monitor.upgrade()) {
        monitor.check(&alarms, total, true);
    }
    tokio::spawn(async move {
        let mut round = 1u32;
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
