//! Noticing, while nothing flows, that a link's connection is gone.
//!
//! lapin reports a dead connection to the calls made on it, so a shovel or federation link waiting on an idle
//! source would keep saying `running` with a destination that died long ago, and its first message would find out
//! (RabbitMQ's links, Erlang processes linked to their connections, stop at once). A timer checks the connections
//! instead: the session then ends with the reason and the supervisor starts another after `reconnect-delay`.

use std::time::Duration;

use lapin::Connection;
use tokio::time::{interval, Interval, MissedTickBehavior};

/// How often the connections are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The connections of one session, by the name its status gives each (`source`, `destination`, `upstream`...).
pub(crate) struct Liveness<'a> {
    connections: Vec<(&'static str, &'a Connection)>,
    timer: Interval,
}

impl<'a> Liveness<'a> {
    /// Watches `connections`.
    pub(crate) fn new(connections: Vec<(&'static str, &'a Connection)>) -> Self {
        let mut timer = interval(CHECK_EVERY);
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { connections, timer }
    }

    /// Resolves with the reason once one of the connections is no longer open; cancel-safe, for a `select!`.
    pub(crate) async fn lost(&mut self) -> String {
        loop {
            self.timer.tick().await;
            if let Some(reason) = self.check() {
                return reason;
            }
        }
    }

    /// Why the first connection that is not open is not, if one is not.
    fn check(&self) -> Option<String> {
        self.connections.iter().find_map(|(side, connection)| {
            let status = connection.status();
            let how = if status.connected() {
                return None;
            } else if status.errored() {
                "was lost"
            } else if status.closing() || status.closed() {
                "was closed"
            } else {
                "is not open"
            };
            Some(format!("the {side} connection {how}"))
        })
    }
}
