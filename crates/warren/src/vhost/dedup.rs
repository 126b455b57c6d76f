//! The vhost's side of `x-message-deduplication` exchanges: each one's cache of keys (`exchange::dedup`), started
//! at declare and at restore (with the keys the message store kept), dropped with the exchange; the check routing
//! makes; and storing the new keys of a durable one with the publish's confirm waiting on them.

use std::sync::Arc;

use super::routing::LazyHeaders;
use super::Vhost;
use crate::exchange::dedup::{DedupCache, DedupSettings, Seen};
use crate::exchange::Exchange;
use crate::message::dedup::{cache_ttl, dedup_key, may_carry_key};
use crate::message::now_ms;
use crate::session::ConfirmRef;
use warren_store::DedupEntry;

/// A key a durable deduplicating exchange just took, to be stored before the publish that brought it is confirmed.
pub(crate) struct KeyRecord {
    /// The exchange's message-store id.
    store_id: u64,
    /// Its `x-cache-size`.
    capacity: u32,
    /// The key and its deadline.
    entry: DedupEntry,
}

impl Vhost {
    /// Starts the cache of deduplicating exchange `x`: its keys stored under `store_id` when it has one (a durable
    /// exchange keeping them on disk), with the keys recovered for it, oldest first.
    pub(super) fn start_dedup(
        &self,
        x: &Exchange,
        store_id: Option<u64>,
        recovered: Vec<DedupEntry>,
    ) {
        let settings = match DedupSettings::parse(&x.arguments) {
            Ok(settings) => settings,
            Err(error) => {
                // Checked at declare; a stored exchange whose arguments no longer pass routes as fanout.
                tracing::error!(
                    "exchange '{}' in vhost '{}': {}; it does not deduplicate",
                    x.name,
                    self.name,
                    error.text
                );
                return;
            }
        };
        let cache = DedupCache::new(settings, store_id);
        let now = now_ms();
        for entry in recovered {
            cache.restore(&entry.key, entry.expires_at_ms, now);
        }
        self.dedup.insert(x.name.clone(), Arc::new(cache));
    }

    /// The cache of deduplicating exchange `name`, if it is one.
    pub(crate) fn dedup_cache(&self, name: &str) -> Option<Arc<DedupCache>> {
        self.dedup.get(name).map(|cache| cache.value().clone())
    }

    /// The exchange `name` is gone: its keys are forgotten, in the store too.
    pub(super) fn stop_dedup(&self, name: &str) {
        let Some((_, cache)) = self.dedup.remove(name) else {
            return;
        };
        if let (Some(p), Some(id)) = (&self.stores, cache.store_id) {
            p.store.drop_queue(id);
        }
    }

    /// The vhost is deleted: every deduplicating exchange's keys are forgotten.
    pub(crate) fn stop_all_dedup(&self) {
        let names: Vec<Arc<str>> = self.dedup.iter().map(|d| d.key().clone()).collect();
        for name in names {
            self.stop_dedup(&name);
        }
    }

    /// Whether exchange `x` keeps its keys in the message store: durable, and `x-cache-persistence` not `memory`.
    pub(super) fn stores_keys(x: &Exchange) -> bool {
        x.durable
            && DedupSettings::parse(&x.arguments)
                .is_ok_and(|s| s.persistence == crate::exchange::dedup::CachePersistence::Disk)
    }

    /// Whether deduplicating exchange `x` has seen the message's key within its TTL (then it routes nowhere). A new
    /// key is remembered, and, for an exchange that stores its keys, added to what the publish must store.
    pub(super) fn is_duplicate(&self, x: &Exchange, headers: &mut LazyHeaders<'_>) -> bool {
        if !may_carry_key(&headers.message.properties_raw) {
            return false;
        }
        let Some(cache) = self.dedup.get(&x.name).map(|c| c.value().clone()) else {
            return false;
        };
        let table = headers.get();
        let Some(key) = dedup_key(table) else {
            return false;
        };
        let now = now_ms();
        match cache.check(key.as_bytes(), cache_ttl(table), now) {
            Seen::Duplicate => true,
            Seen::New { expires_at } => {
                if let Some(store_id) = cache.store_id {
                    headers.keys.push(KeyRecord {
                        store_id,
                        capacity: cache.settings.capacity,
                        entry: DedupEntry {
                            key: key.as_bytes().into(),
                            expires_at_ms: expires_at,
                            inserted_at_ms: now,
                        },
                    });
                }
                false
            }
        }
    }

    /// Stores the keys a publish brought, before the message itself (so a message recovered after a crash always
    /// comes back with its key); the publish's confirm, if any, waits until they are durable and fails with them.
    pub(crate) fn remember_keys(&self, keys: Vec<KeyRecord>, confirm: Option<&ConfirmRef>) {
        let Some(p) = &self.stores else {
            return;
        };
        for record in keys {
            let share = confirm.map(ConfirmRef::share);
            p.store.remember_key(
                record.store_id,
                record.capacity,
                record.entry,
                Box::new(move |result| {
                    if let (Some(share), Err(_)) = (share, result) {
                        share.fail();
                    }
                }),
            );
        }
    }
}
