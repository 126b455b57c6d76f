//! Which node runs each dynamic shovel. On a single node, this one. On a cluster, the shovel's runner
//! ([`crate::cluster::Cluster::shovel_runner`]): checked each second, so that a shovel whose runner went down starts
//! on the next node within a second of that node being seen down, and stops here when the runner it moved from is
//! back.

use std::sync::Arc;
use std::time::Duration;

use super::parameters::{shovel_key, SHOVEL};
use super::Broker;
use crate::shovel::{ShovelDefinition, ShovelType};

/// How often each shovel's runner is worked out again.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl Broker {
    /// Whether this node runs dynamic shovel `name` of `vhost` now. Never on a cluster node that has not joined
    /// yet (its log is being applied at start): the check after it has starts the shovel.
    pub(super) fn runs_shovel_here(&self, vhost: &str, name: &str) -> bool {
        match (&self.config.cluster, self.cluster()) {
            (None, _) => true,
            (Some(config), Some(cluster)) => cluster.shovel_runner(vhost, name) == config.name,
            (Some(_), None) => false,
        }
    }

    /// On a cluster node, starts checking each second that this node runs the shovels it should and no others.
    pub(super) fn keep_shovels_on_their_runners(self: &Arc<Self>) {
        if self.config.cluster.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                match weak.upgrade() {
                    Some(broker) => broker.move_shovels(),
                    None => return,
                }
            }
        });
    }

    /// Starts the shovels this node should run and does not, stops those it runs and should not.
    fn move_shovels(&self) {
        for parameter in self.runtime_parameters(Some(SHOVEL), None) {
            let key = shovel_key(&parameter.vhost, &parameter.name);
            let here = self.runs_shovel_here(&parameter.vhost, &parameter.name);
            let running = self.shovels.definition(&key).is_some();
            match (here, running) {
                (true, false) => match ShovelDefinition::parse(&parameter.value) {
                    Ok(definition) => {
                        tracing::info!(
                            "shovel '{}' in vhost '{}' runs on this node now",
                            parameter.name,
                            parameter.vhost
                        );
                        self.shovels
                            .start(key, ShovelType::Dynamic, Arc::new(definition));
                    }
                    Err(e) => tracing::debug!("shovel '{}' does not validate: {e}", parameter.name),
                },
                (false, true) => {
                    tracing::info!(
                        "shovel '{}' in vhost '{}' runs on another node now",
                        parameter.name,
                        parameter.vhost
                    );
                    self.shovels.stop(&key);
                }
                _ => {}
            }
        }
    }
}
