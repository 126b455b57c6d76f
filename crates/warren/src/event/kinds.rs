//! One constructor per event, with the properties RabbitMQ 3.10 gives it (`rabbit_amqqueue_process`,
//! `rabbit_exchange`, `rabbit_binding`, `rabbit_reader`, `rabbit_channel`, `rabbit_policy`, `rabbit_vhost`,
//! `rabbit_auth_backend_internal`), as the plugin converts them.

use std::net::SocketAddr;

use warren_protocol::types::FieldArray;
use warren_protocol::{AMQPValue, FieldTable};

use super::erlang::ip_tuple;
use super::{char_list, json_table, table_as_terms, text, Event};

/// What RabbitMQ prints as a connection's protocol.
const PROTOCOL: &str = "{0,9,1}";

impl Event {
    /// `queue.created`; `owner` is the pid of the connection owning an exclusive queue.
    pub(crate) fn queue_created(
        vhost: &str,
        name: &str,
        durable: bool,
        auto_delete: bool,
        owner: Option<&str>,
        arguments: &FieldTable,
        user: &str,
    ) -> Event {
        Event::new("queue.created")
            .text("name", name)
            .text("vhost", vhost)
            .boolean("durable", durable)
            .boolean("auto_delete", auto_delete)
            .value("arguments", table_as_terms(arguments))
            .text("owner_pid", owner.unwrap_or(""))
            .boolean("exclusive", owner.is_some())
            .by(user)
    }

    /// `queue.deleted`.
    pub(crate) fn queue_deleted(vhost: &str, name: &str, user: &str) -> Event {
        Event::new("queue.deleted")
            .text("name", name)
            .text("vhost", vhost)
            .by(user)
    }

    /// `exchange.created`; `policy` is the name of the policy that applies to it, if any.
    #[allow(clippy::too_many_arguments)] // one per property RabbitMQ reports
    pub(crate) fn exchange_created(
        vhost: &str,
        name: &str,
        kind: &str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: &FieldTable,
        policy: Option<&str>,
        user: &str,
    ) -> Event {
        Event::new("exchange.created")
            .text("name", name)
            .text("vhost", vhost)
            .text("type", kind)
            .boolean("durable", durable)
            .boolean("auto_delete", auto_delete)
            .boolean("internal", internal)
            .value("arguments", table_as_terms(arguments))
            .text("policy", policy.unwrap_or(""))
            .by(user)
    }

    /// `exchange.deleted`.
    pub(crate) fn exchange_deleted(vhost: &str, name: &str, user: &str) -> Event {
        Event::new("exchange.deleted")
            .text("name", name)
            .text("vhost", vhost)
            .by(user)
    }

    /// `binding.created` (`created`) or `binding.deleted`; `to_queue` says whether the destination is a queue.
    #[allow(clippy::too_many_arguments)] // one per property RabbitMQ reports
    pub(crate) fn binding(
        created: bool,
        vhost: &str,
        source: &str,
        destination: &str,
        to_queue: bool,
        routing_key: &str,
        arguments: &FieldTable,
        user: &str,
    ) -> Event {
        let key = match created {
            true => "binding.created",
            false => "binding.deleted",
        };
        Event::new(key)
            .text("source_name", source)
            .text("source_kind", "exchange")
            .text("destination_name", destination)
            .text(
                "destination_kind",
                if to_queue { "queue" } else { "exchange" },
            )
            .text("routing_key", routing_key)
            .value("arguments", table_as_terms(arguments))
            .text("vhost", vhost)
            .by(user)
    }

    /// `connection.created`.
    pub(crate) fn connection_created(c: &ConnectionCreated<'_>) -> Event {
        let mut event = Event::new("connection.created")
            .text("type", "network")
            .text("pid", c.pid)
            .text("name", c.name)
            .text("protocol", PROTOCOL)
            .text("user", c.user)
            .text("vhost", c.vhost)
            .long("timeout", i64::from(c.heartbeat))
            .long("frame_max", i64::from(c.frame_max))
            .long("channel_max", i64::from(c.channel_max))
            .value("client_properties", table_as_terms(c.client_properties))
            .long(
                "connected_at",
                i64::try_from(c.connected_at_ms).unwrap_or(i64::MAX),
            )
            .text("node", c.node)
            .text("auth_mechanism", c.auth_mechanism)
            .boolean("ssl", c.ssl)
            .by(c.user);
        event = with_addresses(event, c.peer, c.local, "host", "port");
        // RabbitMQ reports its TLS details here; Warren gives them as a plain connection does, empty.
        for key in [
            "peer_cert_subject",
            "peer_cert_issuer",
            "peer_cert_validity",
            "ssl_protocol",
            "ssl_key_exchange",
            "ssl_cipher",
            "ssl_hash",
        ] {
            event = event.text(key, "");
        }
        event
    }

