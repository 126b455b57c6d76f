//! The broker binary as a child process, for restart and kill -9 tests.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct BrokerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    /// Where this process's lines start in the log, which earlier processes on the same data directory share.
    log_start: u64,
}

/// A fresh, empty data directory under the system temp dir.
pub(crate) fn fresh_data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create data dir");
    dir
}

impl BrokerProcess {
    /// Starts `warren` on a port the kernel picks (read back from its start-up log line, so parallel tests cannot
    /// race for one port) with `data_dir` and extra arguments; returns once it accepts connections.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), data_dir, extra)
    }

    /// Starts `warren` on `addr` (port 0: any free port).
    pub(crate) fn start_on(addr: SocketAddr, data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        // The test's own HTTP clients (reqwest) need the process's TLS provider, as Warren's do.
        warren::install_crypto_provider();
        let log_path = data_dir.with_extension("log");
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("open broker log");
        let child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("--listen")
            .arg(addr.to_string())
            // Tests run in parallel: no fixed management port.
            .arg("--management-listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--prometheus-listen")
            .arg("127.0.0.1:0")
            .args(extra)
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn warren");
        let mut broker = BrokerProcess {
            child,
            addr,
            data_dir: data_dir.to_owned(),
            log_start,
        };
        broker.wait_ready(&log_path, log_start);
        broker
    }

    /// Waits for this process's "accepting AMQP 0-9-1 connections on ADDR" line, then for the port to answer.
    fn wait_ready(&mut self, log_path: &Path, log_start: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.addr.port() == 0 {
                if let Some(addr) = announced_addr(log_path, log_start) {
                    self.addr = addr;
                }
            }
            if self.addr.port() != 0 && TcpStream::connect(self.addr).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "warren exited before accepting connections: {status}; see {}",
                    self.data_dir.with_extension("log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("warren did not accept connections within 60 s");
    }

    pub(crate) fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// The process's resident set size in bytes, from `/proc/PID/statm`.
    pub(crate) fn rss_bytes(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.child.id()))
            .expect("read /proc/PID/statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("resident pages in statm");
        pages * rustix::param::page_size() as u64
    }

    /// The port its management API listens on, from its "Management plugin: HTTP (non-TLS) listener started on
    /// port N" line.
    pub(crate) fn management_port(&self) -> u16 {
        let marker = "Management plugin: HTTP (non-TLS) listener started on port ";
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // This process's lines only: after a restart the previous process's port is in the log too.
            let whole = std::fs::read(self.data_dir.with_extension("log")).unwrap_or_default();
            let log =
                String::from_utf8_lossy(whole.get(self.log_start as usize..).unwrap_or_default());
            let port = log.lines().rev().find_map(|line| {
                let rest = &line[line.find(marker)? + marker.len()..];
                rest.trim().parse().ok()
            });
            match port {
                Some(port) => return port,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                None => panic!("no management listener line in the broker log"),
            }
        }
    }

    /// Sends SIGTERM without waiting.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    }

    /// Waits at most `limit` for the process to exit; its status, or None if it is still running.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (a name `kill` knows: `STOP`, `CONT`, ...) without waiting.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(&pid)
            .status();
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a clean stop.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the newest "accepting AMQP 0-9-1 connections on ADDR" line written after `from`.
fn announced_addr(log_path: &Path, from: u64) -> Option<SocketAddr> {
    let text = std::fs::read(log_path).ok()?;
    let text = String::from_utf8_lossy(text.get(from as usize..)?);
    let marker = "accepting AMQP 0-9-1 connections on ";
    let line = text.lines().rev().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace()
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
