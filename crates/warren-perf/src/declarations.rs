//! Declaring what a run publishes to and consumes from, on a setup connection before any producer starts: the
//! exchange (unless it is the default exchange or an `amq.` one), one queue per consumer group, the bindings.
//! With `--predeclared` nothing is declared.

use super::client::{unexpected, Connection};
use super::options::Plan;
use super::PerfError;
use warren_protocol::{exchange, queue, AMQPClass, FieldTable, ShortString};

/// The names producers and consumers use, once the server has named its queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Declared {
    pub exchange: String,
    pub routing_key: String,
    /// One per consumer group.
    pub queues: Vec<String>,
}

fn short(what: &str, s: &str) -> Result<ShortString, PerfError> {
    ShortString::try_new(s)
        .map_err(|_| PerfError::InvalidOptions(format!("{what} `{s}` is longer than 255 bytes")))
}

pub(crate) async fn declare(plan: &Plan) -> Result<Declared, PerfError> {
    if plan.predeclared {
        return Ok(resolve(
            plan,
            plan.queues.iter().map(|q| q.name.clone()).collect(),
        ));
    }
    if plan.queues.is_empty() && (plan.exchange.is_empty() || plan.exchange.starts_with("amq.")) {
        return Ok(resolve(plan, Vec::new()));
    }
    let mut conn = Connection::open(&plan.uri, "warren perf setup").await?;
    conn.open_channel(1).await?;
    if !plan.exchange.is_empty() && !plan.exchange.starts_with("amq.") {
        let reply = conn
            .call(
                1,
                AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
                    exchange: short("--exchange", &plan.exchange)?,
                    kind: short("--exchange-type", &plan.exchange_type)?,
                    passive: false,
                    // Always durable, so runs with and without --durable-queue can share it.
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                })),
            )
            .await?;
        if !matches!(
            reply,
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))
        ) {
            return Err(unexpected("exchange.declare-ok", &reply));
        }
    }
    let mut names = Vec::with_capacity(plan.queues.len());
    for q in &plan.queues {
        let server_named = q.name.is_empty();
        let reply = conn
            .call(
                1,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: short("--queue", &q.name)?,
                    passive: false,
                    durable: plan.durable_queue,
                    exclusive: false,
                    // A server-named queue goes away with its last consumer; a named one is left for inspection.
                    auto_delete: server_named && plan.consumers > 0,
                    nowait: false,
                    arguments: plan.queue_args.clone(),
                })),
            )
            .await?;
        let AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) = reply else {
            return Err(unexpected("queue.declare-ok", &reply));
        };
        names.push(ok.queue.to_string());
    }
    let declared = resolve(plan, names);
    if !declared.exchange.is_empty() {
        for name in &declared.queues {
            let reply = conn
                .call(
                    1,
                    AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                        queue: short("queue", name)?,
                        exchange: short("--exchange", &declared.exchange)?,
                        routing_key: short("--routing-key", &declared.routing_key)?,
                        nowait: false,
                        arguments: FieldTable::default(),
                    })),
                )
                .await?;
            if !matches!(reply, AMQPClass::Queue(queue::AMQPMethod::BindOk(_))) {
                return Err(unexpected("queue.bind-ok", &reply));
            }
        }
    }
    let _ = tokio::time::timeout(super::client::CALL_TIMEOUT, close(conn)).await;
    Ok(declared)
}

fn resolve(plan: &Plan, queues: Vec<String>) -> Declared {
    let routing_key = match &plan.routing_key {
        Some(key) => key.clone(),
        None => queues.first().cloned().unwrap_or_default(),
    };
    Declared {
        exchange: plan.exchange.clone(),
        routing_key,
        queues,
    }
}

async fn close(mut conn: Connection) -> Result<(), PerfError> {
    use warren_protocol::connection;
    conn.call(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "setup done".into(),
            class_id: 0,
            method_id: 0,
        })),
    )
    .await
    .map(|_| ())
}
