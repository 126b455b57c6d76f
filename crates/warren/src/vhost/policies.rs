//! A vhost's policies and operator policies: setting, clearing and listing them, storing them in the definitions
//! store, and applying them to the vhost's queues and exchanges, at declare and at once to every running one when
//! they change (no redeclare; clients that redeclare with their original arguments still match).

use std::sync::Arc;

use super::Vhost;
use crate::exchange::Exchange;
use crate::meta::PolicyDef;
use crate::policy::{Policy, PolicyError, PolicyInfo, PolicyInput, PolicyKind};
use crate::queue::arguments::QueueArguments;
use crate::queue::settings::QueueSettings;

impl Vhost {
    /// Sets (adds or replaces) a policy, stores it, and applies it to the queues and exchanges it now matches.
    /// Commits to the definitions store, unless the same policy is stored already (the config file's policies at
    /// every start, which must not need disk space): call it off the async workers.
    pub(crate) fn set_policy(&self, policy: Policy) -> Result<(), PolicyError> {
        let _topology = self.lock_topology();
        let stored = self
            .policies
            .load()
            .get(policy.kind, &policy.name)
            .is_some_and(|p| p.same_as(&policy));
        if let (Some(stores), false) = (&self.stores, stored) {
            stores.definitions.put_policy(&PolicyDef {
                operator: policy.kind == PolicyKind::Operator,
                vhost: self.name.to_string(),
                name: policy.name.to_string(),
                pattern: policy.pattern.clone(),
                apply_to: policy.apply_to.as_str().to_owned(),
                priority: policy.priority,
                definition: policy.definition.clone(),
            })?;
        }
        tracing::info!(
            "set {} '{}' matching {} names in vhost '{}' with pattern '{}'",
            kind_name(policy.kind),
            policy.name,
            policy.apply_to.as_str(),
            self.name,
            policy.pattern
        );
        let set = self.policies.load().with(Arc::new(policy));
        self.policies.store(Arc::new(set));
        self.apply_policies();
        Ok(())
    }

    /// Clears a policy; false if there was none of that name. Commits to the definitions store: call it off the
    /// async workers.
    pub(crate) fn clear_policy(&self, kind: PolicyKind, name: &str) -> Result<bool, PolicyError> {
        let _topology = self.lock_topology();
        let current = self.policies.load_full();
        if current.get(kind, name).is_none() {
            return Ok(false);
        }
        if let Some(stores) = &self.stores {
            stores
                .definitions
                .remove_policy(kind == PolicyKind::Operator, &self.name, name)?;
        }
        tracing::info!(
            "cleared {} '{name}' in vhost '{}'",
            kind_name(kind),
            self.name
        );
        self.policies.store(Arc::new(current.without(kind, name)));
        self.apply_policies();
        Ok(true)
    }

    /// The policies of `kind`, highest priority first.
    pub(crate) fn policies(&self, kind: PolicyKind) -> Vec<PolicyInfo> {
        self.policies
            .load()
            .list(kind)
            .iter()
            .map(|p| p.info())
            .collect()
    }

    /// The policy of `kind` named `name`, as set.
    pub(crate) fn policy(&self, kind: PolicyKind, name: &str) -> Option<PolicyInfo> {
        self.policies.load().get(kind, name).map(|p| p.info())
    }

    /// Adds the stored policies of this vhost (at start, before its queues are restored). One that no longer
    /// passes the checks is logged and left out.
    pub(super) fn restore_policies(&self, stored: &[PolicyDef]) {
        let mut set = (**self.policies.load()).clone();
        for def in stored.iter().filter(|d| *d.vhost == *self.name) {
            let kind = match def.operator {
                true => PolicyKind::Operator,
                false => PolicyKind::Policy,
            };
            let input = PolicyInput {
                pattern: def.pattern.clone(),
                apply_to: Some(def.apply_to.clone()),
                priority: Some(def.priority.into()),
                definition: def.definition.clone(),
            };
            match Policy::parse(kind, &self.name, &def.name, &input) {
                Ok(policy) => set = set.with(Arc::new(policy)),
                Err(error) => tracing::error!(
                    "stored {} '{}' in vhost '{}' is no longer valid ({error}); not applied",
                    kind_name(kind),
                    def.name,
                    self.name
                ),
            }
        }
        self.policies.store(Arc::new(set));
        for x in self.exchanges.iter() {
            self.apply_exchange_policy(x.value());
        }
    }

    /// The settings a queue named `name` with `args` applies under the current policies.
    pub(super) fn queue_settings(&self, name: &str, args: &QueueArguments) -> QueueSettings {
        let matched = self.policies.load().for_queue(name, args.queue_type);
        let (policy, operator) = matched.names();
        let mut settings =
            QueueSettings::resolve(args, &matched.queue_overrides(), policy, operator);
        self.queue_defaults.complete(args, &mut settings);
        settings
    }

    /// Points `x` at the alternate exchange its policy names, if any.
    pub(super) fn apply_exchange_policy(&self, x: &Exchange) {
        let alternate = self
            .policies
            .load()
            .for_exchange(&x.name)
            .alternate_exchange();
        x.policy_alternate.store(alternate.map(Arc::new));
    }

    /// Re-resolves every queue and exchange after a policy change. A queue whose settings changed applies them at
    /// once; the others are left alone.
    fn apply_policies(&self) {
        for queue in self.queues.iter() {
            let settings = self.queue_settings(queue.name(), &queue.spec.args);
            queue.reconfigure(settings);
        }
        for x in self.exchanges.iter() {
            self.apply_exchange_policy(x.value());
        }
    }
}

fn kind_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Policy => "policy",
        PolicyKind::Operator => "operator policy",
    }
}
