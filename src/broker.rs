//! The broker: configuration, the vhosts and the node-wide id counters every connection shares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::config::{Config, UserConfig};
use crate::vhost::Vhost;

pub struct Broker {
    pub config: Config,
    vhosts: DashMap<String, Arc<Vhost>>,
    next_connection_id: AtomicU64,
    next_consumer_id: AtomicU64,
}

impl Broker {
    pub fn new(config: Config) -> Arc<Broker> {
        let vhosts = DashMap::new();
        for name in config.vhosts() {
            vhosts.insert(name.clone(), Vhost::new(&name));
        }
        Arc::new(Broker {
            config,
            vhosts,
            next_connection_id: AtomicU64::new(1),
            next_consumer_id: AtomicU64::new(1),
        })
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<Vhost>> {
        self.vhosts.get(name).map(|v| v.value().clone())
    }

    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.config.auth.users.iter().find(|u| u.name == name)
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_consumer_id(&self) -> u64 {
        self.next_consumer_id.fetch_add(1, Ordering::Relaxed)
    }
}
