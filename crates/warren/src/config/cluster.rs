//! `[cluster]`: the nodes this one forms a cluster with. The file's keys are the contract scripts rely on:
//! `name` (this node), `listen` (its inter-node address), `peers` (`"name@address"` of every other node) and
//! `secret` (shared by every node; inter-node requests must prove it).

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::source::TomlSource;
use super::{Config, ConfigError};

/// This node's place in a cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster.
    pub name: String,
    /// Where this node listens for the other nodes.
    pub listen: SocketAddr,
    /// Every other node.
    pub peers: Vec<ClusterPeer>,
    /// The shared secret inter-node requests are signed with.
    pub secret: String,
    /// This node joins a cluster that already runs (`join_cluster`): it asks the peers' leader to add it instead of
    /// forming the cluster with them. Default false.
    pub join: bool,
    /// TLS between nodes (`tls_certfile`, `tls_keyfile`, `tls_cacertfile`), if configured.
    pub tls: Option<ClusterTls>,
}

/// Inter-node TLS: this node's certificate and key, and the CA that signed every node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTls {
    /// This node's certificate chain (PEM), presented to the nodes it dials and to those that dial it.
    pub certfile: std::path::PathBuf,
    /// Its private key (PEM).
    pub keyfile: std::path::PathBuf,
    /// The CA certificates (PEM) the other nodes' certificates are verified against.
    pub cacertfile: std::path::PathBuf,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs.
        f.debug_struct("ClusterConfig")
            .field("name", &self.name)
            .field("listen", &self.listen)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// Another node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPeer {
    /// Its name.
    pub name: String,
    /// Its inter-node address.
    pub addr: SocketAddr,
}

/// The `[cluster]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [cluster] table")]
pub(super) struct ClusterSection {
    name: Spanned<String>,
    listen: Spanned<String>,
    #[serde(default)]
    peers: Vec<Spanned<String>>,
    secret: Spanned<String>,
    #[serde(default)]
    join: bool,
    tls_certfile: Option<Spanned<String>>,
    tls_keyfile: Option<String>,
    tls_cacertfile: Option<String>,
}

/// A node name: letters, digits, `-`, `_` and `.`, as an Erlang node's short name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl ClusterSection {
    pub(super) fn apply_to(
        self,
        config: &mut Config,
        source: &TomlSource<'_>,
    ) -> Result<(), ConfigError> {
        let name = self.name.get_ref();
        if !valid_name(name) {
            return Err(source.invalid(
                self.name.span(),
                "cluster.name",
                "a node name of letters, digits, '-', '_' or '.'".to_owned(),
            ));
        }
        let listen = self.listen.get_ref().parse().map_err(|_| {
            source.invalid(
                self.listen.span(),
                "cluster.listen",
                "an address such as 127.0.0.1:25672".to_owned(),
            )
        })?;
        if self.secret.get_ref().len() < 8 {
            return Err(source.invalid(
                self.secret.span(),
                "cluster.secret",
                "a shared secret of at least 8 characters".to_owned(),
            ));
        }
        let mut peers: Vec<ClusterPeer> = Vec::with_capacity(self.peers.len());
        for peer in &self.peers {
            let invalid = || {
                source.invalid(
                    peer.span(),
                    "cluster.peers",
                    "\"name@address\" such as \"n2@127.0.0.1:25673\", each name once and not this node's"
                        .to_owned(),
                )
            };
            let (peer_name, addr) = peer.get_ref().split_once('@').ok_or_else(invalid)?;
            let addr: SocketAddr = addr.parse().map_err(|_| invalid())?;
            if !valid_name(peer_name)
                || peer_name == name
                || peers.iter().any(|p| p.name == peer_name)
            {
                return Err(invalid());
            }
            peers.push(ClusterPeer {
                name: peer_name.to_owned(),
                addr,
            });
        }
        let tls = match (self.tls_certfile, self.tls_keyfile, self.tls_cacertfile) {
            (None, None, None) => None,
            (Some(certfile), Some(keyfile), Some(cacertfile)) => Some(ClusterTls {
                certfile: certfile.into_inner().into(),
                keyfile: keyfile.into(),
                cacertfile: cacertfile.into(),
            }),
            (certfile, _, _) => {
                let span = certfile.map_or(self.name.span(), |c| c.span());
                return Err(source.invalid(
                    span,
                    "cluster.tls_certfile",
                    "tls_certfile, tls_keyfile and tls_cacertfile together (inter-node TLS), or none of them"
                        .to_owned(),
                ));
            }
        };
        config.cluster = Some(ClusterConfig {
            name: name.clone(),
            listen,
            peers,
            secret: self.secret.into_inner(),
            join: self.join,
            tls,
        });
        Ok(())
    }
}
