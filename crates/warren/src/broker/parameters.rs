//! Runtime parameters of the plugin components Warren has, `shovel` for now (RabbitMQ's
//! `rabbitmqctl set_parameter`, `/api/parameters/{component}/...`): each value is checked by its component,
//! committed to the definitions store (through the definitions group on a cluster, so every node has it), and
//! handed to the component, which acts on it at once (a shovel starts, restarts with the new definition, or stops
//! when cleared, on the node that runs it). Stored parameters act again at every start.
//!
//! The broker's own components (policies, vhost limits) keep their own paths; `management::parameters` shows
//! both through RabbitMQ's one API.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{AdminError, Broker};
use crate::cluster::MetaCommand;
use crate::federation::upstream::{parse_set, Upstream};
use crate::meta::ParameterDef;
use crate::shovel::{ShovelDefinition, ShovelKey, ShovelStatus, ShovelType};

/// The `shovel` component.
pub const SHOVEL: &str = "shovel";
/// The `federation-upstream` component.
pub const FEDERATION_UPSTREAM: &str = "federation-upstream";
/// The `federation-upstream-set` component.
pub const FEDERATION_UPSTREAM_SET: &str = "federation-upstream-set";

/// The plugin components whose parameters Warren stores.
pub const PLUGIN_COMPONENTS: [&str; 3] = [SHOVEL, FEDERATION_UPSTREAM, FEDERATION_UPSTREAM_SET];

/// A runtime parameter as set.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeParameter {
    /// Its vhost.
    pub vhost: String,
    /// Its component.
    pub component: String,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// The parameters in memory, by (vhost, component, name).
pub(crate) type ParameterTable = BTreeMap<(String, String, String), Value>;

/// Loads the stored parameters at start.
pub(crate) fn table_of(stored: &[ParameterDef]) -> ParameterTable {
    stored
        .iter()
        .map(|p| {
            (
                (p.vhost.clone(), p.component.clone(), p.name.clone()),
                p.value.clone(),
            )
        })
        .collect()
}

/// A value checked by its component.
enum Checked {
    /// A shovel, to start.
    Shovel(Arc<ShovelDefinition>),
    /// An upstream or upstream set, which the federation reconciler picks up.
    Federation,
}

/// Checks a value named `name` for its component; the error is RabbitMQ's validation text.
fn check(component: &str, name: &str, value: &Value) -> Result<Checked, AdminError> {
    let checked = match component {
        SHOVEL => ShovelDefinition::parse(value).map(|d| Checked::Shovel(Arc::new(d))),
        FEDERATION_UPSTREAM => Upstream::parse(name, value).map(|_| Checked::Federation),
        FEDERATION_UPSTREAM_SET => parse_set(value).map(|_| Checked::Federation),
        other => return Err(AdminError::Invalid(format!("component {other} not found"))),
    };
    checked.map_err(AdminError::Invalid)
}

