//! The broker's registry of live connections: who is connected, to which vhost, with how many channels, and a way
//! to close any of them with a reply code and text. The management API lists and closes connections through it, and
//! shutdown closes them all with 320. It imports nothing of the broker above it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use tokio::sync::watch;
use warren_protocol::error::ReplyCode;

/// Why the broker closes a live connection: the client gets connection.close with `code` and the text
/// "<CODE_NAME> - <detail>" (class and method ids 0), and the connection ends after its close-ok.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
    /// The reply code of the connection.close.
    pub code: ReplyCode,
    /// What follows the code's name in the reply text.
    pub detail: String,
}

impl CloseRequest {
    /// 320 CONNECTION_FORCED, as `rabbitmqctl close_connection`, the management API's DELETE and shutdown send it.
    pub fn forced(detail: impl Into<String>) -> CloseRequest {
        CloseRequest {
            code: ReplyCode::ConnectionForced,
            detail: detail.into(),
        }
    }
}

/// What is known of a connection when it registers, once its handshake is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionDetails {
    /// The broker-wide connection id (`ConnectionShared::id`).
    pub id: u64,
    /// The authenticated user.
    pub user: String,
    /// The virtual host the connection opened.
    pub vhost: String,
    /// The client's address.
    pub peer: SocketAddr,
    /// The broker's end of the connection, when the transport knows it.
    pub local: Option<SocketAddr>,
    /// The client's `product` property.
    pub client_product: Option<String>,
    /// The client's `version` property.
    pub client_version: Option<String>,
    /// The client's `connection_name` property: the name a client gives its connection, shown in listings.
    pub client_connection_name: Option<String>,
}

/// A connection's socket traffic, as RabbitMQ's listings show it (`recv_oct`, `recv_cnt`, `send_oct`,
/// `send_cnt`). Each half has one writer (the reader task counts reads, the writer task writes), so a count is a
/// load and a store, no atomic read-modify-write, once per socket read or write, never per frame.
#[derive(Debug, Default)]
pub struct Traffic {
    recv_oct: AtomicU64,
    recv_cnt: AtomicU64,
    send_oct: AtomicU64,
    send_cnt: AtomicU64,
}

/// [`Traffic`] read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Bytes read from the socket.
    pub recv_oct: u64,
    /// Socket reads that returned bytes.
    pub recv_cnt: u64,
    /// Bytes written to the socket.
    pub send_oct: u64,
    /// Socket writes.
    pub send_cnt: u64,
}

/// Adds `n` to a counter only one task writes: a load and a store, no locked instruction (also the channel's
/// publish counts).
pub(crate) fn add_single_writer(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

impl Traffic {
    /// One read of `bytes` bytes; called by the connection's reader only.
    pub fn received(&self, bytes: u64) {
        add_single_writer(&self.recv_oct, bytes);
        add_single_writer(&self.recv_cnt, 1);
    }

    /// One write of `bytes` bytes; called by the connection's writer only.
    pub fn sent(&self, bytes: u64) {
        add_single_writer(&self.send_oct, bytes);
        add_single_writer(&self.send_cnt, 1);
    }

    /// The counts now.
    pub fn read(&self) -> TrafficCounts {
        TrafficCounts {
            recv_oct: self.recv_oct.load(Ordering::Relaxed),
            recv_cnt: self.recv_cnt.load(Ordering::Relaxed),
            send_oct: self.send_oct.load(Ordering::Relaxed),
            send_cnt: self.send_cnt.load(Ordering::Relaxed),
        }
    }
}

/// One live connection as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// What the connection registered with.
    pub details: ConnectionDetails,
    /// RabbitMQ's name for it, "<peer> -> <local>", the key of `/api/connections/{name}`.
    pub name: String,
    /// When it registered (its handshake finished).
    pub created_at: SystemTime,
    /// Channels open on it now.
    pub channels: u32,
    /// Its socket traffic so far.
    pub traffic: TrafficCounts,
}

