//! A cluster of `warren` processes on loopback ports, each started from a config file with a `[cluster]` table, and
//! driven through its management API.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

use super::process::{fresh_data_dir, BrokerProcess};

pub(crate) const SECRET: &str = "cluster test secret";

/// A data directory name no other node of this test process uses (tests run in parallel, each with its n1).
fn unique(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("cluster-{name}-{n}")
}

/// Three free loopback ports for the inter-node listeners ([`free_port_list`]).
pub(crate) fn free_ports() -> [u16; 3] {
    let ports = free_port_list(3);
    [ports[0], ports[1], ports[2]]
}

/// The ports [`free_port_list`] hands out: below Linux's ephemeral range (32768 and up), from which every listener
/// bound to port 0 (each broker's AMQP and management listeners, of this test and the ones running beside it) gets
/// its port. A port handed out here can then only be taken before its node binds it by another caller of this
/// function, and each test process walks the range from an offset of its own.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// `n` loopback ports free now (each bound and released), for listeners whose address must be known before they
/// bind (the inter-node listeners, which the other nodes' config files name).
pub(crate) fn free_port_list(n: usize) -> Vec<u16> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let span = u32::from(PORTS.end - PORTS.start);
    let offset = std::process::id().wrapping_mul(97) % span;
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = PORTS.start + ((offset + k) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports in {PORTS:?}");
    ports
}

/// The config file of node `index` of three (n1, n2, n3) on `ports`.
pub(crate) fn config_text(index: usize, ports: &[u16; 3]) -> String {
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    config_for(index, &addrs)
}

/// The config file of node `index` (`n{index + 1}`) of the cluster whose inter-node addresses are `addrs`.
pub(crate) fn config_for(index: usize, addrs: &[String]) -> String {
    let peers: Vec<String> = (0..addrs.len())
        .filter(|i| *i != index)
        .map(|i| format!("\"n{}@{}\"", i + 1, addrs[i]))
        .collect();
    format!(
        "[server]\ncluster_name = \"{name}\"\n\n[cluster]\nname = \"{name}\"\nlisten = \"{addr}\"\n\
         peers = [{peers}]\nsecret = \"{SECRET}\"\n",
        name = format!("n{}", index + 1),
        addr = addrs[index],
        peers = peers.join(", ")
    )
}

/// Starts n1, n2 and n3 on `ports`.
pub(crate) fn start_three(ports: &[u16; 3]) -> Vec<Node> {
    (0..3)
        .map(|i| Node::start_with_config(&format!("n{}", i + 1), &config_text(i, ports)))
        .collect()
}

/// Starts n1, n2, ... with the inter-node addresses `addrs`.
pub(crate) fn start_cluster(addrs: &[String]) -> Vec<Node> {
    (0..addrs.len())
        .map(|i| Node::start_with_config(&format!("n{}", i + 1), &config_for(i, addrs)))
        .collect()
}

pub(crate) struct Node {
    process: Option<BrokerProcess>,
    data_dir: PathBuf,
    config: PathBuf,
}

impl Node {
    /// A node started with the config file `text`.
    pub(crate) fn start_with_config(name: &str, text: &str) -> Node {
        let data_dir = fresh_data_dir(&unique(name));
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, text).expect("write config");
        let mut node = Node {
            process: None,
            data_dir,
            config,
        };
        node.restart();
        node
    }

    pub(crate) fn restart(&mut self) {
        let config = self.config.to_string_lossy().into_owned();
        self.process = Some(BrokerProcess::start(&self.data_dir, &["--config", &config]));
    }

    pub(crate) fn process(&self) -> &BrokerProcess {
        self.process.as_ref().expect("running")
    }

    pub(crate) fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let port = self.process().management_port();
        let mut request = Client::new()
            .request(method, format!("http://127.0.0.1:{port}/api{path}"))
            .basic_auth("guest", Some("guest"))
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().expect("request sent");
        let status = response.status();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// [`Node::api`] that may fail (the node killed or paused): None when no answer came within `timeout`.
    pub(crate) fn try_api(
        &self,
        method: reqwest::Method,
        path: &str,
        timeout: Duration,
    ) -> Option<StatusCode> {
        let port = self.process.as_ref()?.management_port();
        Client::new()
            .request(method, format!("http://127.0.0.1:{port}/api{path}"))
            .basic_auth("guest", Some("guest"))
            .timeout(timeout)
            .send()
            .ok()
            .map(|r| r.status())
    }

    pub(crate) fn get(&self, path: &str) -> (StatusCode, Value) {
        self.api(reqwest::Method::GET, path, None)
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill9();
        }
    }

    /// Whether it runs (not killed).
    pub(crate) fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        self.process().signal(signal);
    }

    /// The leader this node names, if it answers and knows one.
    pub(crate) fn leader(&self) -> Option<String> {
        let port = self.process().management_port();
        let response = Client::new()
            .get(format!("http://127.0.0.1:{port}/api/cluster-status"))
            .basic_auth("guest", Some("guest"))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()?;
        let body: Value = response.json().ok()?;
        body["leader"].as_str().map(str::to_owned)
    }
}

/// Polls `check` every 100 ms until it holds, for at most `seconds`.
pub(crate) fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(Instant::now() < deadline, "not within {seconds} s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three nodes with an elected definitions leader, and a runtime for their AMQP clients.
pub(crate) fn three_nodes() -> (Vec<Node>, tokio::runtime::Runtime) {
    let nodes = start_three(&free_ports());
    eventually(30, "a leader elected", || nodes[0].leader().is_some());
    (nodes, tokio::runtime::Runtime::new().expect("runtime"))
}

/// A lapin connection to `node`, with a channel.
pub(crate) async fn channel(node: &Node) -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(
        &node.process().uri(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}
