//! The listener: accepts sockets and serves each connection on its own task, within the connection limit.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::broker::{Broker, StartError};
use crate::config::Config;
use crate::connection;
use warren_store::{FileSystem, StdFileSystem};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Recovering the data directory failed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured listen address.
        addr: SocketAddr,
        /// Why binding (or reading the bound address) failed.
        source: std::io::Error,
    },
}

/// The AMQP listener (mini-redis's `Listener`): a bound socket and the broker every accepted connection serves.
pub struct Server {
    /// Bound before [`Server::run`] so that a bad address fails at start, and so that port 0 is resolved (tests).
    listener: TcpListener,
    /// Handed to each connection task.
    broker: Arc<Broker>,
}

impl Server {
    /// Recovers the broker's durable state, then binds the configured listen address (port 0 picks a free port,
    /// as the tests do).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        Server::bind_with_file_system(config, Arc::new(StdFileSystem)).await
    }

    /// [`Server::bind`] with the message store's files going through `store_fs`: for tests that inject disk faults
    /// (warren_store's `SimFs`, feature `sim`) and for embedding.
    pub async fn bind_with_file_system(
        config: Config,
        store_fs: Arc<dyn FileSystem>,
    ) -> Result<Server, ServerError> {
        let broker = Broker::open_with_file_system(config, store_fs)?;
        broker.start_resource_monitor();
        let listener = TcpListener::bind(broker.config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: broker.config.listen,
                source,
            })?;
        Ok(Server { listener, broker })
    }

    /// The address actually bound (the real port when the configuration asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The broker this server serves; keep it to flush the store at shutdown or to list and close connections.
    pub fn broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }

    /// Accepts connections until the task is dropped.
    pub async fn run(self) {
        let max = match self.broker.config.limits.max_connections {
            0 => Semaphore::MAX_PERMITS,
            n => n,
        };
        // A permit is taken before accepting, so beyond the limit new clients wait in the listen backlog
        // instead of costing a task each.
        let permits = Arc::new(Semaphore::new(max));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match self.listener.accept().await {
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
            let broker = self.broker.clone();
            tokio::spawn(async move {
                connection::serve(broker, stream, peer).await;
                drop(permit);
            });
        }
    }
}

/// A server running on a background task, for tests and embedding.
pub struct RunningServer {
    /// The bound address, for clients to connect to.
    pub addr: SocketAddr,
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
        let broker = server.broker();
        let task = tokio::spawn(server.run());
        Ok(RunningServer { addr, broker, task })
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