/// One open channel as listed (the management API's `/api/channels`), read from the channel's own state when
/// asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelSummary {
    /// The channel number.
    pub number: u16,
    /// In confirm mode (confirm.select).
    pub confirm: bool,
    /// In transaction mode (tx.select).
    pub transactional: bool,
    /// basic.qos global=false: the prefetch new consumers get.
    pub prefetch_count: u16,
    /// basic.qos global=true: the channel-wide prefetch.
    pub global_prefetch_count: u16,
    /// Consumers on the channel.
    pub consumer_count: usize,
    /// Deliveries awaiting ack.
    pub messages_unacknowledged: usize,
    /// Publishes awaiting their confirm.
    pub messages_unconfirmed: usize,
    /// Its cumulative message counts.
    pub stats: ChannelMessageStats,
}

/// A channel's cumulative message counts, RabbitMQ's channel `message_stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelMessageStats {
    /// Messages published on it.
    pub publish: u64,
    /// Publishes confirmed with basic.ack.
    pub confirm: u64,
    /// Mandatory publishes routed nowhere, returned.
    pub return_unroutable: u64,
    /// Publishes routed nowhere, dropped.
    pub drop_unroutable: u64,
    /// Deliveries to its consumers that acknowledge.
    pub deliver: u64,
    /// Deliveries to its `no_ack` consumers.
    pub deliver_no_ack: u64,
    /// basic.get answers to be acknowledged.
    pub get: u64,
    /// basic.get answers with `no_ack`.
    pub get_no_ack: u64,
    /// basic.get answered get-empty.
    pub get_empty: u64,
    /// Deliveries acknowledged with basic.ack.
    pub ack: u64,
    /// Deliveries with the redelivered flag.
    pub redeliver: u64,
}

impl ChannelMessageStats {
    /// Every count with its `message_stats` field name; `deliver_get` is the sum of the four kinds of delivery.
    pub fn fields(&self) -> [(&'static str, u64); 12] {
        [
            ("publish", self.publish),
            ("confirm", self.confirm),
            ("return_unroutable", self.return_unroutable),
            ("drop_unroutable", self.drop_unroutable),
            ("deliver", self.deliver),
            ("deliver_no_ack", self.deliver_no_ack),
            ("get", self.get),
            ("get_no_ack", self.get_no_ack),
            ("get_empty", self.get_empty),
            (
                "deliver_get",
                self.deliver + self.deliver_no_ack + self.get + self.get_no_ack,
            ),
            ("ack", self.ack),
            ("redeliver", self.redeliver),
        ]
    }
}

/// What a live channel answers when it is listed. The channel layer implements it on state it already shares
/// with its queues, so listing reads that state under its own lock and nothing is written per frame.
pub trait ChannelProbe: Send + Sync {
    /// The channel as it stands now.
    fn summary(&self) -> ChannelSummary;
}

/// The open channels of one connection: a count raised and lowered by its reader as channels open and close, and
/// each channel's probe. Listings read them; a frame never touches them.
#[derive(Clone, Default)]
pub struct ChannelCount {
    open: Arc<AtomicU32>,
    probes: Arc<Mutex<BTreeMap<u16, Weak<dyn ChannelProbe>>>>,
}

impl std::fmt::Debug for ChannelCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCount")
            .field("open", &self.get())
            .finish_non_exhaustive()
    }
}