/// Checks a value for its component as [`Broker::set_parameter`] would (definitions imports check first).
pub(crate) fn validate(component: &str, name: &str, value: &Value) -> Result<(), String> {
    match check(component, name, value) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn shovel_key(vhost: &str, name: &str) -> ShovelKey {
    ShovelKey {
        vhost: Some(vhost.to_owned()),
        name: name.to_owned(),
    }
}

impl Broker {
    fn parameter_table(&self) -> std::sync::MutexGuard<'_, ParameterTable> {
        // Changed only after a commit and in one insert or remove: a poisoned lock holds a whole table.
        self.parameters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether parameter `name` of `component` is set in `vhost`.
    fn has_parameter(&self, component: &str, vhost: &str, name: &str) -> bool {
        let key = (vhost.to_owned(), component.to_owned(), name.to_owned());
        self.parameter_table().contains_key(&key)
    }

    /// The parameters of `component` (every plugin component if None) in `vhost` (every vhost if None).
    pub fn runtime_parameters(
        &self,
        component: Option<&str>,
        vhost: Option<&str>,
    ) -> Vec<RuntimeParameter> {
        self.parameter_table()
            .iter()
            .filter(|((v, c, _), _)| {
                component.is_none_or(|want| want == c) && vhost.is_none_or(|want| want == v)
            })
            .map(|((vhost, component, name), value)| RuntimeParameter {
                vhost: vhost.clone(),
                component: component.clone(),
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// Sets a parameter: checked by its component, committed, then acted on (a shovel starts, or restarts with the
    /// new definition, on the node that runs it). On a cluster it goes through the definitions group, so that
    /// every node has it. Blocks on a disk commit; needs the broker's runtime (call it from its blocking pool).
    pub fn set_parameter(
        self: &Arc<Self>,
        component: &str,
        vhost: &str,
        name: &str,
        value: Value,
    ) -> Result<(), AdminError> {
        check(component, name, &value)?;
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.to_owned()));
        }
        if self.cluster().is_none() {
            return self.set_parameter_here(component, vhost, name, value);
        }
        if component != SHOVEL {
            return Err(AdminError::Invalid(format!(
                "{component} parameters are not supported on a cluster node yet (each node would run the \
                 link); use a single node"
            )));
        }
        self.change_definitions_blocking(MetaCommand::SetParameter {
            vhost: vhost.to_owned(),
            component: component.to_owned(),
            name: name.to_owned(),
            value,
        })
    }

    /// [`Self::set_parameter`] on this node alone: what every node of a cluster does with a committed one.
    pub(crate) fn set_parameter_here(
        &self,
        component: &str,
        vhost: &str,
        name: &str,
        value: Value,
    ) -> Result<(), AdminError> {
        let checked = check(component, name, &value)?;
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.to_owned()));
        }
        let def = ParameterDef {
            vhost: vhost.to_owned(),
            component: component.to_owned(),
            name: name.to_owned(),
            value,
        };
        self.stores.definitions.put_parameter(&def)?;
        self.parameter_table().insert(
            (def.vhost.clone(), def.component.clone(), def.name.clone()),
            def.value,
        );
        tracing::info!("{component} '{name}' in vhost '{vhost}' set");
        match checked {
            Checked::Shovel(definition) if self.runs_shovel_here(vhost, name) => self
                .shovels
                .start(shovel_key(vhost, name), ShovelType::Dynamic, definition),
            Checked::Shovel(_) => {
                self.shovels.stop(&shovel_key(vhost, name));
            }
            Checked::Federation => self.wake_federation(),
        }
        Ok(())
    }

    /// Clears a parameter and stops what it started (through the definitions group on a cluster); Ok(false) if
    /// there was none. Blocks on a disk commit; needs the broker's runtime (call it from its blocking pool).
    pub fn clear_parameter(
        self: &Arc<Self>,
        component: &str,
        vhost: &str,
        name: &str,
    ) -> Result<bool, AdminError> {
        if !self.has_parameter(component, vhost, name) {
            return Ok(false);
        }
        if self.cluster().is_none() {
            return self.clear_parameter_here(component, vhost, name);
        }
        self.change_definitions_blocking(MetaCommand::ClearParameter {
            vhost: vhost.to_owned(),
            component: component.to_owned(),
            name: name.to_owned(),
        })?;
        Ok(true)
    }

    /// [`Self::clear_parameter`] on this node alone.
    pub(crate) fn clear_parameter_here(
        &self,
        component: &str,
        vhost: &str,
        name: &str,
    ) -> Result<bool, AdminError> {
        let key = (vhost.to_owned(), component.to_owned(), name.to_owned());
        if !self.parameter_table().contains_key(&key) {
            return Ok(false);
        }
        self.stores
            .definitions
            .remove_parameter(vhost, component, name)?;
        self.parameter_table().remove(&key);
        match component {
            SHOVEL => {
                self.shovels.stop(&shovel_key(vhost, name));
            }
            _ => self.wake_federation(),
        }
        Ok(true)
    }

    /// Starts the stored dynamic shovels and the config file's static ones (at start, once the listeners are
    /// bound, since a shovel may connect to this node).
    pub(crate) fn start_links(self: &Arc<Self>, listener: std::net::SocketAddr) {
        self.start_shovels(listener);
        self.start_federation();
    }

    fn start_shovels(self: &Arc<Self>, listener: std::net::SocketAddr) {
        self.shovels.set_local_addr(listener);
        let weak = Arc::downgrade(self);
        self.shovels.on_complete(Box::new(move |key: &ShovelKey| {
            let (Some(broker), Some(vhost)) = (weak.upgrade(), key.vhost.clone()) else {
                return;
            };
            let name = key.name.clone();
            // RabbitMQ deletes a dynamic shovel's parameter once its src-delete-after is reached.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = broker.clear_parameter(SHOVEL, &vhost, &name) {
                    tracing::warn!("shovel '{name}' is done but its parameter stays: {e}");
                }
            });
        }));
        self.keep_shovels_on_their_runners();
        for parameter in self.runtime_parameters(Some(SHOVEL), None) {
            if !self.runs_shovel_here(&parameter.vhost, &parameter.name) {
                continue;
            }
            match ShovelDefinition::parse(&parameter.value) {
                Ok(definition) => self.shovels.start(
                    shovel_key(&parameter.vhost, &parameter.name),
                    ShovelType::Dynamic,
                    Arc::new(definition),
                ),
                Err(e) => tracing::error!(
                    "stored shovel '{}' in vhost '{}' no longer validates and is not started: {e}",
                    parameter.name,
                    parameter.vhost
                ),
            }
        }
        for shovel in &self.config.shovels {
            self.shovels.start(
                ShovelKey {
                    vhost: None,
                    name: shovel.name.clone(),
                },
                ShovelType::Static,
                Arc::new(shovel.definition.clone()),
            );
        }
    }

    /// Every shovel's status (RabbitMQ's `/api/shovels`, `rabbitmqctl shovel_status`).
    pub fn shovel_statuses(&self) -> Vec<ShovelStatus> {
        self.shovels.statuses()
    }

    /// The definition a shovel runs with (`vhost` None: a static one).
    pub fn shovel_definition(
        &self,
        vhost: Option<&str>,
        name: &str,
    ) -> Option<Arc<ShovelDefinition>> {
        self.shovels.definition(&ShovelKey {
            vhost: vhost.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// Restarts a shovel (`vhost` None: a static one, which only this node runs); false if there is none. On a
    /// cluster a dynamic shovel is restarted through the definitions group by the node that runs it.
    pub async fn restart_shovel(
        self: &Arc<Self>,
        vhost: Option<&str>,
        name: &str,
    ) -> Result<bool, AdminError> {
        let Some(vhost) = vhost.filter(|_| self.cluster().is_some()) else {
            return Ok(self.restart_shovel_here(vhost, name));
        };
        if !self.has_parameter(SHOVEL, vhost, name) {
            return Ok(false);
        }
        self.change_definitions(MetaCommand::RestartShovel {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        })
        .await?;
        Ok(true)
    }

    /// Restarts a shovel this node runs; false if it runs none of that name.
    pub(crate) fn restart_shovel_here(&self, vhost: Option<&str>, name: &str) -> bool {
        self.shovels.restart(&ShovelKey {
            vhost: vhost.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// Stops every shovel (shutdown): their connections close, the sources requeue what was not acked.
    pub fn stop_shovels(&self) {
        self.shovels.stop_all(None);
        self.links.stop_all();
    }
}
