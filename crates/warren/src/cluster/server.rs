//! The inter-node listener (`[cluster] listen`): openraft's RPCs from the other nodes, and definition changes a
//! node forwards to the leader. Every request must carry a valid signature of its body ([`super::auth`]); one
//! without is answered 401 and not read further.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::Raft;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::{Signer, SIGNATURE_HEADER};
use super::classic::home::{HomeBroker, Sessions};
use super::classic::wire::RemoteRequest;
use super::codec::Codec;
use super::quorum::group::{Applied, OpBatch, QueueTypes};
use super::quorum::{MemberChange, QueueGroups};
use super::types::{MetaCommand, MetaResponse, MetaTypes};
use super::{node_id, ClusterNode};
use openraft::ChangeMembers;
use std::collections::BTreeSet;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct ServerState {
    pub(crate) raft: Raft<MetaTypes>,
    pub(crate) signer: Signer,
    /// This node's quorum queue groups.
    pub(crate) groups: Arc<QueueGroups>,
    /// This node's broker, as the home of classic queues other nodes use.
    pub(crate) home: Arc<dyn HomeBroker>,
    /// The other nodes' sessions on this node's classic queues.
    pub(crate) sessions: Arc<Sessions>,
    /// This node's shovels, for the other nodes' listings.
    pub(crate) reports: Arc<dyn super::shovels::ShovelReports>,
}

/// A forwarded write's answer: the log index it was committed at and what applying it answered, or why the node
/// could not take it (it is not the leader any more, or lost its quorum).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WriteAnswer {
    /// The entry's index.
    pub(crate) index: u64,
    /// What applying it answered.
    pub(crate) response: MetaResponse,
}

/// A change of the group's members, made by the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum MembershipChange {
    /// A node joins: added as a learner (it catches up), then made a voter.
    Add {
        /// The node.
        node: ClusterNode,
    },
    /// A node is removed.
    Remove {
        /// Its name.
        name: String,
    },
}