impl ChannelCount {
    /// Channel `number` opened; `probe` answers for it while it lives.
    pub fn opened(&self, number: u16, probe: Weak<dyn ChannelProbe>) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.lock_probes().insert(number, probe);
    }

    /// Channel `number` closed.
    pub fn closed(&self, number: u16) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.lock_probes().remove(&number);
    }

    /// Channels open now.
    pub fn get(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    /// The open channels, by number.
    pub fn summaries(&self) -> Vec<ChannelSummary> {
        let probes: Vec<(u16, Weak<dyn ChannelProbe>)> = self
            .lock_probes()
            .iter()
            .map(|(number, probe)| (*number, probe.clone()))
            .collect();
        // Asked outside the table's lock: a probe takes its channel's own lock.
        probes
            .into_iter()
            .filter_map(|(number, probe)| {
                let mut summary = probe.upgrade()?.summary();
                summary.number = number;
                Some(summary)
            })
            .collect()
    }

    fn lock_probes(&self) -> MutexGuard<'_, BTreeMap<u16, Weak<dyn ChannelProbe>>> {
        // Each operation on the map is a single call: it stays whole if a holder panicked.
        self.probes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The reader's end of its connection's close requests.
#[derive(Clone)]
pub struct CloseSignal(watch::Receiver<Option<CloseRequest>>);

impl CloseSignal {
    /// Resolves with the next close request; never, once the connection has left the registry. Cancel-safe, so the
    /// reader can wait on it beside its socket read and drop it when the read wins.
    pub async fn requested(&mut self) -> CloseRequest {
        loop {
            if self.0.changed().await.is_err() {
                return std::future::pending().await;
            }
            if let Some(request) = self.0.borrow_and_update().clone() {
                return request;
            }
        }
    }
}

/// One registered connection.
struct Entry {
    details: ConnectionDetails,
    created_at: SystemTime,
    channels: ChannelCount,
    traffic: Arc<Traffic>,
    close: watch::Sender<Option<CloseRequest>>,
}

impl Entry {
    fn summary(&self) -> ConnectionSummary {
        let peer = self.details.peer;
        let name = match self.details.local {
            Some(local) => format!("{peer} -> {local}"),
            None => peer.to_string(),
        };
        ConnectionSummary {
            details: self.details.clone(),
            name,
            created_at: self.created_at,
            channels: self.channels.get(),
            traffic: self.traffic.read(),
        }
    }
}

/// The live connections of a broker, by id. Cloning gives another handle on the same registry.
#[derive(Clone, Default)]
pub struct ConnectionRegistry {
    // A std mutex: it is held for a map operation, never across an await, and taken once per connection (register,
    // remove) or per management call, never per frame.
    entries: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
}

impl ConnectionRegistry {
    /// Registers a connection whose handshake is done. It stays listed until the returned [`Registration`] drops.
    pub fn register(&self, details: ConnectionDetails) -> Registration {
        let (close, receiver) = watch::channel(None);
        let id = details.id;
        let entry = Arc::new(Entry {
            details,
            created_at: SystemTime::now(),
            channels: ChannelCount::default(),
            traffic: Arc::default(),
            close,
        });
        self.lock().insert(id, entry.clone());
        Registration {
            registry: self.clone(),
            entry,
            receiver: Some(receiver),
        }
    }

    /// Every live connection, oldest first.
    pub fn list(&self) -> Vec<ConnectionSummary> {
        self.lock().values().map(|entry| entry.summary()).collect()
    }

    /// The open channels of connection `id` (none if it is not live).
    pub fn channel_summaries(&self, id: u64) -> Vec<ChannelSummary> {
        let entry = self.lock().get(&id).cloned();
        entry.map_or_else(Vec::new, |entry| entry.channels.summaries())
    }

    /// One live connection by id.
    pub fn get(&self, id: u64) -> Option<ConnectionSummary> {
        self.lock().get(&id).map(|entry| entry.summary())
    }

    /// The id of the live connection with RabbitMQ's `name` ("<peer> -> <local>").
    pub fn id_by_name(&self, name: &str) -> Option<u64> {
        self.lock()
            .values()
            .find(|entry| entry.summary().name == name)
            .map(|entry| entry.details.id)
    }

    /// Asks connection `id` to close with `request`; false if no such connection is live. It leaves the list once
    /// the client answered with close-ok (or failed to within the close-ok timeout).
    pub fn close(&self, id: u64, request: CloseRequest) -> bool {
        let Some(entry) = self.lock().get(&id).cloned() else {
            return false;
        };
        entry.close.send_replace(Some(request));
        true
    }

    /// Asks every live connection to close with `request` (shutdown); returns how many were asked.
    pub fn close_all(&self, request: &CloseRequest) -> usize {
        let entries: Vec<Arc<Entry>> = self.lock().values().cloned().collect();
        for entry in &entries {
            entry.close.send_replace(Some(request.clone()));
        }
        entries.len()
    }

    /// How many live connections `filter` picks (a vhost's, a user's: limits are checked with this).
    pub fn count(&self, filter: impl Fn(&ConnectionDetails) -> bool) -> usize {
        self.lock().values().filter(|e| filter(&e.details)).count()
    }

    /// How many channels the live connections that `filter` picks have open.
    pub fn channels(&self, filter: impl Fn(&ConnectionDetails) -> bool) -> u64 {
        self.lock()
            .values()
            .filter(|e| filter(&e.details))
            .map(|e| u64::from(e.channels.get()))
            .sum()
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// No connection is live.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Entry>>> {
        // The map stays consistent even if a holder panicked: every operation on it is a single call.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's place in the registry, held by the task serving it; dropping it removes the connection.
pub struct Registration {
    registry: ConnectionRegistry,
    entry: Arc<Entry>,
    receiver: Option<watch::Receiver<Option<CloseRequest>>>,
}

impl Registration {
    /// The counter the connection's channel table keeps current.
    pub fn channel_count(&self) -> ChannelCount {
        self.entry.channels.clone()
    }

    /// The connection's traffic counters, for its reader and writer.
    pub fn traffic(&self) -> Arc<Traffic> {
        self.entry.traffic.clone()
    }

    /// The close requests for this connection, for its reader; there is one, so a second call gets None.
    pub fn take_close_signal(&mut self) -> Option<CloseSignal> {
        self.receiver.take().map(CloseSignal)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.entry.details.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(id: u64) -> ConnectionDetails {
        ConnectionDetails {
            id,
            user: "guest".into(),
            vhost: "/".into(),
            peer: SocketAddr::from(([127, 0, 0, 1], 40000 + id as u16)),
            local: Some(SocketAddr::from(([127, 0, 0, 1], 5672))),
            client_product: None,
            client_version: None,
            client_connection_name: None,
        }
    }

    #[test]
    fn connections_are_listed_until_their_registration_drops() {
        let registry = ConnectionRegistry::default();
        let first = registry.register(details(1));
        let second = registry.register(details(2));
        struct Fixed(u16);
        impl ChannelProbe for Fixed {
            fn summary(&self) -> ChannelSummary {
                ChannelSummary {
                    consumer_count: usize::from(self.0),
                    ..ChannelSummary::default()
                }
            }
        }
        let probes: Vec<Arc<dyn ChannelProbe>> = vec![Arc::new(Fixed(7)), Arc::new(Fixed(8))];
        second.channel_count().opened(1, Arc::downgrade(&probes[0]));
        second.channel_count().opened(2, Arc::downgrade(&probes[1]));
        assert_eq!(registry.channel_summaries(2).len(), 2);
        second.channel_count().closed(1);
        // The remaining channel answers through its probe, under its number.
        let channels = registry.channel_summaries(2);
        assert_eq!(
            channels,
            vec![ChannelSummary {
                number: 2,
                consumer_count: 8,
                ..ChannelSummary::default()
            }]
        );
        // A probe whose channel is gone answers nothing.
        drop(probes);
        assert!(registry.channel_summaries(2).is_empty());
        let listed = registry.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].name, "127.0.0.1:40001 -> 127.0.0.1:5672");
        assert_eq!((listed[0].channels, listed[1].channels), (0, 1));
        assert_eq!(
            registry.id_by_name("127.0.0.1:40002 -> 127.0.0.1:5672"),
            Some(2)
        );
        drop(first);
        assert!(registry.get(1).is_none());
        assert_eq!(registry.len(), 1);
        drop(second);
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn a_close_request_reaches_only_its_connection() {
        let registry = ConnectionRegistry::default();
        let mut first = registry.register(details(1));
        let mut second = registry.register(details(2));
        let mut first_signal = first.take_close_signal().expect("one signal");
        let mut second_signal = second.take_close_signal().expect("one signal");
        assert!(first.take_close_signal().is_none());
        assert!(registry.close(1, CloseRequest::forced("bye")));
        assert!(!registry.close(3, CloseRequest::forced("nobody")));
        assert_eq!(first_signal.requested().await, CloseRequest::forced("bye"));
        let quiet = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            second_signal.requested(),
        );
        assert!(quiet.await.is_err());
        assert_eq!(registry.close_all(&CloseRequest::forced("shutdown")), 2);
        assert_eq!(
            second_signal.requested().await,
            CloseRequest::forced("shutdown")
        );
    }
}
