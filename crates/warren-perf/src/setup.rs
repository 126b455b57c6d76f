//! Opening the connections and channels of a run before anything is published: consumers first (qos, consume),
//! then producers (confirm.select), so that no message is published before its consumers are listening.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{unexpected, Connection};
use super::declarations::Declared;
use super::options::Plan;
use super::PerfError;
use warren_protocol::{basic, confirm, AMQPClass, FieldTable, ShortString};

/// What runs on one channel once the run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Producer id.
    Producer(u16),
    /// Consumer index.
    Consumer(usize),
    Idle,
}

/// A connection whose channel `i + 1` is set up for `roles[i]`.
pub(crate) struct Prepared {
    pub conn: Connection,
    pub roles: Vec<Role>,
}

/// How many connections `--idle-connections` opens at once.
const IDLE_OPEN_CONCURRENCY: usize = 64;

/// Opens every producer and consumer connection of the plan.
pub(crate) async fn connect(plan: &Plan, declared: &Declared) -> Result<Vec<Prepared>, PerfError> {
    let consumers = (0..plan.consumers).map(Role::Consumer);
    let producers = (0..plan.producers).map(|id| Role::Producer(id as u16));
    let roles: Vec<Role> = consumers.chain(producers).collect();
    let mut prepared = Vec::new();
    if plan.shared_connection {
        if roles.is_empty() {
            return Ok(prepared);
        }
        let mut conn = Connection::open(&plan.uri, "warren perf").await?;
        for (i, role) in roles.iter().enumerate() {
            set_up(&mut conn, (i + 1) as u16, *role, plan, declared).await?;
        }
        prepared.push(Prepared { conn, roles });
    } else {
        for role in roles {
            let name = match role {
                Role::Producer(id) => format!("warren perf producer {id}"),
                Role::Consumer(i) => format!("warren perf consumer {i}"),
                Role::Idle => "warren perf idle".to_owned(),
            };
            let mut conn = Connection::open(&plan.uri, &name).await?;
            set_up(&mut conn, 1, role, plan, declared).await?;
            prepared.push(Prepared {
                conn,
                roles: vec![role],
            });
        }
    }
    Ok(prepared)
}

async fn set_up(
    conn: &mut Connection,
    channel: u16,
    role: Role,
    plan: &Plan,
    declared: &Declared,
) -> Result<(), PerfError> {
    conn.open_channel(channel).await?;
    match role {
        Role::Producer(_) => {
            if plan.confirm.is_some() {
                let reply = conn
                    .call(
                        channel,
                        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                            nowait: false,
                        })),
                    )
                    .await?;
                if !matches!(reply, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) {
                    return Err(unexpected("confirm.select-ok", &reply));
                }
            }
        }
        Role::Consumer(index) => {
            if plan.qos > 0 {
                let reply = conn
                    .call(
                        channel,
                        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                            prefetch_count: plan.qos,
                            global: false,
                        })),
                    )
                    .await?;
                if !matches!(reply, AMQPClass::Basic(basic::AMQPMethod::QosOk(_))) {
                    return Err(unexpected("basic.qos-ok", &reply));
                }
            }
            let group = index % declared.queues.len().max(1);
            let Some(queue) = declared.queues.get(group) else {
                return Err(PerfError::InvalidOptions(
                    "consumers need a queue".to_owned(),
                ));
            };
            let queue = ShortString::try_new(queue.clone()).map_err(|_| {
                PerfError::InvalidOptions(format!("queue name `{queue}` is too long"))
            })?;
            let reply = conn
                .call(
                    channel,
                    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                        queue,
                        consumer_tag: format!("warren-perf-{index}").into(),
                        no_local: false,
                        no_ack: plan.autoack,
                        exclusive: false,
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .await?;
            if !matches!(reply, AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_))) {
                return Err(unexpected("basic.consume-ok", &reply));
            }
        }
        Role::Idle => {}
    }
    Ok(())
}

/// Opens `--idle-connections` connections, a few dozen at a time. Returns those that opened and the errors of
/// those that did not.
pub(crate) async fn connect_idle(plan: &Plan) -> (Vec<Prepared>, Vec<String>) {
    let permits = Arc::new(Semaphore::new(IDLE_OPEN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..plan.idle_connections {
        let permits = permits.clone();
        let uri = plan.uri.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let mut conn = Connection::open(&uri, &format!("warren perf idle {i}")).await?;
            conn.open_channel(1).await?;
            Ok::<_, PerfError>(Prepared {
                conn,
                roles: vec![Role::Idle],
            })
        });
    }
    let mut prepared = Vec::with_capacity(plan.idle_connections);
    let mut failures = 0usize;
    let mut first_error = None;
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Ok(p)) => prepared.push(p),
            Ok(Err(e)) => {
                failures += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let errors = first_error
        .map(|e| {
            vec![format!(
                "{failures} idle connections failed to open; the first: {e}"
            )]
        })
        .unwrap_or_default();
    (prepared, errors)
}
