//! What the first start (an empty definitions store) creates, as RabbitMQ does on a fresh node: the default vhost,
//! the default user (tagged `administrator`, with `default_permissions` on the default vhost) and the config
//! file's users, with the `RABBITMQ_DEFAULT_USER`, `RABBITMQ_DEFAULT_PASS` and `RABBITMQ_DEFAULT_VHOST`
//! environment variables over the file's keys. Later starts use what is stored.

use crate::auth::users::{PermissionDefinition, UserDefinition};
use crate::config::AuthConfig;
use crate::meta::VhostDef;

/// The definitions a first start stores.
#[derive(Debug, Default)]
pub(crate) struct Seed {
    /// The vhosts: the default one first, then those the config's users name.
    pub(crate) vhosts: Vec<VhostDef>,
    /// The users, passwords hashed.
    pub(crate) users: Vec<UserDefinition>,
    /// Their permissions.
    pub(crate) permissions: Vec<PermissionDefinition>,
}

/// The seed for `auth`, reading the environment through `env` (a parameter, so tests need not set variables of
/// the whole test process).
pub(crate) fn first_start(auth: &AuthConfig, env: &dyn Fn(&str) -> Option<String>) -> Seed {
    let default_vhost = env("RABBITMQ_DEFAULT_VHOST")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| auth.default_vhost.clone());
    let mut default_user = auth
        .default_user
        .as_ref()
        .map(|u| (u.name.clone(), u.password.clone()));
    if let Some(name) = env("RABBITMQ_DEFAULT_USER").filter(|v| !v.is_empty()) {
        let password = default_user.map_or_else(|| "guest".to_owned(), |(_, p)| p);
        default_user = Some((name, password));
    }
    if let Some(password) = env("RABBITMQ_DEFAULT_PASS") {
        let name = default_user.map_or_else(|| "guest".to_owned(), |(n, _)| n);
        default_user = Some((name, password));
    }
    let mut seed = Seed::default();
    add_vhost(&mut seed, &default_vhost);
    // A listed user of the default user's name is that user: the list's password and vhosts win.
    let listed = |name: &str| auth.users.iter().any(|u| u.name == name);
    if let Some((name, password)) = default_user.filter(|(n, _)| !listed(n)) {
        let p = &auth.default_permissions;
        seed.permissions.push(PermissionDefinition {
            user: name.clone(),
            vhost: default_vhost.clone(),
            configure: p.configure.clone(),
            write: p.write.clone(),
            read: p.read.clone(),
        });
        seed.users.push(UserDefinition::with_password(
            &name,
            &password,
            vec!["administrator".to_owned()],
        ));
    }
    for user in &auth.users {
        seed.users.push(UserDefinition::with_password(
            &user.name,
            &user.password,
            Vec::new(),
        ));
        for vhost in &user.vhosts {
            add_vhost(&mut seed, vhost);
            seed.permissions.push(PermissionDefinition {
                user: user.name.clone(),
                vhost: vhost.clone(),
                configure: ".*".to_owned(),
                write: ".*".to_owned(),
                read: ".*".to_owned(),
            });
        }
    }
    seed
}

/// Adds the vhost `name` unless the seed has it.
fn add_vhost(seed: &mut Seed, name: &str) {
    if !seed.vhosts.iter().any(|v| v.name == name) {
        seed.vhosts.push(VhostDef {
            name: name.to_owned(),
            ..VhostDef::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::verify_password;
    use crate::auth::password::HashingAlgorithm;
    use crate::config::{DefaultUser, UserConfig};

    fn names(seed: &Seed) -> Vec<&str> {
        seed.users.iter().map(|u| u.name.as_str()).collect()
    }

    #[test]
    fn defaults_create_guest_as_administrator_on_slash() {
        let seed = first_start(&AuthConfig::default(), &|_: &str| None);
        assert_eq!(names(&seed), vec!["guest"]);
        assert_eq!(
            seed.vhosts,
            vec![VhostDef {
                name: "/".into(),
                ..VhostDef::default()
            }]
        );
        let guest = &seed.users[0];
        assert_eq!(guest.tags, vec!["administrator".to_owned()]);
        assert!(verify_password(
            HashingAlgorithm::Sha256,
            &guest.password_hash,
            "guest"
        ));
        assert!(!guest.password_hash.contains("guest"));
        assert_eq!(seed.permissions[0].configure, ".*");
        assert_eq!(seed.permissions[0].vhost, "/");
    }

    #[test]
    fn environment_variables_override_the_file() {
        let env = |key: &str| match key {
            "RABBITMQ_DEFAULT_USER" => Some("ops".to_owned()),
            "RABBITMQ_DEFAULT_PASS" => Some("s3cret".to_owned()),
            "RABBITMQ_DEFAULT_VHOST" => Some("prod".to_owned()),
            _ => None,
        };
        let seed = first_start(&AuthConfig::default(), &env);
        assert_eq!(names(&seed), vec!["ops"]);
        assert!(verify_password(
            HashingAlgorithm::Sha256,
            &seed.users[0].password_hash,
            "s3cret"
        ));
        assert_eq!(
            seed.vhosts,
            vec![VhostDef {
                name: "prod".into(),
                ..VhostDef::default()
            }]
        );
        assert_eq!(seed.permissions[0].vhost, "prod");
    }

    #[test]
    fn listed_users_get_full_permissions_on_their_vhosts() {
        let auth = AuthConfig {
            default_user: Some(DefaultUser {
                name: "admin".into(),
                password: "pw".into(),
            }),
            users: vec![UserConfig {
                name: "app".into(),
                password: "app".into(),
                vhosts: vec!["a".into(), "/".into()],
            }],
            ..AuthConfig::default()
        };
        let seed = first_start(&auth, &|_: &str| None);
        assert_eq!(names(&seed), vec!["admin", "app"]);
        let vhosts: Vec<&str> = seed.vhosts.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(vhosts, vec!["/", "a"]);
        assert_eq!(seed.permissions.len(), 3);
        assert!(seed.users[1].tags.is_empty());
        let none = AuthConfig {
            default_user: None,
            ..auth
        };
        assert_eq!(names(&first_start(&none, &|_: &str| None)), vec!["app"]);
    }
}