    /// `connection.closed` of connection `pid`, also for one whose login failed, as in RabbitMQ.
    pub(crate) fn connection_closed(
        pid: &str,
        name: &str,
        node: &str,
        client_properties: &FieldTable,
    ) -> Event {
        Event::new("connection.closed")
            .text("pid", pid)
            .text("name", name)
            .text("node", node)
            .value("client_properties", table_as_terms(client_properties))
    }

    /// `user.authentication.success`, or `.failure` with RabbitMQ's reason when `error` is set.
    pub(crate) fn authentication(attempt: &AuthAttempt<'_>, error: Option<&str>) -> Event {
        let key = match error {
            None => "user.authentication.success",
            Some(_) => "user.authentication.failure",
        };
        let mut event = Event::new(key)
            .text("name", attempt.user)
            .text("connection_type", "network")
            .text("connection_name", attempt.connection_name)
            .text("protocol", PROTOCOL)
            .text("auth_mechanism", attempt.auth_mechanism)
            .boolean("ssl", attempt.ssl);
        event = with_addresses(event, attempt.peer, attempt.local, "host", "");
        if let Some(error) = error {
            // RabbitMQ's reason is an Erlang string, a list of code points, which the plugin sends as an array.
            event = event.value("error", char_list(error));
        }
        event
    }

    /// `channel.created` of channel `pid`, number `number` of the connection `connection_pid` named
    /// `connection_name`.
    pub(crate) fn channel_created(
        pid: &str,
        connection_pid: &str,
        connection_name: &str,
        number: u16,
        user: &str,
        vhost: &str,
    ) -> Event {
        Event::new("channel.created")
            .text("pid", pid)
            .text("name", &format!("{connection_name} ({number})"))
            .text("connection", connection_pid)
            .long("number", i64::from(number))
            .text("user", user)
            .text("vhost", vhost)
            .by(user)
    }

    /// `channel.closed` of the channel `pid`.
    pub(crate) fn channel_closed(pid: &str, user: &str) -> Event {
        Event::new("channel.closed").text("pid", pid).by(user)
    }

    /// `consumer.created` on channel `channel_pid`.
    #[allow(clippy::too_many_arguments)] // one per property RabbitMQ reports
    pub(crate) fn consumer_created(
        vhost: &str,
        queue: &str,
        consumer_tag: &str,
        channel_pid: &str,
        exclusive: bool,
        ack_required: bool,
        prefetch_count: u16,
        arguments: &FieldTable,
        user: &str,
    ) -> Event {
        Event::new("consumer.created")
            .text("consumer_tag", consumer_tag)
            .boolean("exclusive", exclusive)
            .boolean("ack_required", ack_required)
            .text("channel", channel_pid)
            .text("queue", queue)
            .text("vhost", vhost)
            .long("prefetch_count", i64::from(prefetch_count))
            .value("arguments", table_as_terms(arguments))
            .by(user)
    }

    /// `consumer.deleted`.
    pub(crate) fn consumer_deleted(
        vhost: &str,
        queue: &str,
        consumer_tag: &str,
        channel_pid: &str,
        user: &str,
    ) -> Event {
        Event::new("consumer.deleted")
            .text("consumer_tag", consumer_tag)
            .text("channel", channel_pid)
            .text("queue", queue)
            .text("vhost", vhost)
            .by(user)
    }

    /// `policy.set`, for a policy or an operator policy; `definition` is its JSON object.
    pub(crate) fn policy_set(
        vhost: &str,
        name: &str,
        pattern: &str,
        apply_to: &str,
        priority: i64,
        definition: &serde_json::Map<String, serde_json::Value>,
        user: &str,
    ) -> Event {
        Event::new("policy.set")
            .text("name", name)
            .text("vhost", vhost)
            .text("pattern", pattern)
            .text("apply-to", apply_to)
            .long("priority", priority)
            .value("definition", AMQPValue::FieldTable(json_table(definition)))
            .by(user)
    }

    /// `policy.cleared`, or `operator.policy.cleared` for an operator policy (RabbitMQ's event names).
    pub(crate) fn policy_cleared(operator: bool, vhost: &str, name: &str, user: &str) -> Event {
        let key = match operator {
            true => "operator.policy.cleared",
            false => "policy.cleared",
        };
        Event::new(key)
            .text("name", name)
            .text("vhost", vhost)
            .by(user)
    }

    /// `vhost.created` on node `node`.
    pub(crate) fn vhost_created(name: &str, node: &str, tracing: bool, user: &str) -> Event {
        let mut cluster_state = FieldTable::default();
        cluster_state.insert(node.into(), text("running"));
        Event::new("vhost.created")
            .text("name", name)
            .text("description", "")
            .text("tags", "")
            .text("default_queue_type", "undefined")
            .text("metadata", "#{description => <<>>,tags => <<>>}")
            .boolean("tracing", tracing)
            .value("cluster_state", AMQPValue::FieldTable(cluster_state))
            .by(user)
    }

