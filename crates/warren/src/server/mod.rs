//! The listeners: accept sockets, plain or TLS, and serve each connection on its own task, within the connection
//! limit. `listen` and `[listeners] tcp` are plain; `[listeners] ssl` run a TLS handshake first (within
//! `ssl_handshake_timeout`), then the same AMQP connection code over the TLS stream.

mod tls;
mod tls_reload;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::broker::{Broker, StartError};
use crate::config::Config;
use crate::connection;
use crate::management::ManagementListener;
use crate::metrics::http::MetricsListener;
pub use tls::TlsError;
use tls::TlsState;
use warren_store::{FileSystem, StdFileSystem};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Recovering the data directory failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The TLS settings or files cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured listen address.
        addr: SocketAddr,
        /// Why binding (or reading the bound address) failed.
        source: std::io::Error,
    },
    /// The cluster (`[cluster]`) could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The Prometheus listen address (`[prometheus] listen`) could not be bound.
    #[error("cannot listen on {addr} for Prometheus ([prometheus] listen): {source}")]
    PrometheusListen {
        /// The configured address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
}

/// One bound listening socket.
struct Listener {
    socket: TcpListener,
    /// The address actually bound (port 0 resolved).
    addr: SocketAddr,
    /// Whether connections start with a TLS handshake.
    tls: bool,
}

/// The AMQP listeners (mini-redis's `Listener`): bound sockets and the broker every accepted connection serves.
pub struct Server {
    /// Bound before [`Server::run`] so that a bad address fails at start, and so that port 0 is resolved (tests).
    /// The first is `listen`.
    listeners: Vec<Listener>,
    /// The TLS configuration of the TLS listeners, if there are any.
    tls: Option<Arc<TlsState>>,
    /// Handed to each connection task.
    broker: Arc<Broker>,
    /// The management HTTP API's listener, when `[management] enabled`.
    management: Option<ManagementListener>,
    /// The Prometheus endpoint's listener, bound at start like the AMQP ones; None when `[prometheus]` is off.
    metrics: Option<MetricsListener>,
}

