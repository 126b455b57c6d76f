//! Users: `add_user`, `delete_user`, `change_password`, `set_user_tags`, `set_user_limits`.

use std::io::BufRead;

use serde_json::{json, Value};

use super::json_object;
use crate::auth::password::{hash_password, HashingAlgorithm};
use crate::ctl::api::OrMissing;
use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// The password given, or one line read from standard input (rabbitmqctl prompts for it the same way).
fn password_or_stdin(password: Option<&str>) -> Result<String, CtlError> {
    if let Some(password) = password {
        return Ok(password.to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| {
            CtlError::Data(format!(
                "cannot read the password from standard input: {error}"
            ))
        })?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(CtlError::Usage(
            "no password given, and none on standard input".to_owned(),
        ));
    }
    Ok(password)
}

/// A new password as the API stores it: RabbitMQ's default hash (salted SHA-256, base64), computed here so the
/// password itself never crosses the wire.
fn password_fields(password: &str) -> Value {
    json!({
        "password_hash": hash_password(HashingAlgorithm::Sha256, password),
        "hashing_algorithm": HashingAlgorithm::Sha256.name(),
    })
}

/// `add_user <username> [<password>]`: refuses an existing user (exit 70, as rabbitmqctl) rather than replace it,
/// which is what a PUT to the API would do.
pub(super) fn add_user(ctx: &Ctx, username: &str, password: Option<&str>) -> Result<(), CtlError> {
    let password = password_or_stdin(password)?;
    ctx.banner(&format!("Adding user \"{username}\" ..."));
    match ctx.api.get(&["users", username]) {
        Ok(_) => {
            return Err(CtlError::Software(format!(
                "User \"{username}\" already exists"
            )))
        }
        Err(crate::ctl::api::ApiError::NotFound) => {}
        Err(error) => return Err(error.into()),
    }
    let mut body = password_fields(&password);
    body["tags"] = json!("");
    ctx.api.put(&["users", username], &body)?;
    ctx.message(
        "Done. Don't forget to grant the user permissions to some virtual hosts! \
         See 'warren ctl help set_permissions' to learn more.",
    );
    Ok(())
}

/// `delete_user <username>`.
pub(super) fn delete_user(ctx: &Ctx, username: &str) -> Result<(), CtlError> {
    ctx.banner(&format!("Deleting user \"{username}\" ..."));
    ctx.api
        .delete(&["users", username], &[], &[])
        .or_missing(|| CtlError::no_such_user(username))
}

/// The user's record as the API has it (`password_hash`, `hashing_algorithm`, `tags`), or "no such user".
fn user_record(ctx: &Ctx, username: &str) -> Result<Value, CtlError> {
    ctx.api
        .get(&["users", username])
        .or_missing(|| CtlError::no_such_user(username))
}

/// Stores `record` back with `changes` applied, keeping the user's `hashing_algorithm`: a user imported with a
/// SHA-512 or MD5 hash would otherwise be stored with its hash marked SHA-256, and could no longer log in.
fn update_user(ctx: &Ctx, username: &str, record: &Value, changes: Value) -> Result<(), CtlError> {
    let mut body = json!({
        "password_hash": record.get("password_hash").cloned().unwrap_or(Value::String(String::new())),
        "tags": tags_text(record.get("tags")),
    });
    if let Some(algorithm) = record.get("hashing_algorithm") {
        body["hashing_algorithm"] = algorithm.clone();
    }
    if let (Some(body), Value::Object(changes)) = (body.as_object_mut(), changes) {
        body.extend(changes);
    }
    ctx.api
        .put(&["users", username], &body)
        .or_missing(|| CtlError::no_such_user(username))
}

/// A user's tags as the API takes them: comma-separated (the API answers with a list, or a string before 3.9).
fn tags_text(tags: Option<&Value>) -> String {
    match tags {
        Some(Value::Array(tags)) => tags
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::String(tags)) => tags.clone(),
        _ => String::new(),
    }
}

/// `change_password <username> [<password>]`: a new hash (SHA-256, the node's default), tags kept.
pub(super) fn change_password(
    ctx: &Ctx,
    username: &str,
    password: Option<&str>,
) -> Result<(), CtlError> {
    let password = password_or_stdin(password)?;
    ctx.banner(&format!("Changing password for user \"{username}\" ..."));
    let record = user_record(ctx, username)?;
    update_user(ctx, username, &record, password_fields(&password))
}

/// `set_user_tags <username> [<tag> ...]`: replaces the tags, keeps the password.
pub(super) fn set_user_tags(ctx: &Ctx, username: &str, tags: &[String]) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting tags for user \"{username}\" to [{}] ...",
        tags.join(", ")
    ));
    let record = user_record(ctx, username)?;
    update_user(ctx, username, &record, json!({ "tags": tags.join(",") }))
}

/// `set_user_limits <username> <definition>`: each of `max-connections` and `max-channels` given is set (a
/// negative value lifts it, as RabbitMQ); any other key is refused before anything is changed.
pub(super) fn set_user_limits(ctx: &Ctx, username: &str, definition: &str) -> Result<(), CtlError> {
    ctx.banner(&format!(
        "Setting user limits to \"{definition}\" for user \"{username}\" ..."
    ));
    let limits = json_object("the user limits", definition)?;
    let limits = super::limits("user", &limits, &["max-connections", "max-channels"])?;
    user_record(ctx, username)?;
    for (name, value) in limits {
        ctx.api
            .put(&["user-limits", username, name], &json!({ "value": value }))
            .or_missing(|| CtlError::no_such_user(username))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sent_comma_separated_whatever_shape_the_api_gave() {
        assert_eq!(
            tags_text(Some(&json!(["administrator", "monitoring"]))),
            "administrator,monitoring"
        );
        assert_eq!(tags_text(Some(&json!("management"))), "management");
        assert_eq!(tags_text(None), "");
    }
}
