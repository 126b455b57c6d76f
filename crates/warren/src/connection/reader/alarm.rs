//! A publishing connection under a resource alarm: as RabbitMQ's reader, a connection that publishes while an
//! alarm is raised is blocked: `connection.blocked` (to clients that take it), its socket no longer read, its
//! heartbeat monitor paused, until the alarms clear; then `connection.unblocked`. A connection that only consumes
//! is never blocked, so acknowledgements keep flowing.

use super::Reader;
use crate::registry::{CloseRequest, CloseSignal};
use warren_protocol::connection;

impl Reader {
    /// Waits, not reading, while an alarm is raised, telling the client as RabbitMQ does. Returns a close request
    /// that came meanwhile, for the read loop to carry out.
    pub(super) async fn wait_out_alarms(
        &mut self,
        close_signal: &mut Option<CloseSignal>,
    ) -> Option<CloseRequest> {
        let alarms = self.conn.broker.alarms.clone();
        if !alarms.raised() || self.closing {
            return None;
        }
        let reason = alarms.blocked_reason();
        tracing::info!(peer = %self.conn.info.peer, "connection {} blocked: {reason}", self.conn.info.peer);
        if self.blocked_notify {
            self.write_connection(connection::AMQPMethod::Blocked(connection::Blocked {
                reason: reason.as_str().into(),
            }));
        }
        let close = async {
            match close_signal.as_mut() {
                Some(signal) => signal.requested().await,
                None => std::future::pending().await,
            }
        };
        let request = tokio::select! {
            _ = alarms.cleared() => None,
            request = close => Some(request),
        };
        if request.is_none() {
            tracing::info!(peer = %self.conn.info.peer, "connection {} unblocked", self.conn.info.peer);
            if self.blocked_notify {
                self.write_connection(connection::AMQPMethod::Unblocked(connection::Unblocked {}));
            }
        }
        request
    }
}
