//! Checking the client's tune-ok against the limits the broker proposed in connection.tune, with RabbitMQ's
//! refusal texts.

use crate::config::Limits;
use warren_protocol::connection;
use warren_protocol::error::{AmqpError, ReplyCode};
use warren_protocol::frame::FRAME_MIN_SIZE;
use warren_protocol::ids;

/// What tune-ok established.
pub(crate) struct Tuned {
    /// The largest frame either side may send.
    pub(crate) frame_max: u32,
    /// The highest channel number the client may open.
    pub(crate) channel_max: u16,
    /// Heartbeat interval in seconds; 0 is off.
    pub(crate) heartbeat: u16,
}

/// Checks the client's tune-ok against what the broker proposed (`limits`).
pub(crate) fn check_tune_ok(
    limits: &Limits,
    tune_ok: &connection::TuneOk,
) -> Result<Tuned, AmqpError> {
    let frame_max = negotiated_value(
        "frame_max",
        tune_ok.frame_max,
        FRAME_MIN_SIZE,
        limits.frame_max,
    )?;
    let channel_max = negotiated_value(
        "channel_max",
        u32::from(tune_ok.channel_max),
        1,
        u32::from(limits.channel_max),
    )?;
    Ok(Tuned {
        frame_max,
        // At most the server's u16 channel_max, or 0 when that is 0: it fits.
        channel_max: u16::try_from(channel_max).unwrap_or(u16::MAX),
        // The client's tune-ok heartbeat is the one both sides use; 0 turns heartbeats off.
        heartbeat: tune_ok.heartbeat,
    })
}

/// Checks a tune-ok value as RabbitMQ does: at least `min` unless 0, and, when the server proposed a limit, neither
/// 0 ("no limit") nor above it. A refusal is 530 on connection.tune, with RabbitMQ's text.
fn negotiated_value(field: &str, client: u32, min: u32, server: u32) -> Result<u32, AmqpError> {
    let refuse = |bound: &str, which: &str, value: u32| {
        let detail = if field == "channel_max" && client == 0 {
            " (no limit)"
        } else {
            ""
        };
        AmqpError::new(
            ReplyCode::NotAllowed,
            format!("negotiated {field} = {client}{detail} is {bound} than the {which} allowed value ({value})"),
        )
        .on(ids::CONNECTION_TUNE)
    };
    if client != 0 && client < min {
        return Err(refuse("lower", "minimum", min));
    }
    if server != 0 && (client == 0 || client > server) {
        return Err(refuse("higher", "maximum", server));
    }
    Ok(client)
}
