//! Runtime parameters: `/api/parameters[/{component}[/{vhost}[/{name}]]]` and `/api/global-parameters[/{name}]`.
//!
//! RabbitMQ keeps vhost limits, policies and operator policies as runtime parameters of the components
//! `vhost-limits` (named `limits`), `policy` and `operator_policy`, and shows them through these paths too (the
//! whole list leaves policies out, as RabbitMQ's does). Of the plugins' components Warren has `shovel`,
//! `federation-upstream` and `federation-upstream-set` (`broker::parameters`); others are refused as RabbitMQ
//! refuses a component whose plugin is off. Global parameters: Warren has `cluster_name` only, its `[server] cluster_name` setting, read-only here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::vhosts::policy_input;
use super::{blocking, json_body, require_keys, ApiState};
use crate::broker::parameters::PLUGIN_COMPONENTS;
use crate::broker::{AdminError, PolicyKind};

/// The routes of this file.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/parameters", get(list_all))
        .route("/api/parameters/{component}", get(list_component))
        .route(
            "/api/parameters/{component}/{vhost}",
            get(list_component_vhost),
        )
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(get_parameter)
                .put(put_parameter)
                .delete(delete_parameter),
        )
        .route("/api/global-parameters", get(list_global))
        .route(
            "/api/global-parameters/{name}",
            get(get_global).put(put_global).delete(delete_global),
        )
}

/// The components Warren stores, by RabbitMQ's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Component {
    VhostLimits,
    Policy,
    OperatorPolicy,
    /// A plugin component Warren has (`shovel`, `federation-upstream`, `federation-upstream-set`).
    Plugin(&'static str),
}

impl Component {
    const ALL: [Component; 3] = [
        Component::VhostLimits,
        Component::OperatorPolicy,
        Component::Policy,
    ];

    fn named(name: &str) -> Option<Component> {
        Component::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .or_else(|| {
                PLUGIN_COMPONENTS
                    .into_iter()
                    .find(|c| *c == name)
                    .map(Component::Plugin)
            })
    }

    fn name(self) -> &'static str {
        match self {
            Component::VhostLimits => "vhost-limits",
            Component::Policy => "policy",
            Component::OperatorPolicy => "operator_policy",
            Component::Plugin(name) => name,
        }
    }

    fn policy_kind(self) -> Option<PolicyKind> {
        match self {
            Component::VhostLimits | Component::Plugin(_) => None,
            Component::Policy => Some(PolicyKind::Policy),
            Component::OperatorPolicy => Some(PolicyKind::Operator),
        }
    }
}

/// The only name a `vhost-limits` parameter has.
const LIMITS: &str = "limits";

fn parameter_json(component: Component, vhost: &str, name: &str, value: Value) -> Value {
    json!({"value": value, "vhost": vhost, "component": component.name(), "name": name})
}

/// The parameters of `component` in the vhosts `caller` sees (`vhost` only, if given).
fn parameters(
    state: &ApiState,
    caller: &Caller,
    component: Component,
    vhost: Option<&str>,
) -> Vec<Value> {
    let broker = &state.broker;
    if let Component::Plugin(name) = component {
        return broker
            .runtime_parameters(Some(name), vhost)
            .into_iter()
            .filter(|p| caller.sees(broker, &p.vhost))
            .map(|p| parameter_json(component, &p.vhost, &p.name, p.value))
            .collect();
    }
    match component.policy_kind() {
        Some(kind) => broker
            .policies(kind, vhost)
            .into_iter()
            .filter(|p| caller.sees(broker, &p.vhost))
            .map(|p| {
                let value = json!({"pattern": p.pattern, "definition": p.definition,
                                   "priority": p.priority, "apply-to": p.apply_to});
                parameter_json(component, &p.vhost, &p.name, value)
            })
            .collect(),
        None => {
            let vhosts = match vhost {
                Some(v) => vec![v.to_owned()],
                None => broker.vhost_names(),
            };
            vhosts
                .iter()
                .filter(|v| caller.sees(broker, v))
                .filter_map(|v| {
                    let limits = broker.vhost_limits(v)?;
                    (!limits.is_empty())
                        .then(|| parameter_json(component, v, LIMITS, Value::Object(limits)))
                })
                .collect()
        }
    }
}

/// Parameters are for policymakers (administrators included), as in RabbitMQ.
fn require_policymaker(caller: &Caller) -> Result<(), ApiError> {
    match caller.is_policymaker() {
        true => Ok(()),
        false => Err(ApiError::not_authorised("Not policymaker user")),
    }
}

