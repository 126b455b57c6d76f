//! `--broker-pid`: the broker's resident memory during a run, sampled from `/proc/PID/status` (Linux) by a small
//! task beside the coordinator, and the CPU time it used over the run, from `/proc/PID/stat`. Reading `/proc` never fails the run: a process that is gone or a `/proc` that
//! cannot be read ends the sampling and is reported in [`BrokerMemory::error`].

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often VmRSS is sampled. A spike shorter than this can fall between samples; VmHWM at the end catches it.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Memory of the broker's process (`--broker-pid`), read from `/proc/PID/status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerMemory {
    /// The process watched.
    pub pid: u32,
    /// The largest VmRSS sampled (every 100 ms) during the run, in MiB; `None` if no sample could be read.
    pub peak_rss_mib: Option<f64>,
    /// VmHWM at the end of the run, in MiB: the process's peak RSS over its whole life, so it also catches
    /// spikes between samples but includes whatever happened before this run.
    pub hwm_mib: Option<f64>,
    /// CPU time (user + system, all threads) the broker used from the start of the run to its end, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Why `/proc` could not be read (the process is gone, no `/proc`): reported, but it does not fail the run.
    pub error: Option<String>,
}

/// The sampling task of one run: [`start`](BrokerMemorySampler::start) when the run starts,
/// [`finish`](BrokerMemorySampler::finish) when it ends.
pub(crate) struct BrokerMemorySampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<BrokerMemory>,
}

impl BrokerMemorySampler {
    /// Samples `pid` now and every [`SAMPLE_EVERY`] until [`finish`](Self::finish).
    pub(crate) fn start(pid: u32) -> BrokerMemorySampler {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut memory = BrokerMemory {
                pid,
                ..BrokerMemory::default()
            };
            let cpu_at_start = read_cpu_seconds(pid);
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    // Told to finish, or the run dropped the sampler.
                    _ = &mut stopped => break,
                }
                if !sample(&mut memory) {
                    return memory;
                }
            }
            if sample(&mut memory) {
                memory.hwm_mib = read_status(pid)
                    .ok()
                    .and_then(|status| status_kib(&status, "VmHWM"))
                    .map(mib);
                if let (Some(start), Some(end)) = (cpu_at_start, read_cpu_seconds(pid)) {
                    memory.cpu_seconds = Some(end - start);
                }
            }
            memory
        });
        BrokerMemorySampler { stop, task }
    }

    /// Takes a last sample and VmHWM, and returns what was seen.
    pub(crate) async fn finish(self) -> BrokerMemory {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(memory) => memory,
            Err(e) => BrokerMemory {
                error: Some(format!("the memory sampler failed: {e}")),
                ..BrokerMemory::default()
            },
        }
    }
}

/// Reads VmRSS into `memory.peak_rss_mib`; on failure records why and returns `false` (sampling stops).
fn sample(memory: &mut BrokerMemory) -> bool {
    let rss = read_status(memory.pid).and_then(|status| {
        status_kib(&status, "VmRSS").ok_or_else(|| {
            // A zombie's status has no Vm lines: the broker has exited but was not yet reaped.
            format!(
                "/proc/{}/status has no VmRSS (has the broker exited?)",
                memory.pid
            )
        })
    });
    match rss {
        Ok(kib) => {
            let rss = mib(kib);
            memory.peak_rss_mib = Some(memory.peak_rss_mib.map_or(rss, |peak| peak.max(rss)));
            true
        }
        Err(error) => {
            memory.error = Some(format!("broker pid {}: {error}", memory.pid));
            false
        }
    }
}

/// `/proc/PID/status` as text. A blocking read on an async worker, on purpose: procfs is served from kernel
/// memory in microseconds, never from a disk, ten times a second.
fn read_status(pid: u32) -> Result<String, String> {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The value of a `Key:   1234 kB` line of `/proc/PID/status`, in KiB.
pub(crate) fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The process's user + system CPU time so far, in seconds, from `/proc/PID/stat`.
fn read_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_second())
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2) is in parentheses and
/// may hold spaces, so fields are counted from the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's USER_HZ, in which `/proc` counts CPU time: 100 on every Linux platform Rust supports, since
/// the ABI fixed it; `getconf CLK_TCK` says the same.
fn clock_ticks_per_second() -> f64 {
    100.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\twarren\nVmPeak:\t  912340 kB\nVmHWM:\t   204800 kB\nVmRSS:\t   102400 kB\n\
                          RssAnon:\t   90000 kB\nThreads:\t3\n";

    #[test]
    fn cpu_ticks_are_read_past_a_command_name_with_spaces() {
        let stat =
            "4242 (tokio (main) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        assert_eq!(status_kib(STATUS, "VmRSS"), Some(102_400));
        assert_eq!(status_kib(STATUS, "VmHWM"), Some(204_800));
        assert_eq!(status_kib(STATUS, "VmSwap"), None);
        assert_eq!(status_kib("Threads:\t3\n", "Threads"), None, "not in kB");
        assert_eq!(mib(102_400), 100.0);
    }

    #[tokio::test]
    async fn a_missing_process_is_an_error_not_a_panic() {
        // PIDs are at most 2^22 on Linux: this one cannot exist.
        let memory = BrokerMemorySampler::start(u32::MAX).finish().await;
        assert_eq!(memory.pid, u32::MAX);
        assert_eq!(memory.peak_rss_mib, None);
        assert_eq!(memory.hwm_mib, None);
        assert!(memory.error.is_some_and(|e| e.contains("/proc/")));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn this_process_is_sampled() {
        let memory = BrokerMemorySampler::start(std::process::id())
            .finish()
            .await;
        assert_eq!(memory.error, None);
        assert!(memory.peak_rss_mib.is_some_and(|m| m > 0.0));
        assert!(memory.hwm_mib.is_some_and(|m| m > 0.0));
    }
}
