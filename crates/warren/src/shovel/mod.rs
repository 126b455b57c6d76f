//! Shovels (RabbitMQ's shovel plugin): a shovel consumes from a queue or exchange on one broker and publishes to a
//! queue or exchange on another (or the same), over AMQP 0-9-1 with lapin as the client, so either end may be
//! Warren, RabbitMQ or any AMQP 0-9-1 broker.
//!
//! Dynamic shovels are `shovel` runtime parameters of a vhost (stored, started again at every start); static ones
//! are `[[shovels]]` tables of the config file. Each runs as one supervisor task on the broker's runtime: a session
//! (two connections) at a time, a new one `reconnect-delay` after a failure; stopping it closes the connections,
//! so the source requeues whatever was not acknowledged.

pub mod definition;
pub mod endpoint;
pub(crate) mod liveness;
pub mod status;
pub(crate) mod worker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::watch;

pub use definition::ShovelDefinition;
pub use endpoint::LocalNode;
use status::StatusCell;
pub use status::{ShovelIdentity, ShovelState, ShovelStatus, ShovelType};
use worker::Ended;

/// A shovel's key: its vhost (None for a static shovel) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShovelKey {
    /// The vhost of a dynamic shovel; None for a static one.
    pub vhost: Option<String>,
    /// Its name.
    pub name: String,
}

/// Called when a dynamic shovel reached its `src-delete-after`: RabbitMQ then deletes its parameter.
pub type CompletionHook = Box<dyn Fn(&ShovelKey) + Send + Sync>;

/// One started shovel.
struct Running {
    definition: Arc<ShovelDefinition>,
    kind: ShovelType,
    status: Arc<StatusCell>,
    stop: watch::Sender<bool>,
}

/// The node's shovels.
pub struct Shovels {
    /// The node's name, for `shovelled-by` and the status.
    node: String,
    /// How shovels reach this node (hostless URIs); its address is the bound listener's once the server binds.
    local: Mutex<LocalNode>,
    running: Mutex<BTreeMap<ShovelKey, Running>>,
    on_complete: OnceLock<CompletionHook>,
}

impl Shovels {
    /// No shovels, on the node named `node`, reached by hostless URIs at `local`.
    pub fn new(node: &str, local: LocalNode) -> Shovels {
        Shovels {
            node: node.to_owned(),
            local: Mutex::new(local),
            running: Mutex::new(BTreeMap::new()),
            on_complete: OnceLock::new(),
        }
    }

    /// The address hostless URIs connect to: the listener as bound (its real port when configured as 0).
    pub fn set_local_addr(&self, addr: std::net::SocketAddr) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).addr = loopback_if_unspecified(addr);
    }

    /// How hostless URIs reach this node.
    pub(crate) fn local(&self) -> LocalNode {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets what happens when a dynamic shovel completes (once; later calls are ignored).
    pub fn on_complete(&self, hook: CompletionHook) {
        let _ = self.on_complete.set(hook);
    }

    fn running(&self) -> MutexGuard<'_, BTreeMap<ShovelKey, Running>> {
        // Nothing is left half-changed under this lock: a poisoned one is still consistent.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a shovel, replacing (stopping) one of the same key. Needs a tokio runtime.
    pub fn start(
        self: &Arc<Self>,
        key: ShovelKey,
        kind: ShovelType,
        definition: Arc<ShovelDefinition>,
    ) {
        let identity = ShovelIdentity {
            node: self.node.clone(),
            kind,
            name: key.name.clone(),
            vhost: key.vhost.clone(),
        };
        let first = |uris: &[endpoint::Endpoint]| {
            uris.first()
                .map(|u| u.display().to_owned())
                .unwrap_or_default()
        };
        let status = Arc::new(StatusCell::new(
            identity.clone(),
            &first(&definition.source.uris),
            &first(&definition.destination.uris),
        ));
        let (stop, stopped) = watch::channel(false);
        let shovels = Arc::downgrade(self);
        tokio::spawn(supervise(
            self.local(),
            identity,
            key.clone(),
            definition.clone(),
            status.clone(),
            stopped,
            shovels,
        ));
        let replaced = self.running().insert(
            key,
            Running {
                definition,
                kind,
                status,
                stop,
            },
        );
        if let Some(old) = replaced {
            let _ = old.stop.send(true);
        }
    }

    /// Stops and forgets a shovel; false if there was none.
    pub fn stop(&self, key: &ShovelKey) -> bool {
        match self.running().remove(key) {
            Some(running) => {
                let _ = running.stop.send(true);
                true
            }
            None => false,
        }
    }

    /// Stops every shovel (shutdown, or a vhost deleted when `vhost` is given).
    pub fn stop_all(&self, vhost: Option<&str>) {
        let mut running = self.running();
        let doomed: Vec<ShovelKey> = running
            .keys()
            .filter(|k| vhost.is_none() || k.vhost.as_deref() == vhost)
            .cloned()
            .collect();
        for key in doomed {
            if let Some(r) = running.remove(&key) {
                let _ = r.stop.send(true);
            }
        }
    }

    /// Restarts a shovel with its definition (RabbitMQ's `restart_shovel`); false if there is none.
    pub fn restart(self: &Arc<Self>, key: &ShovelKey) -> bool {
        let found = self
            .running()
            .get(key)
            .map(|r| (r.kind, r.definition.clone()));
        match found {
            Some((kind, definition)) => {
                self.start(key.clone(), kind, definition);
                true
            }
            None => false,
        }
    }

    /// The definition a shovel runs with.
    pub fn definition(&self, key: &ShovelKey) -> Option<Arc<ShovelDefinition>> {
        self.running().get(key).map(|r| r.definition.clone())
    }

    /// Every shovel's status, by vhost and name (static ones first).
    pub fn statuses(&self) -> Vec<ShovelStatus> {
        self.running()
            .values()
            .map(|r| r.status.snapshot())
            .collect()
    }

    /// Whether this is the running shovel's status cell (a replaced shovel's supervisor must not act for it).
    fn is_current(&self, key: &ShovelKey, status: &Arc<StatusCell>) -> bool {
        self.running()
            .get(key)
            .is_some_and(|r| Arc::ptr_eq(&r.status, status))
    }
}

/// A listener on every interface is reached on loopback.
pub fn loopback_if_unspecified(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Runs sessions until stopped, completed, or failed with no reconnection.
async fn supervise(
    local: LocalNode,
    identity: ShovelIdentity,
    key: ShovelKey,
    definition: Arc<ShovelDefinition>,
    status: Arc<StatusCell>,
    mut stop: watch::Receiver<bool>,
    shovels: std::sync::Weak<Shovels>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        status.starting();
        match worker::run_session(&identity, &definition, &status, &mut stop, &local).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Completed) => {
                tracing::info!(
                    "shovel '{}' moved what src-delete-after asked ({} messages) and is done",
                    identity.name,
                    status.moved()
                );
                if let Some(shovels) = shovels.upgrade() {
                    if shovels.is_current(&key, &status) {
                        match (identity.kind, shovels.on_complete.get()) {
                            (ShovelType::Dynamic, Some(hook)) => hook(&key),
                            _ => {
                                shovels.stop(&key);
                            }
                        }
                    }
                }
                return;
            }
            Err(reason) => {
                tracing::warn!("shovel '{}' failed: {reason}", identity.name);
                status.terminated(&reason);
                if definition.reconnect_delay.is_zero() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(definition.reconnect_delay) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