    /// `vhost.deleted`.
    pub(crate) fn vhost_deleted(name: &str, user: &str) -> Event {
        Event::new("vhost.deleted").text("name", name).by(user)
    }

    /// `vhost.limits.set` with the limits as set, or `vhost.limits.cleared` when `limits` is None.
    pub(crate) fn vhost_limits(limits: Option<&[(String, i64)]>, user: &str) -> Event {
        let Some(limits) = limits else {
            return Event::new("vhost.limits.cleared")
                .text("name", "limits")
                .by(user);
        };
        let mut event = Event::new("vhost.limits.set")
            .text("name", "limits")
            .by(user);
        for (key, value) in limits {
            event = event.long(key, *value);
        }
        event
    }

    /// A user event without more to say than its name: `user.created`, `user.deleted`,
    /// `user.password.changed`.
    pub(crate) fn user(key: &'static str, name: &str, actor: &str) -> Event {
        Event::new(key).text("name", name).by(actor)
    }

    /// `user.tags.set`.
    pub(crate) fn user_tags_set(name: &str, tags: &[String], actor: &str) -> Event {
        let tags: Vec<AMQPValue> = tags.iter().map(|t| text(t)).collect();
        Event::new("user.tags.set")
            .text("name", name)
            .value("tags", AMQPValue::FieldArray(FieldArray::from(tags)))
            .by(actor)
    }

    /// `permission.created`.
    pub(crate) fn permission_created(
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
        actor: &str,
    ) -> Event {
        Event::new("permission.created")
            .text("user", user)
            .text("vhost", vhost)
            .text("configure", configure)
            .text("write", write)
            .text("read", read)
            .by(actor)
    }

    /// `topic.permission.created`.
    pub(crate) fn topic_permission_created(
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
        actor: &str,
    ) -> Event {
        Event::new("topic.permission.created")
            .text("user", user)
            .text("vhost", vhost)
            .text("exchange", exchange)
            .text("write", write)
            .text("read", read)
            .by(actor)
    }

    /// `permission.deleted` or `topic.permission.deleted` (`key`).
    pub(crate) fn permission_deleted(
        key: &'static str,
        user: &str,
        vhost: &str,
        actor: &str,
    ) -> Event {
        Event::new(key)
            .text("user", user)
            .text("vhost", vhost)
            .by(actor)
    }
}

/// Adds the peer's and the local address: `peer_host`, `peer_port`, `host`, and `port` when `port_key` is set
/// (hosts as Erlang tuples, as RabbitMQ prints them).
fn with_addresses(
    event: Event,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    host_key: &str,
    port_key: &str,
) -> Event {
    let mut event = event
        .text("peer_host", &ip_tuple(peer.ip()))
        .long("peer_port", i64::from(peer.port()));
    if let Some(local) = local {
        event = event.text(host_key, &ip_tuple(local.ip()));
        if !port_key.is_empty() {
            event = event.long(port_key, i64::from(local.port()));
        }
    }
    event
}

/// What `connection.created` reports of a connection just opened.
pub(crate) struct ConnectionCreated<'a> {
    /// The node's name.
    pub(crate) node: &'a str,
    /// The connection's pid (see `connection_pid`).
    pub(crate) pid: &'a str,
    /// Its name, `peer -> local`.
    pub(crate) name: &'a str,
    /// The peer's address.
    pub(crate) peer: SocketAddr,
    /// The listener's address.
    pub(crate) local: Option<SocketAddr>,
    /// Over TLS.
    pub(crate) ssl: bool,
    /// The user.
    pub(crate) user: &'a str,
    /// The vhost it opened.
    pub(crate) vhost: &'a str,
    /// The SASL mechanism it logged in with.
    pub(crate) auth_mechanism: &'a str,
    /// The client's properties from connection.start-ok.
    pub(crate) client_properties: &'a FieldTable,
    /// Its negotiated heartbeat, seconds.
    pub(crate) heartbeat: u16,
    /// Its negotiated frame_max.
    pub(crate) frame_max: u32,
    /// Its negotiated channel_max.
    pub(crate) channel_max: u16,
    /// When it was opened, ms since the epoch.
    pub(crate) connected_at_ms: u64,
}

/// A login as `user.authentication.*` report it.
pub(crate) struct AuthAttempt<'a> {
    /// The user name the client gave.
    pub(crate) user: &'a str,
    /// The connection's name, `peer -> local`.
    pub(crate) connection_name: &'a str,
    /// The peer's address.
    pub(crate) peer: SocketAddr,
    /// The listener's address.
    pub(crate) local: Option<SocketAddr>,
    /// The SASL mechanism.
    pub(crate) auth_mechanism: &'a str,
    /// Over TLS.
    pub(crate) ssl: bool,
}
