//! Definitions: `export_definitions` and `import_definitions`, through `GET`/`POST /api/definitions` (the whole
//! node: users, vhosts, permissions, policies, queues, exchanges, bindings), in RabbitMQ's JSON.

use std::io::{Read, Write};
use std::path::Path;

use crate::ctl::error::CtlError;
use crate::ctl::Ctx;

/// Whether `path` means standard input or output.
fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// `export_definitions <file | ->`: the node's definitions JSON, unchanged, to the file or to standard output.
pub(super) fn export(ctx: &Ctx, path: &Path) -> Result<(), CtlError> {
    if !is_stdio(path) {
        ctx.banner(&format!(
            "Exporting definitions in JSON to a file at \"{}\" ...",
            path.display()
        ));
    }
    let json = ctx.api.get_text(&["definitions"])?;
    if is_stdio(path) {
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(json.as_bytes())
            .and_then(|()| stdout.write_all(b"\n"))
            .map_err(|error| {
                CtlError::Software(format!("cannot write to standard output: {error}"))
            });
    }
    std::fs::write(path, json)
        .map_err(|error| CtlError::Data(format!("cannot write {}: {error}", path.display())))
}

/// `import_definitions [file | -]`: the file (or standard input) is checked to be a JSON object here, then the
/// node imports it; its refusal (a bad entry) is a data error (exit 65).
pub(super) fn import(ctx: &Ctx, path: Option<&Path>) -> Result<(), CtlError> {
    let path = path.filter(|path| !is_stdio(path));
    let text = match path {
        Some(path) => {
            ctx.banner(&format!(
                "Importing definitions in JSON from a file at \"{}\" ...",
                path.display()
            ));
            std::fs::read_to_string(path).map_err(|error| {
                CtlError::Data(format!("cannot read {}: {error}", path.display()))
            })?
        }
        None => {
            ctx.banner("Importing definitions in JSON from standard input ...");
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CtlError::Data(format!("cannot read standard input: {error}")))?;
            text
        }
    };
    let definitions: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| CtlError::Data(format!("the definitions are not valid JSON: {error}")))?;
    if !definitions.is_object() {
        return Err(CtlError::Data(
            "the definitions must be a JSON object, as export_definitions writes".to_owned(),
        ));
    }
    ctx.api.post(&["definitions"], &definitions)?;
    ctx.message("Successfully started definition import. This process is asynchronous and can take some time.");
    Ok(())
}
