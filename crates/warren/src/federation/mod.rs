//! Federation (RabbitMQ's federation plugin): exchanges and queues that receive what is published to their
//! counterparts on other brokers, Warren or RabbitMQ alike, over AMQP 0-9-1 with lapin.
//!
//! Upstreams are `federation-upstream` runtime parameters and named lists of them `federation-upstream-set`
//! parameters; a policy with the `federation-upstream` or `federation-upstream-set` key federates the exchanges
//! and queues it matches. The broker works out which links the parameters and policies ask for
//! (`broker::federation`) each second and whenever one changes, and hands the list to [`Links`], which starts the
//! new links, stops the ones no longer wanted, restarts those whose upstream changed, and passes each exchange
//! link its exchange's current bindings and each queue link whether its queue wants messages.

pub(crate) mod link;
pub(crate) mod loops;
mod probe;
pub mod status;
pub mod upstream;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::shovel::LocalNode;
pub(crate) use link::{BindingKey, Federated, LinkSpec};
use status::LinkStatusCell;
pub use status::{LinkState, LinkStatus};

/// A link's identity: vhost, `exchange` or `queue`, the federated object's name, the upstream's name.
pub(crate) type LinkKey = (String, &'static str, String, String);

/// One link the parameters and policies ask for, with what it needs to know now.
pub(crate) struct WantedLink {
    /// What it runs with.
    pub(crate) spec: LinkSpec,
    /// The federated exchange's bindings (empty for a queue).
    pub(crate) bindings: BTreeSet<BindingKey>,
    /// Whether the federated queue wants messages (always true for an exchange).
    pub(crate) demand: bool,
}

impl WantedLink {
    fn key(&self) -> LinkKey {
        let (kind, name) = match &self.spec.federated {
            Federated::Exchange { name, .. } => ("exchange", name.clone()),
            Federated::Queue { name } => ("queue", name.clone()),
        };
        (
            self.spec.vhost.clone(),
            kind,
            name,
            self.spec.upstream.name.clone(),
        )
    }
}

struct RunningLink {
    spec: LinkSpec,
    status: Arc<LinkStatusCell>,
    stop: watch::Sender<bool>,
    bindings: watch::Sender<BTreeSet<BindingKey>>,
    demand: watch::Sender<bool>,
}

/// A link as listed: what it federates and its status.
#[derive(Clone, Debug)]
pub struct LinkView {
    /// Its vhost.
    pub vhost: String,
    /// `exchange` or `queue`.
    pub kind: &'static str,
    /// The federated exchange's or queue's name.
    pub name: String,
    /// The upstream's name.
    pub upstream: String,
    /// The upstream exchange (exchange links) or queue (queue links).
    pub upstream_object: String,
    /// RabbitMQ's link id: a short hash of the identity.
    pub id: String,
    /// Its status.
    pub status: LinkStatus,
}

/// The node's federation links.
pub struct Links {
    running: Mutex<BTreeMap<LinkKey, RunningLink>>,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            running: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Links {
    fn running(&self) -> MutexGuard<'_, BTreeMap<LinkKey, RunningLink>> {
        // Nothing is left half-changed under this lock.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the running links those `wanted`: starts, stops, restarts, and passes on bindings and demand.
    /// Needs a tokio runtime.
    pub(crate) fn apply(&self, wanted: Vec<WantedLink>, local: &LocalNode) {
        let mut running = self.running();
        let keys: BTreeSet<LinkKey> = wanted.iter().map(WantedLink::key).collect();
        running.retain(|key, link| {
            let keep = keys.contains(key);
            if !keep {
                let _ = link.stop.send(true);
            }
            keep
        });
        for want in wanted {
            let key = want.key();
            if let Some(link) = running.get(&key) {
                if link.spec == want.spec {
                    link.bindings
                        .send_if_modified(|b| replace_if_changed(b, &want.bindings));
                    link.demand
                        .send_if_modified(|d| replace_if_changed(d, &want.demand));
                    continue;
                }
                let _ = link.stop.send(true);
            }
            running.insert(key, start(want, local.clone()));
        }
    }

    /// Restarts the link with RabbitMQ's `id`; false if there is none.
    pub fn restart(&self, id: &str, local: &LocalNode) -> bool {
        let mut running = self.running();
        let Some(key) = running.keys().find(|k| link_id(k) == id).cloned() else {
            return false;
        };
        let Some(old) = running.remove(&key) else {
            return false;
        };
        let _ = old.stop.send(true);
        let want = WantedLink {
            spec: old.spec.clone(),
            bindings: old.bindings.borrow().clone(),
            demand: *old.demand.borrow(),
        };
        running.insert(key, start(want, local.clone()));
        true
    }

    /// Every link's view, by vhost, kind, name and upstream.
    pub fn list(&self) -> Vec<LinkView> {
        self.running()
            .iter()
            .map(|(key, link)| LinkView {
                vhost: key.0.clone(),
                kind: key.1,
                name: key.2.clone(),
                upstream: key.3.clone(),
                upstream_object: link
                    .spec
                    .upstream_exchange()
                    .unwrap_or_else(|| link.spec.upstream_queue()),
                id: link_id(key),
                status: link.status.snapshot(),
            })
            .collect()
    }

    /// Stops every link (shutdown).
    pub fn stop_all(&self) {
        for (_, link) in std::mem::take(&mut *self.running()) {
            let _ = link.stop.send(true);
        }
    }
}

fn replace_if_changed<T: PartialEq + Clone>(current: &mut T, new: &T) -> bool {
    if current == new {
        return false;
    }
    *current = new.clone();
    true
}

/// RabbitMQ shows a short id per link; here the first 8 hex digits of the identity's SHA-256.
fn link_id(key: &LinkKey) -> String {
    let digest = Sha256::digest(format!("{}\0{}\0{}\0{}", key.0, key.1, key.2, key.3));
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

fn start(want: WantedLink, local: LocalNode) -> RunningLink {
    let first = want
        .spec
        .upstream
        .uris
        .first()
        .map(|u| u.display().to_owned())
        .unwrap_or_default();
    let status = Arc::new(LinkStatusCell::new(&first));
    let (stop, stop_rx) = watch::channel(false);
    let (bindings, bindings_rx) = watch::channel(want.bindings);
    let (demand, demand_rx) = watch::channel(want.demand);
    tokio::spawn(supervise(
        want.spec.clone(),
        status.clone(),
        stop_rx,
        bindings_rx,
        demand_rx,
        local,
    ));
    RunningLink {
        spec: want.spec,
        status,
        stop,
        bindings,
        demand,
    }
}

/// Runs sessions until stopped, `reconnect-delay` apart after failures.
async fn supervise(
    spec: LinkSpec,
    status: Arc<LinkStatusCell>,
    mut stop: watch::Receiver<bool>,
    mut bindings: watch::Receiver<BTreeSet<BindingKey>>,
    mut demand: watch::Receiver<bool>,
    local: LocalNode,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        status.starting();
        match link::run_session(
            &spec,
            &status,
            &mut stop,
            &mut bindings,
            &mut demand,
            &local,
        )
        .await
        {
            Ok(()) => return,
            Err(reason) => {
                tracing::warn!(
                    "federation link from upstream '{}' for {:?} in vhost '{}' failed: {reason}",
                    spec.upstream.name,
                    spec.federated,
                    spec.vhost
                );
                status.failed(&reason);
                tokio::select! {
                    // A zero delay still pauses a little: a link failing at once must not spin.
                    _ = tokio::time::sleep(spec.upstream.reconnect_delay.max(std::time::Duration::from_millis(100))) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