impl Server {
    /// Reads the TLS files if there are TLS listeners, recovers the broker's durable state, then binds every
    /// listener (port 0 picks a free port, as the tests do).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        Server::bind_with_file_system(config, Arc::new(StdFileSystem)).await
    }

    /// [`Server::bind`] with the message store's files going through `store_fs`: for tests that inject disk faults
    /// (warren_store's `SimFs`, feature `sim`) and for embedding.
    pub async fn bind_with_file_system(
        config: Config,
        store_fs: Arc<dyn FileSystem>,
    ) -> Result<Server, ServerError> {
        crate::install_crypto_provider();
        // The certificate files first: a missing one is a quick, clear refusal before any recovery work.
        let tls = if config.listeners.ssl.is_empty() {
            None
        } else {
            Some(Arc::new(TlsState::load(&config.ssl)?))
        };
        let broker = Broker::open_with_file_system(config, store_fs)?;
        broker.start_resource_monitor();
        broker.join_cluster().await?;
        let config = &broker.config;
        let mut listeners = vec![bind_one(config.listen, false).await?];
        for addr in &config.listeners.tcp {
            listeners.push(bind_one(*addr, false).await?);
        }
        for addr in &config.listeners.ssl {
            listeners.push(bind_one(*addr, true).await?);
        }
        let management = match config.management.enabled {
            true => {
                let addr = config.management.listen;
                Some(
                    ManagementListener::bind(addr)
                        .await
                        .map_err(|source| ServerError::Listen { addr, source })?,
                )
            }
            false => None,
        };
        let metrics = match config.prometheus.enabled {
            true => {
                let addr = config.prometheus.listen;
                let bound = MetricsListener::bind(addr).await;
                Some(bound.map_err(|source| ServerError::PrometheusListen { addr, source })?)
            }
            false => None,
        };
        broker.start_links(listeners[0].addr);
        Ok(Server {
            listeners,
            tls,
            broker,
            management,
            metrics,
        })
    }

    /// The address `listen` actually bound (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.listeners[0].addr)
    }

    /// The address the Prometheus endpoint bound, if it is on.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Every plain listener's bound address, `listen` first.
    pub fn plain_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(false)
    }

    /// Every TLS listener's bound address, in the order configured.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(true)
    }

    fn addrs(&self, tls: bool) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.tls == tls)
            .map(|l| l.addr)
            .collect()
    }

    /// The management API's bound address, when it is enabled.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().map(|m| m.addr)
    }

    /// The broker this server serves; keep it to flush the store at shutdown or to list and close connections.
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// Accepts connections on every listener (and reloads the TLS files when they change) until this future is
    /// dropped, which stops them all: the tasks live in a `JoinSet`, aborted when it drops.
    pub async fn run(self) {
        let mut tasks = JoinSet::new();
        if let Some(tls) = &self.tls {
            tasks.spawn(tls_reload::watch(tls.clone()));
        }
        if let Some(management) = self.management {
            let amqp = self
                .listeners
                .iter()
                .map(|l| (if l.tls { "amqp/ssl" } else { "amqp" }, l.addr))
                .collect();
            tasks.spawn(management.serve(self.broker.clone(), amqp));
        }
        if let Some(metrics) = self.metrics {
            let per_object = self.broker.config.prometheus.return_per_object_metrics;
            tasks.spawn(metrics.serve(self.broker.metrics_source(), per_object));
        }
        for listener in self.listeners {
            let tls = if listener.tls { self.tls.clone() } else { None };
            tasks.spawn(accept_loop(listener.socket, tls, self.broker.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn bind_one(addr: SocketAddr, tls: bool) -> Result<Listener, ServerError> {
    let listen_error = |source| ServerError::Listen { addr, source };
    let socket = TcpListener::bind(addr).await.map_err(listen_error)?;
    let addr = socket.local_addr().map_err(listen_error)?;
    Ok(Listener { socket, addr, tls })
}

/// Accepts on one listener until the task is aborted.
async fn accept_loop(listener: TcpListener, tls: Option<Arc<TlsState>>, broker: Arc<Broker>) {
    // The node's connection limit (connection_max) is checked at connection.open, as RabbitMQ does: a client
    // beyond it gets 530 rather than waiting unanswered; one that never gets that far is ended by the handshake
    // timeout.
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small frames (acks, confirms, deliveries of small messages) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        match &tls {
            None => {
                tokio::spawn(connection::serve(broker, stream, peer));
            }
            Some(tls) => {
                tokio::spawn(serve_tls(tls.clone(), broker, stream, peer));
            }
        }
    }
}

/// Runs the TLS handshake within `ssl_handshake_timeout`, then serves AMQP over the TLS stream. A client that
/// does not speak TLS (a plain AMQP client on the TLS port) fails the handshake: logged, and the socket closed.
async fn serve_tls(tls: Arc<TlsState>, broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let deadline = tls.options().handshake_timeout;
    match tokio::time::timeout(deadline, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => connection::serve(broker, stream, peer).await,
        Ok(Err(error)) => {
            tracing::warn!(%peer, "closing TLS connection {peer}: TLS handshake failed: {error}")
        }
        Err(_) => tracing::warn!(
            %peer,
            "closing TLS connection {peer}: TLS handshake did not finish within {deadline:?} (ssl_handshake_timeout)"
        ),
    }
}

/// A server running on a background task, for tests and embedding.
pub struct RunningServer {
    /// The bound address of `listen`, for clients to connect to.
    pub addr: SocketAddr,
    /// The bound addresses of the plain listeners, `listen` first.
    pub plain_addrs: Vec<SocketAddr>,
    /// The bound addresses of the TLS listeners, in the order configured.
    pub tls_addrs: Vec<SocketAddr>,
    /// The management API's bound address, when it is enabled.
    pub management_addr: Option<SocketAddr>,
    /// The Prometheus endpoint's bound address (`http://{addr}/metrics`), if it is on.
    pub prometheus_addr: Option<SocketAddr>,
    /// The broker behind it, for tests that inspect or close live connections.
    pub broker: Arc<Broker>,
    /// The accept loop; aborted when this value drops, which stops accepting (open connections run on).
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Binds as [`Server::bind`] does and runs the accept loop on a spawned task; returns once the socket is
    /// bound, so clients may connect at once. Call it inside a tokio runtime.
    pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
        RunningServer::start_with_file_system(config, Arc::new(StdFileSystem)).await
    }

    /// [`RunningServer::start`] with the message store's files going through `store_fs` (see
    /// [`Server::bind_with_file_system`]).
    pub async fn start_with_file_system(
        config: Config,
        store_fs: Arc<dyn FileSystem>,
    ) -> Result<RunningServer, ServerError> {
        let server = Server::bind_with_file_system(config, store_fs).await?;
        let addr = server.local_addr().map_err(|source| ServerError::Listen {
            addr: server.broker.config.listen,
            source,
        })?;
        let plain_addrs = server.plain_addrs();
        let tls_addrs = server.tls_addrs();
        let management_addr = server.management_addr();
        let prometheus_addr = server.prometheus_addr();
        let broker = server.broker();
        let task = tokio::spawn(server.run());
        Ok(RunningServer {
            addr,
            plain_addrs,
            tls_addrs,
            management_addr,
            prometheus_addr,
            broker,
            task,
        })
    }

    /// amqp:// URI for clients.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
