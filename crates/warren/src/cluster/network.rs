//! The groups' messages between nodes: openraft's RPCs as signed JSON over HTTP to the target's inter-node listener
//! (`server.rs`), with reqwest's async client. The definitions group's RPCs go to `/cluster/...`, a quorum queue
//! group's to `/queue/{group}/...` ([`GroupNetwork`]).

use std::marker::PhantomData;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::{Signer, SIGNATURE_HEADER};
use super::codec::Codec;
use super::types::MetaTypes;
use super::ClusterNode;

/// Builds a [`PeerClient`] per target.
#[derive(Clone)]
pub(crate) struct Network {
    pub(crate) http: reqwest::Client,
    pub(crate) signer: Signer,
    /// `https` with inter-node TLS, `http` without.
    scheme: &'static str,
}

impl Network {
    /// The client all RPCs share. Its connections leave from `local` (this node's inter-node address, when it
    /// names one) so that the other nodes, and firewall rules between nodes, see one address per node.
    /// With `tls` (inter-node TLS), it dials `https` with that configuration: the CA's roots and this node's
    /// certificate.
    pub(crate) fn new(
        signer: Signer,
        local: std::net::IpAddr,
        tls: Option<rustls::ClientConfig>,
    ) -> Network {
        let local = (!local.is_unspecified()).then_some(local);
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .local_address(local);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let builder = match tls {
            Some(config) => builder.tls_backend_preconfigured(config),
            None => builder,
        };
        let http = builder.build().unwrap_or_else(|error| {
            // Only a TLS backend that cannot take the configuration fails here: then no request could be made.
            tracing::error!(%error, "inter-node client not built");
            reqwest::Client::new()
        });
        Network {
            http,
            signer,
            scheme,
        }
    }

    /// POSTs `body` signed to `path` of `addr`; the answer's body decoded. Errors: the node could not be reached
    /// (or answered something that is not the RPC's answer).
    pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, PostError> {
        self.post_coded(addr, path, body, timeout, Codec::Json)
            .await
    }

    /// [`Network::post`] with the request and its answer encoded with `codec`.
    pub(crate) async fn post_coded<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Option<Duration>,
        codec: Codec,
    ) -> Result<Resp, PostError> {
        let bytes = codec.encode(body).map_err(PostError::Network)?;
        let mut request = self
            .http
            .post(format!("{}://{addr}{path}", self.scheme))
            .header(SIGNATURE_HEADER, self.signer.sign(&bytes))
            .header("content-type", codec.content_type())
            .body(bytes);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|e| PostError::Unreachable(e.to_string()))?;
        let status = response.status();
        let text = response
            .bytes()
            .await
            .map_err(|e| PostError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(PostError::Network(format!(
                "{addr}{path} answered {status}: {}",
                String::from_utf8_lossy(&text)
            )));
        }
        codec.decode(&text).map_err(PostError::Network)
    }
}

/// Why a POST to another node failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// The node did not answer.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It answered something else than the RPC's answer.
    #[error("{0}")]
    Network(String),
}

/// One target node's RPCs for the group whose routes start with `prefix`.
pub(crate) struct PeerClient<C> {
    network: Network,
    target: u64,
    addr: String,
    prefix: String,
    codec: Codec,
    types: PhantomData<fn() -> C>,
}

impl RaftNetworkFactory<MetaTypes> for Network {
    type Network = PeerClient<MetaTypes>;

    async fn new_client(&mut self, target: u64, node: &ClusterNode) -> PeerClient<MetaTypes> {
        PeerClient {
            network: self.clone(),
            target,
            addr: node.addr.clone(),
            prefix: "/cluster".to_owned(),
            codec: Codec::Json,
            types: PhantomData,
        }
    }
}

/// The network of one quorum queue's group: its RPCs go to `/queue/{group}/...` on the target.
#[derive(Clone)]
pub(crate) struct GroupNetwork<C> {
    /// The node's client.
    pub(crate) network: Network,
    /// `/queue/{group}`.
    pub(crate) prefix: String,
    types: PhantomData<fn() -> C>,
}

impl<C> GroupNetwork<C> {
    /// The network of the group with routes under `prefix`.
    pub(crate) fn new(network: Network, prefix: String) -> GroupNetwork<C> {
        GroupNetwork {
            network,
            prefix,
            types: PhantomData,
        }
    }
}

impl<C> RaftNetworkFactory<C> for GroupNetwork<C>
where
    C: RaftTypeConfig<NodeId = u64, Node = ClusterNode>,
    AppendEntriesRequest<C>: Serialize,
    InstallSnapshotRequest<C>: Serialize,
{
    type Network = PeerClient<C>;

    async fn new_client(&mut self, target: u64, node: &ClusterNode) -> PeerClient<C> {
        PeerClient {
            network: self.network.clone(),
            target,
            addr: node.addr.clone(),
            prefix: self.prefix.clone(),
            codec: Codec::Binary,
            types: PhantomData,
        }
    }
}

impl<C> PeerClient<C> {
    async fn call<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    >(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, ClusterNode, RaftError<u64, E>>> {
        let path = format!("{}{path}", self.prefix);
        let answer: Result<Resp, RaftError<u64, E>> = self
            .network
            .post_coded(
                &self.addr,
                &path,
                request,
                Some(option.hard_ttl()),
                self.codec,
            )
            .await
            .map_err(|e| match e {
                PostError::Unreachable(text) => {
                    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(text)))
                }
                PostError::Network(text) => {
                    RPCError::Network(NetworkError::new(&std::io::Error::other(text)))
                }
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<C> RaftNetwork<C> for PeerClient<C>
where
    C: RaftTypeConfig<NodeId = u64, Node = ClusterNode>,
    AppendEntriesRequest<C>: Serialize,
    InstallSnapshotRequest<C>: Serialize,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ClusterNode, RaftError<u64>>> {
        self.call("/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, ClusterNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.call("/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ClusterNode, RaftError<u64>>> {
        self.call("/vote", &rpc, &option).await
    }
}
