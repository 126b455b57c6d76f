//! Compatibility profiles: the defaults that differ between RabbitMQ series, chosen with one setting
//! (`[server] compatibility = "3.13" | "4.x"`), and RabbitMQ's deprecated-feature permits that override them
//! (`[deprecated_features]`, rabbitmq.conf's `deprecated_features.permit.*`). Each difference, with the RabbitMQ
//! source it follows, is listed in docs/compatibility.md ("Compatibility profiles").

use std::fmt;
use std::str::FromStr;

/// The RabbitMQ series whose defaults Warren takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compatibility {
    /// RabbitMQ 3.13 (the default): 128 MiB messages, no quorum delivery limit unless set, global QoS and transient
    /// non-exclusive queues permitted.
    #[default]
    RabbitMq3_13,
    /// RabbitMQ 4.x as of 4.3: 16 MiB messages, quorum queues redeliver a message at most 20 times unless told
    /// otherwise, `global_qos` and `transient_nonexcl_queues` denied by default.
    RabbitMq4,
}

impl Compatibility {
    /// The default `max_message_size` (RabbitMQ's `rabbit` application default of the series).
    pub fn max_message_size(self) -> u32 {
        match self {
            Compatibility::RabbitMq3_13 => 134_217_728,
            Compatibility::RabbitMq4 => 16_777_216,
        }
    }

    /// The delivery limit of a quorum queue whose arguments and policies set none (`?DEFAULT_DELIVERY_LIMIT` in
    /// 4.x's `rabbit_quorum_queue`); None: unlimited.
    pub fn quorum_delivery_limit(self) -> Option<u64> {
        match self {
            Compatibility::RabbitMq3_13 => None,
            Compatibility::RabbitMq4 => Some(20),
        }
    }

    /// Which deprecated features the series permits by default.
    pub fn deprecated_features(self) -> DeprecatedFeatures {
        let permitted = self == Compatibility::RabbitMq3_13;
        DeprecatedFeatures {
            global_qos: permitted,
            transient_nonexcl_queues: permitted,
        }
    }
}

impl FromStr for Compatibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "3.13" => Ok(Compatibility::RabbitMq3_13),
            "4.x" | "4" => Ok(Compatibility::RabbitMq4),
            other => Err(format!(
                "`{other}` is not a profile; use \"3.13\" or \"4.x\""
            )),
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compatibility::RabbitMq3_13 => "3.13",
            Compatibility::RabbitMq4 => "4.x",
        })
    }
}

/// RabbitMQ's deprecated features Warren implements, each true while permitted (`deprecated_features.permit.NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeprecatedFeatures {
    /// `global_qos`: `basic.qos` with `global` set limits the whole channel. When denied, RabbitMQ 4 takes such a
    /// `basic.qos` as a per-consumer one (`global` cleared) and answers qos-ok.
    pub global_qos: bool,
    /// `transient_nonexcl_queues`: declaring a queue neither durable nor exclusive. When denied, RabbitMQ 4 closes
    /// the connection with 541 INTERNAL_ERROR and the feature's warning.
    pub transient_nonexcl_queues: bool,
}

impl Default for DeprecatedFeatures {
    fn default() -> Self {
        Compatibility::default().deprecated_features()
    }
}

impl DeprecatedFeatures {
    /// The text RabbitMQ gives when a feature denied by default is used (`rabbit_deprecated_features`'s generated
    /// `when_denied` message).
    pub fn denied_text(feature: &str) -> String {
        format!(
            "Feature `{feature}` is deprecated.\nBy default, this feature is not permitted anymore.\nThe feature will \
             be removed from a future major RabbitMQ version, regardless of the configuration; actual version to be \
             determined.\nTo continue using this feature when it is not permitted by default, set the following \
             parameter in your configuration:\n    \"deprecated_features.permit.{feature} = true\""
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_and_print_by_their_series() {
        for name in ["3.13", "4.x"] {
            assert_eq!(name.parse::<Compatibility>().unwrap().to_string(), name);
        }
        assert!("3.12".parse::<Compatibility>().is_err());
    }

    #[test]
    fn the_4x_profile_takes_rabbitmq_4s_defaults() {
        let four = Compatibility::RabbitMq4;
        assert_eq!(four.max_message_size(), 16 << 20);
        assert_eq!(four.quorum_delivery_limit(), Some(20));
        assert!(!four.deprecated_features().global_qos);
        assert!(!four.deprecated_features().transient_nonexcl_queues);
        let three = Compatibility::RabbitMq3_13;
        assert_eq!(three.max_message_size(), 128 << 20);
        assert_eq!(three.quorum_delivery_limit(), None);
        assert_eq!(three.deprecated_features(), DeprecatedFeatures::default());
    }
}
