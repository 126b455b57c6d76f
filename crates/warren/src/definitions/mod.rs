//! RabbitMQ definitions JSON: import into and export from the definitions store, offline on a data directory
//! (`warren definitions import|export`) and at boot (`load_definitions`). See `docs/definitions.md`.
//!
//! - `model`: the file's shape as Warren writes it.
//! - `arguments`: JSON values to AMQP field tables and back, as RabbitMQ converts them.
//! - `validate` (with `access` and `topology`): the whole file checked first, every problem reported with its
//!   JSON path; the result is one [`ImportBatch`](crate::meta::ImportBatch) stored in one transaction.
//! - `export`: the store written as a file RabbitMQ imports.

mod access;
pub(crate) mod arguments;
mod export;
mod model;
#[cfg(test)]
mod tests;
mod topology;
mod validate;

use std::path::{Path, PathBuf};

use crate::config::DefinitionsConfig;
use crate::meta::{DefinitionStore, MetaError};
pub(crate) use arguments::{table_from_json, table_to_json};
pub(crate) use model::EMULATED_RABBITMQ_VERSION;
pub use validate::EntryError;

/// Why an import or an export failed. Nothing was stored when an import fails.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    /// The definitions file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The definitions file is not JSON.
    #[error("{path} is not valid JSON: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column.
        error: serde_json::Error,
    },
    /// Entries of the file cannot be imported; nothing was imported.
    #[error(
        "{} cannot be imported ({} problem(s); nothing was imported):\n  {}",
        .path.display(),
        .errors.len(),
        .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, with its JSON path.
        errors: Vec<EntryError>,
    },
    /// A running broker holds the data directory.
    #[error("the data directory {0} is in use (a running broker holds its definitions database); stop it first")]
    InUse(PathBuf),
    /// The data directory has no definitions to export.
    #[error("no definitions database in {0} (has a broker run on this data directory?)")]
    NoDatabase(PathBuf),
    /// The definitions store failed.
    #[error(transparent)]
    Store(#[from] MetaError),
    /// The export could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Counts of what was stored: users, vhosts, permissions, topic permissions, policies (and operator
    /// policies), exchanges, queues, bindings.
    pub stored: Vec<(&'static str, usize)>,
    /// Entries of the file stored already as they are.
    pub unchanged: usize,
    /// Entries left out as RabbitMQ leaves them out, and settings taken from elsewhere, each with its path.
    pub notes: Vec<String>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: Vec<String> = self
            .stored
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        write!(
            f,
            "imported {}; {} already stored as they are",
            counts.join(", "),
            self.unchanged
        )?;
        for note in &self.notes {
            write!(f, "\n  {note}")?;
        }
        Ok(())
    }
}

/// The definitions database of a data directory.
fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("definitions.redb")
}

/// Opens the definitions database of `data_dir` for an offline tool; a running broker's lock is reported as such.
fn open_offline(data_dir: &Path) -> Result<DefinitionStore, DefinitionsError> {
    DefinitionStore::open(&database_path(data_dir)).map_err(|e| match e {
        MetaError::Open(redb::DatabaseError::DatabaseAlreadyOpen) => {
            DefinitionsError::InUse(data_dir.to_path_buf())
        }
        other => DefinitionsError::Store(other),
    })
}

/// `warren definitions import FILE`: imports `file` (`-` for standard input) into the data directory `data_dir`,
/// creating it if needed, while no broker runs on it.
pub fn import_offline(data_dir: &Path, file: &Path) -> Result<ImportReport, DefinitionsError> {
    let text = read_file(file)?;
    std::fs::create_dir_all(data_dir).map_err(|source| DefinitionsError::Write {
        path: data_dir.to_path_buf(),
        source,
    })?;
    import_text(&open_offline(data_dir)?, file, &text, None)
}