impl MembershipChange {
    /// Makes the change on `raft`, which must lead; why not otherwise.
    pub(crate) async fn apply(&self, raft: &Raft<MetaTypes>) -> Result<(), String> {
        match self {
            MembershipChange::Add { node } => {
                let id = node_id(&node.name);
                raft.add_learner(id, node.clone(), true)
                    .await
                    .map_err(|e| e.to_string())?;
                raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            MembershipChange::Remove { name } => {
                let id = node_id(name);
                raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// The largest inter-node request body read. axum's default (2 MiB) is far below what a follower catching up is
/// sent (many entries of many messages in one AppendEntries, a snapshot chunk): past it such a follower could never
/// catch up. Requests are still refused unread without the secret's signature.
const BODY_LIMIT: usize = 1 << 30;

/// The inter-node routes.
pub(crate) fn router(state: ServerState) -> Router {
    Router::new()
        .route("/cluster/append", post(append))
        .route("/cluster/vote", post(vote))
        .route("/cluster/snapshot", post(snapshot))
        .route("/cluster/write", post(write))
        .route("/cluster/membership", post(membership))
        .route("/cluster/run", post(run))
        .route("/cluster/applied", post(applied))
        .route("/queue/{group}/append", post(queue_append))
        .route("/queue/{group}/vote", post(queue_vote))
        .route("/queue/{group}/snapshot", post(queue_snapshot))
        .route("/queue/{group}/write", post(queue_write))
        .route("/queue/{group}/members", post(queue_members))
        .route(super::classic::PATH, post(classic))
        .route(super::shovels::PATH, post(shovels))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(Arc::new(state))
}

/// Why a request is not read: its status and text.
type Refusal = (StatusCode, String);

/// The body of a request signed with the cluster secret, decoded; 401 when the signature is missing or wrong.
fn verified<T: DeserializeOwned>(
    state: &ServerState,
    headers: &HeaderMap,
    body: &Bytes,
    codec: Codec,
) -> Result<T, Refusal> {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !state.signer.verify(body, signature) {
        return Err((StatusCode::UNAUTHORIZED, "bad cluster signature".to_owned()));
    }
    codec.decode(body).map_err(|e| (StatusCode::BAD_REQUEST, e))
}

fn encoded<T: Serialize>(value: &T, codec: Codec) -> Response {
    match codec.encode(value) {
        Ok(bytes) => ([("content-type", codec.content_type())], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// Answers a request from another node: the signed body decoded and handed to `call`, its answer as JSON.
async fn rpc<Req, Resp, Fut>(
    state: &ServerState,
    headers: &HeaderMap,
    body: &Bytes,
    call: impl FnOnce(Raft<MetaTypes>, Req) -> Fut,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    match verified(state, headers, body, Codec::Json) {
        Ok(request) => encoded(&call(state.raft.clone(), request).await, Codec::Json),
        Err(refused) => refused.into_response(),
    }
}

async fn append(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rpc(&state, &headers, &body, |raft, rpc| async move {
        raft.append_entries(rpc).await
    })
    .await
}

async fn vote(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    rpc(&state, &headers, &body, |raft, rpc| async move {
        raft.vote(rpc).await
    })
    .await
}

async fn snapshot(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rpc(&state, &headers, &body, |raft, rpc| async move {
        raft.install_snapshot(rpc).await
    })
    .await
}

async fn write(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    rpc(
        &state,
        &headers,
        &body,
        |raft, command: MetaCommand| async move {
            let answer: Result<WriteAnswer, String> = match raft.client_write(command).await {
                Ok(written) => Ok(WriteAnswer {
                    index: written.log_id.index,
                    response: written.data,
                }),
                Err(e) => Err(e.to_string()),
            };
            answer
        },
    )
    .await
}

async fn membership(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rpc(
        &state,
        &headers,
        &body,
        |raft, change: MembershipChange| async move { change.apply(&raft).await },
    )
    .await
}

/// Whether this node has applied the definitions log up to the index asked for, waiting up to
/// [`super::PEER_APPLY_WAIT`] for it.
async fn applied(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rpc(&state, &headers, &body, |raft, index: u64| async move {
        raft.wait(Some(super::PEER_APPLY_WAIT))
            .applied_index_at_least(Some(index), "a change applied on another node")
            .await
            .is_ok()
    })
    .await
}

/// This node's run (its liveness, for the queue groups' leaders elsewhere).
async fn run(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let run = state.groups.run();
    rpc(&state, &headers, &body, |_, ()| async move { run }).await
}

/// The group a `/queue/{group}/...` request names, if this node has it open (404 otherwise: the sender retries,
/// as it does for a node that is down).
fn queue_group(state: &ServerState, group: &str) -> Option<Raft<QueueTypes>> {
    u64::from_str_radix(group, 16)
        .ok()
        .and_then(|id| state.groups.get(id))
}

/// Answers a request for a queue group: as [`rpc`], for the group the path names.
async fn queue_rpc<Req, Resp, Fut>(
    state: &ServerState,
    group: &str,
    headers: &HeaderMap,
    body: &Bytes,
    call: impl FnOnce(Raft<QueueTypes>, Req) -> Fut,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    let Some(raft) = queue_group(state, group) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no queue group {group} here"),
        )
            .into_response();
    };
    match verified(state, headers, body, Codec::Binary) {
        Ok(request) => encoded(&call(raft, request).await, Codec::Binary),
        Err(refused) => refused.into_response(),
    }
}

async fn queue_append(
    State(state): State<Arc<ServerState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    queue_rpc(&state, &group, &headers, &body, |raft, rpc| async move {
        raft.append_entries(rpc).await
    })
    .await
}

async fn queue_vote(
    State(state): State<Arc<ServerState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    queue_rpc(&state, &group, &headers, &body, |raft, rpc| async move {
        raft.vote(rpc).await
    })
    .await
}

async fn queue_snapshot(
    State(state): State<Arc<ServerState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    queue_rpc(&state, &group, &headers, &body, |raft, rpc| async move {
        raft.install_snapshot(rpc).await
    })
    .await
}

/// A write another member forwards to this node as the group's leader: answered once committed.
async fn queue_write(
    State(state): State<Arc<ServerState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    queue_rpc(
        &state,
        &group,
        &headers,
        &body,
        |raft, batch: OpBatch| async move {
            let answer: Result<Applied, String> = match raft.client_write(batch).await {
                Ok(written) => Ok(written.data),
                Err(e) => Err(e.to_string()),
            };
            answer
        },
    )
    .await
}

/// A change of the group's voters another node forwards to this node as the group's leader.
async fn queue_members(
    State(state): State<Arc<ServerState>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    queue_rpc(
        &state,
        &group,
        &headers,
        &body,
        |raft, change: MemberChange| async move { change.apply(&raft).await },
    )
    .await
}

/// A call of another node on a classic queue of this node.
async fn classic(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match verified::<RemoteRequest>(&state, &headers, &body, Codec::Binary) {
        Ok(request) => {
            let answer = super::classic::home::serve(
                &state.sessions,
                state.home.as_ref(),
                &request.vhost,
                &request.queue,
                request.call,
            )
            .await;
            encoded(&answer, Codec::Binary)
        }
        Err(refused) => refused.into_response(),
    }
}

/// This node's shovels' statuses.
async fn shovels(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match verified::<()>(&state, &headers, &body, Codec::Json) {
        Ok(()) => encoded(&state.reports.shovel_statuses(), Codec::Json),
        Err(refused) => refused.into_response(),
    }
}
