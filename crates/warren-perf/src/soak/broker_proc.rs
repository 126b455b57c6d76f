//! `--broker-pid`: the broker process as `/proc` shows it, read at each report: resident memory (VmRSS), open
//! file descriptors (the entries of `/proc/PID/fd`, which needs the broker to run as the same user) and, once at
//! the start, its limit on open files. Reading `/proc` never fails the run; a failure is reported instead.

use super::super::broker_memory::status_kib;

/// The broker at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct BrokerSample {
    pub rss_mib: Option<f64>,
    pub fds: Option<u64>,
}

/// Reads VmRSS and the fd count of `pid`; `Err` says why either could not be read.
pub(crate) fn sample(pid: u32) -> (BrokerSample, Option<String>) {
    let mut error = None;
    let rss_mib = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => status_kib(&status, "VmRSS").map(|kib| kib as f64 / 1024.0),
        Err(e) => {
            error = Some(format!("cannot read /proc/{pid}/status: {e}"));
            None
        }
    };
    let fds = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(entries) => Some(entries.count() as u64),
        Err(e) => {
            error.get_or_insert_with(|| format!("cannot read /proc/{pid}/fd: {e}"));
            None
        }
    };
    (BrokerSample { rss_mib, fds }, error)
}

/// The soft limit on open files of `pid`, from `/proc/PID/limits`; `None` if unreadable or unlimited.
pub(crate) fn max_open_files(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    open_files_limit(&limits)
}

/// The soft value of the `Max open files` line.
fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             94000                94000                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(open_files_limit(limits), Some(1024));
        assert_eq!(
            open_files_limit("Max open files  unlimited unlimited files"),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let (sample, error) = sample(std::process::id());
        assert_eq!(error, None);
        assert!(sample.rss_mib.is_some_and(|m| m > 0.0));
        assert!(sample.fds.is_some_and(|n| n >= 3));
        assert!(max_open_files(std::process::id()).is_some());
    }

    #[test]
    fn a_missing_process_is_reported_not_fatal() {
        let (sample, error) = sample(u32::MAX);
        assert_eq!(sample, BrokerSample::default());
        assert!(error.is_some_and(|e| e.contains("/proc/")));
    }
}