async fn list_all(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_policymaker(&caller)?;
    let items = [Component::VhostLimits, Component::OperatorPolicy]
        .into_iter()
        .chain(PLUGIN_COMPONENTS.into_iter().map(Component::Plugin))
        .flat_map(|c| parameters(&state, &caller, c, None))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn list_component(
    State(state): State<ApiState>,
    Path(component): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_policymaker(&caller)?;
    // An unknown component lists nothing, as RabbitMQ's does.
    let items = Component::named(&component)
        .map(|c| parameters(&state, &caller, c, None))
        .unwrap_or_default();
    Ok(Json(Value::Array(items)))
}

async fn list_component_vhost(
    State(state): State<ApiState>,
    Path((component, vhost)): Path<(String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_policymaker(&caller)?;
    caller.require_vhost(&state.broker, &vhost)?;
    let items = Component::named(&component)
        .map(|c| parameters(&state, &caller, c, Some(&vhost)))
        .unwrap_or_default();
    Ok(Json(Value::Array(items)))
}

async fn get_parameter(
    State(state): State<ApiState>,
    Path((component, vhost, name)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_policymaker(&caller)?;
    caller.require_vhost(&state.broker, &vhost)?;
    let component = Component::named(&component).ok_or_else(ApiError::not_found)?;
    parameters(&state, &caller, component, Some(&vhost))
        .into_iter()
        .find(|p| p["name"] == name.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// RabbitMQ's 400 for a parameter that does not validate.
fn validation_failed(reason: &str) -> ApiError {
    ApiError::bad_request(format!("Validation failed\n\n{reason}\n"))
}

/// Who may change a parameter of `component` in `vhost`: policies need a policymaker with access to the vhost,
/// operator policies and limits an administrator, as their own endpoints ask.
fn require_writer(
    state: &ApiState,
    caller: &Caller,
    component: Component,
    vhost: &str,
) -> Result<(), ApiError> {
    match component {
        Component::Policy | Component::Plugin(_) => {
            caller.require_policymaker(&state.broker, vhost)
        }
        Component::OperatorPolicy | Component::VhostLimits => caller.require_admin(),
    }
}

/// `PUT {"value": ...}`: 201 when new, 204 when replaced.
async fn put_parameter(
    State(state): State<ApiState>,
    Path((component, vhost, name)): Path<(String, String, String)>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    require_policymaker(&caller)?;
    let body = json_body(&body)?;
    require_keys(&body, &["value"])?;
    let Some(component) = Component::named(&component) else {
        return Err(validation_failed(&format!(
            "component {component} not found"
        )));
    };
    require_writer(&state, &caller, component, &vhost)?;
    if !state.broker.has_vhost(&vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    let broker = state.broker.clone();
    if let Component::Plugin(plugin) = component {
        let existed = !broker
            .runtime_parameters(Some(plugin), Some(&vhost))
            .iter()
            .all(|p| p.name != name);
        blocking(move || {
            broker
                .set_parameter(plugin, &vhost, &name, value)
                .map_err(|e| match e {
                    AdminError::Invalid(text) => validation_failed(&text),
                    other => other.into(),
                })
        })
        .await?;
        return Ok(match existed {
            true => StatusCode::NO_CONTENT,
            false => StatusCode::CREATED,
        });
    }
    let existed = match component.policy_kind() {
        Some(kind) => broker.policy(kind, &vhost, &name).is_some(),
        None => broker
            .vhost_limits(&vhost)
            .is_some_and(|limits| !limits.is_empty()),
    };
    match component.policy_kind() {
        Some(kind) => {
            let Value::Object(fields) = value else {
                return Err(validation_failed("the value of a policy must be an object"));
            };
            let input = policy_input(fields)?;
            blocking(move || Ok(broker.set_policy(kind, &vhost, &name, &input)?)).await?;
        }
        None => {
            // RabbitMQ fails this with a 500; Warren says why.
            if name != LIMITS {
                return Err(validation_failed(&format!(
                    "a vhost-limits parameter is named '{LIMITS}', not '{name}'"
                )));
            }
            let Value::Object(limits) = value else {
                return Err(validation_failed(
                    "the value of vhost-limits must be an object",
                ));
            };
            blocking(move || Ok(broker.set_vhost_limits(&vhost, limits)?)).await?;
        }
    }
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    })
}

async fn delete_parameter(
    State(state): State<ApiState>,
    Path((component, vhost, name)): Path<(String, String, String)>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    require_policymaker(&caller)?;
    let component = Component::named(&component).ok_or_else(ApiError::not_found)?;
    require_writer(&state, &caller, component, &vhost)?;
    let broker = state.broker.clone();
    let cleared = match component.policy_kind() {
        Some(kind) => blocking(move || Ok(broker.clear_policy(kind, &vhost, &name)?)).await?,
        None if matches!(component, Component::Plugin(_)) => {
            let plugin = component.name();
            blocking(move || Ok(broker.clear_parameter(plugin, &vhost, &name)?)).await?
        }
        None => {
            let present = name == LIMITS
                && broker
                    .vhost_limits(&vhost)
                    .is_some_and(|limits| !limits.is_empty());
            if present {
                blocking(move || Ok(broker.clear_vhost_limits(&vhost)?)).await?;
            }
            present
        }
    };
    match cleared {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found()),
    }
}

/// Warren's global parameters: `cluster_name`.
fn globals(state: &ApiState) -> Vec<Value> {
    vec![json!({"name": "cluster_name", "value": state.broker.config.server.cluster_name})]
}

async fn list_global(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    Ok(Json(Value::Array(globals(&state))))
}

async fn get_global(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    globals(&state)
        .into_iter()
        .find(|g| g["name"] == name.as_str())
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// Refused: Warren stores no global parameters of its own (RabbitMQ stores any); `cluster_name` is a setting.
fn global_refusal(name: &str) -> ApiError {
    match name {
        "cluster_name" => validation_failed(
            "cluster_name is Warren's [server] cluster_name setting; change it in the configuration file",
        ),
        other => validation_failed(&format!(
            "Warren keeps no global parameter '{other}'; it knows cluster_name only"
        )),
    }
}

async fn put_global(
    Path(name): Path<String>,
    caller: Caller,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    require_keys(&json_body(&body)?, &["value"])?;
    Err(global_refusal(&name))
}

async fn delete_global(Path(name): Path<String>, caller: Caller) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    match name.as_str() {
        "cluster_name" => Err(global_refusal(&name)),
        _ => Err(ApiError::not_found()),
    }
}
