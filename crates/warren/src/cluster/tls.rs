//! TLS between nodes, when `[cluster]` names `tls_certfile`, `tls_keyfile` and `tls_cacertfile` (RabbitMQ's
//! inter-node TLS: every node presents its certificate to the others and verifies theirs against the CA). The
//! inter-node listener then accepts TLS only and requires a client certificate the CA signed; the client verifies
//! the listener's certificate against the CA and the address it dials (an IP address SAN for `127.0.0.1:25672`, a
//! DNS name SAN for `node1.example:25672`). Requests are still signed with the shared secret.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::ClusterError;
use crate::config::ClusterTls;

/// The node's inter-node TLS: the listener's configuration and the client's.
#[derive(Clone)]
pub(crate) struct InterNodeTls {
    /// What the inter-node listener accepts with.
    pub(crate) server: Arc<ServerConfig>,
    /// What the inter-node client dials with.
    pub(crate) client: ClientConfig,
}

impl std::fmt::Debug for InterNodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterNodeTls").finish_non_exhaustive()
    }
}

fn tls_error(key: &str, path: &Path, reason: impl std::fmt::Display) -> ClusterError {
    ClusterError::Tls(format!("cluster.{key} {}: {reason}", path.display()))
}

fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ClusterError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(key, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, "no certificate in the file"));
    }
    Ok(certs)
}

impl InterNodeTls {
    /// Reads the files `tls` names; an error names the file at fault.
    pub(crate) fn load(tls: &ClusterTls) -> Result<InterNodeTls, ClusterError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates("tls_certfile", &tls.certfile)?;
        let key = PrivateKeyDer::from_pem_file(&tls.keyfile)
            .map_err(|e| tls_error("tls_keyfile", &tls.keyfile, e))?;
        let mut roots = RootCertStore::empty();
        for ca in certificates("tls_cacertfile", &tls.cacertfile)? {
            roots
                .add(ca)
                .map_err(|e| tls_error("tls_cacertfile", &tls.cacertfile, e))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| ClusterError::Tls(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| ClusterError::Tls(format!("cluster.tls_keyfile: {e}")))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClusterError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClusterError::Tls(format!("cluster.tls_keyfile: {e}")))?;
        Ok(InterNodeTls {
            server: Arc::new(server),
            client,
        })
    }
}

/// The inter-node listener with TLS: what axum serves. Handshakes run each in a task of its own, so a slow or
/// failing one (no client certificate, one the CA did not sign, plain HTTP) holds up no other connection.
pub(crate) struct TlsListener {
    local: SocketAddr,
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    _acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener` with `server`.
    pub(crate) fn new(
        listener: TcpListener,
        server: Arc<ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (ready, accepted) = tokio::sync::mpsc::channel(64);
        let acceptor = TlsAcceptor::from(server);
        let task = tokio::spawn(async move {
            loop {
                let (stream, addr) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a moment rather than spin.
                        tracing::warn!(%error, "inter-node accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, addr)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(%error, %addr, "inter-node TLS handshake refused");
                        }
                        Err(_) => tracing::warn!(%addr, "inter-node TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            accepted,
            _acceptor: task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self._acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor task is gone (aborted with the listener): nothing will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
