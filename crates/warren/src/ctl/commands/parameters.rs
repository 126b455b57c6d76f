//! Runtime parameters: `set_parameter` and `clear_parameter` in a vhost (`-p`). A shovel, a federation upstream
//! and vhost limits are all parameters, of the components `shovel`, `federation-upstream` and `vhost-limits`; the
//! node checks the value for its component, and its refusal (RabbitMQ's "Validation failed") is a data error (exit
//! 65). `list_parameters` is with the other list commands.

use serde_json::{json, Value};

use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// Parses the value argument, any JSON (an upstream set's is an array), as a data error (exit 65) when it is not
/// JSON: the node is not asked to store what it could not read.
fn parameter_value(text: &str) -> Result<Value, CtlError> {
    serde_json::from_str(text).map_err(|error| {
        CtlError::Data(format!(
            "the parameter value is not valid JSON: {error} (got {text})"
        ))
    })
}

/// `set_parameter [-p vhost] <component_name> <name> <value>`.
pub(super) fn set_parameter(
    ctx: &Ctx,
    component: &str,
    name: &str,
    value: &str,
) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting runtime parameter \"{name}\" for component \"{component}\" to \"{value}\" in vhost \"{}\" ...",
        ctx.vhost
    ));
    let value = parameter_value(value)?;
    ctx.api
        .put(
            &["parameters", component, &ctx.vhost, name],
            &json!({ "value": value }),
        )
        .or_missing(|| CtlError::no_such_vhost(&ctx.vhost))
}

/// `clear_parameter [-p vhost] <component_name> <name>`: a parameter that is not there (or a component the node
/// does not have) is rabbitmqctl's "Parameter does not exist".
pub(super) fn clear_parameter(ctx: &Ctx, component: &str, name: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Clearing runtime parameter \"{name}\" for component \"{component}\" on vhost \"{}\" ...",
        ctx.vhost
    ));
    ctx.api
        .delete(&["parameters", component, &ctx.vhost, name], &[], &[])
        .or_missing(|| {
            ctx.missing_in_vhost(|| {
                CtlError::Data(format!(
                    "Parameter does not exist: no parameter \"{name}\" of component \"{component}\" in vhost \"{}\"",
                    ctx.vhost
                ))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_any_json_and_nothing_else() {
        assert_eq!(
            parameter_value(r#"{"src-queue": "a"}"#).map_err(|e| e.exit_code()),
            Ok(json!({"src-queue": "a"}))
        );
        assert_eq!(
            parameter_value(r#"[{"upstream": "u1"}]"#).map_err(|e| e.exit_code()),
            Ok(json!([{"upstream": "u1"}]))
        );
        assert_eq!(
            parameter_value("{src-queue: a}").map_err(|e| e.exit_code()),
            Err(65)
        );
    }
}
