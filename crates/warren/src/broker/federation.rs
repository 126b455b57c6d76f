//! The broker's side of federation: which links its `federation-upstream` and `federation-upstream-set`
//! parameters and its policies ask for, worked out each second and whenever a federation parameter changes, and
//! handed to the node's [`crate::federation::Links`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::parameters::{FEDERATION_UPSTREAM, FEDERATION_UPSTREAM_SET};
use super::Broker;
use crate::federation::upstream::{parse_set, with_overrides, Upstream};
use crate::federation::{BindingKey, Federated, LinkSpec, LinkView, WantedLink};
use crate::policy::FederationTarget;

/// How often the links are checked against the parameters, policies, bindings and queues.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

impl Broker {
    /// Starts keeping the links in step (once, at start, on the broker's runtime).
    pub(crate) fn start_federation(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let wake = self.federation_wake.clone();
        tokio::spawn(async move {
            loop {
                match weak.upgrade() {
                    Some(broker) => broker.reconcile_federation(),
                    None => return,
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                }
            }
        });
    }

    /// Asks for the links to be checked now (a federation parameter changed).
    pub(crate) fn wake_federation(&self) {
        self.federation_wake.notify_one();
    }

    fn reconcile_federation(&self) {
        let upstreams = self.runtime_parameters(Some(FEDERATION_UPSTREAM), None);
        if upstreams.is_empty() && self.links.list().is_empty() {
            return;
        }
        let wanted = self.wanted_links();
        self.links.apply(wanted, &self.shovels.local());
    }

    /// Every link the parameters and policies ask for now.
    fn wanted_links(&self) -> Vec<WantedLink> {
        let mut by_vhost: BTreeMap<String, BTreeMap<String, Upstream>> = BTreeMap::new();
        for p in self.runtime_parameters(Some(FEDERATION_UPSTREAM), None) {
            match Upstream::parse(&p.name, &p.value) {
                Ok(up) => {
                    by_vhost.entry(p.vhost).or_default().insert(p.name, up);
                }
                Err(e) => {
                    tracing::warn!("federation-upstream '{}' no longer validates: {e}", p.name)
                }
            }
        }
        let sets = self.runtime_parameters(Some(FEDERATION_UPSTREAM_SET), None);
        let node = self.config.server.cluster_name.clone();
        let mut wanted = Vec::new();
        for (vhost, upstreams) in by_vhost {
            let Some(host) = self.vhost(&vhost) else {
                continue;
            };
            let resolve = |target: &FederationTarget| -> Vec<Upstream> {
                match target {
                    FederationTarget::Upstream(name) => {
                        upstreams.get(name).cloned().into_iter().collect()
                    }
                    FederationTarget::Set(all) if all == "all" => {
                        upstreams.values().cloned().collect()
                    }
                    FederationTarget::Set(name) => sets
                        .iter()
                        .filter(|s| s.vhost == vhost && s.name == *name)
                        .filter_map(|s| parse_set(&s.value).ok())
                        .flatten()
                        .filter_map(|m| {
                            with_overrides(upstreams.get(&m.upstream)?, &m.overrides).ok()
                        })
                        .collect(),
                }
            };
            let mut bindings: Option<Vec<crate::broker::inspect::BindingInfo>> = None;
            for x in self.exchange_infos(Some(&vhost)) {
                if x.name.is_empty() {
                    continue;
                }
                let Some(target) = host.exchange_federation(&x.name) else {
                    continue;
                };
                let all = bindings.get_or_insert_with(|| self.binding_infos(Some(&vhost)));
                let keys: BTreeSet<BindingKey> = all
                    .iter()
                    .filter(|b| b.source == x.name)
                    .map(|b| {
                        let args = serde_json::to_string(&b.arguments).unwrap_or_default();
                        (b.routing_key.clone(), args)
                    })
                    .collect();
                for upstream in resolve(&target) {
                    wanted.push(WantedLink {
                        spec: LinkSpec {
                            vhost: vhost.clone(),
                            federated: Federated::Exchange {
                                name: x.name.clone(),
                                kind: x.kind.to_owned(),
                                durable: x.durable,
                            },
                            upstream,
                            node: node.clone(),
                        },
                        bindings: keys.clone(),
                        demand: true,
                    });
                }
            }
            for queue in host.queue_handles() {
                let Some(target) = host.queue_federation(&queue) else {
                    continue;
                };
                let counts = queue.gauges.read();
                for upstream in resolve(&target) {
                    // Pull only for consumers here, and only while they are not already supplied.
                    let demand =
                        counts.consumers > 0 && counts.ready < u64::from(upstream.prefetch);
                    wanted.push(WantedLink {
                        spec: LinkSpec {
                            vhost: vhost.clone(),
                            federated: Federated::Queue {
                                name: queue.name().to_owned(),
                            },
                            upstream,
                            node: node.clone(),
                        },
                        bindings: BTreeSet::new(),
                        demand,
                    });
                }
            }
        }
        wanted
    }

    /// Every federation link and its status (`/api/federation-links`).
    pub fn federation_links(&self) -> Vec<LinkView> {
        self.links.list()
    }

    /// Restarts the link with RabbitMQ's link `id`; false if there is none.
    pub fn restart_federation_link(&self, id: &str) -> bool {
        self.links.restart(id, &self.shovels.local())
    }
}