/// Imports the `load_definitions` file of `config`, if any, into `store` (at start, before the store is loaded);
/// with `skip_if_unchanged`, not if it is the file imported last.
pub(crate) fn load_at_start(
    store: &DefinitionStore,
    config: &DefinitionsConfig,
) -> Result<(), DefinitionsError> {
    let Some(file) = &config.load_definitions else {
        return Ok(());
    };
    if file.is_dir() {
        return Err(DefinitionsError::Read {
            path: file.clone(),
            source: std::io::Error::other("a directory; Warren imports one definitions file"),
        });
    }
    let text = read_file(file)?;
    let hash = content_hash(&text);
    if config.skip_if_unchanged && store.imported_hash()? == Some(hash) {
        tracing::info!(
            "load_definitions: {} is unchanged since it was last imported; skipped",
            file.display()
        );
        return Ok(());
    }
    let report = import_text(store, file, &text, Some(hash))?;
    tracing::info!("load_definitions: {}: {report}", file.display());
    Ok(())
}

/// The first 8 bytes of the SHA-256 of `text`.
fn content_hash(text: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn read_file(file: &Path) -> Result<String, DefinitionsError> {
    let read = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    read.map_err(|source| DefinitionsError::Read {
        path: file.to_path_buf(),
        source,
    })
}

/// Checks `text` (the content of `file`) whole against the store, then stores it in one transaction.
fn import_text(
    store: &DefinitionStore,
    file: &Path,
    text: &str,
    content_hash: Option<u64>,
) -> Result<ImportReport, DefinitionsError> {
    // RabbitMQ strips a byte order mark and takes an empty file as no definitions.
    let text = text.trim_start_matches('\u{feff}');
    let json: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_str(text).map_err(|error| DefinitionsError::Json {
            path: file.to_path_buf(),
            error,
        })?
    };
    let stored = store.load()?;
    let plan = validate::check(&json, &stored).map_err(|errors| DefinitionsError::Invalid {
        path: file.to_path_buf(),
        errors,
    })?;
    let mut plan = plan;
    // Nothing new (the same file again): no commit at all, so a start with load_definitions writes nothing.
    if !plan.batch.is_empty() || (content_hash.is_some() && store.imported_hash()? != content_hash)
    {
        plan.batch.content_hash = content_hash;
        store.import(&plan.batch)?;
    }
    let b = &plan.batch;
    Ok(ImportReport {
        stored: vec![
            ("users", b.users.len()),
            ("vhosts", b.vhosts.len()),
            ("permissions", b.permissions.len()),
            ("topic permissions", b.topic_permissions.len()),
            ("policies", b.policies.len()),
            ("exchanges", b.exchanges.len()),
            ("queues", b.queues.len()),
            ("bindings", b.bindings.len()),
        ],
        unchanged: plan.unchanged,
        notes: plan.notes,
    })
}

/// The definitions of `stored` as a RabbitMQ definitions file (the management API's `GET /api/definitions`).
pub(crate) fn export_json(
    stored: &crate::meta::Definitions,
) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(export::export(stored))
}

/// Checks the definitions file `json` whole against `stored`; returns what to apply, or every problem found
/// (the management API's `POST /api/definitions`, which applies the batch to the running broker).
pub(crate) fn check_import(
    json: &serde_json::Value,
    stored: &crate::meta::Definitions,
) -> Result<crate::meta::ImportBatch, Vec<EntryError>> {
    validate::check(json, stored).map(|plan| plan.batch)
}

/// `warren definitions export FILE`: writes the definitions of the data directory `data_dir` to `file` (`-` for
/// standard output), while no broker runs on it.
pub fn export_offline(data_dir: &Path, file: &Path) -> Result<(), DefinitionsError> {
    if !database_path(data_dir).exists() {
        return Err(DefinitionsError::NoDatabase(data_dir.to_path_buf()));
    }
    let stored = open_offline(data_dir)?.load()?;
    let mut text = serde_json::to_string_pretty(&export::export(&stored)).map_err(|e| {
        DefinitionsError::Write {
            path: file.to_path_buf(),
            source: std::io::Error::other(e),
        }
    })?;
    text.push('\n');
    let written = if file == Path::new("-") {
        use std::io::Write;
        std::io::stdout().write_all(text.as_bytes())
    } else {
        std::fs::write(file, text)
    };
    written.map_err(|source| DefinitionsError::Write {
        path: file.to_path_buf(),
        source,
    })
}
