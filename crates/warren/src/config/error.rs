//! Why a configuration was refused. Every message starts with `file:line:` so an operator (or an editor) can jump
//! straight to the key at fault, and names that key.

use std::fmt;
use std::path::PathBuf;

/// A configuration that cannot be used. The broker refuses to start with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (missing, unreadable, not UTF-8).
    #[error("{path}: cannot read config file: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML (unclosed bracket, duplicate key, ...).
    #[error("{path}:{line}: invalid TOML: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The line of the fault in that file.
        line: usize,
        /// The TOML parser's description.
        message: String,
    },
    /// A rabbitmq.conf line that is not a `key = value` setting.
    #[error("{path}:{line}: invalid rabbitmq.conf line: {message}")]
    ConfSyntax {
        /// The config file.
        path: PathBuf,
        /// The line of the fault in that file.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A key Warren does not know, most often a typo; refused rather than ignored so the typo is noticed.
    #[error("{path}:{line}: unknown key `{key}` {section}")]
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// The line of the fault in that file.
        line: usize,
        /// The key, dotted below its section.
        key: String,
        /// The table the key is in.
        section: Section,
    },
    /// A key that must be present is not (for example a user's `name`).
    #[error("{path}:{line}: missing key `{key}` {section}")]
    MissingKey {
        /// The config file.
        path: PathBuf,
        /// The line of the fault in that file.
        line: usize,
        /// The key, dotted below its section.
        key: String,
        /// The table the key is in.
        section: Section,
    },
    /// A key holds a value of the wrong type or outside its allowed range.
    #[error("{path}:{line}: key `{key}`: {reason}")]
    InvalidValue {
        /// The config file.
        path: PathBuf,
        /// The line of the fault in that file.
        line: usize,
        /// The key, dotted below its section.
        key: String,
        /// What is wrong with the value, and what is allowed.
        reason: String,
    },
}

impl ConfigError {
    /// The same error with its line mapped through `lines` (line `n` becomes `lines[n - 1]`): for a document
    /// generated from another file, such as a rabbitmq.conf translated into TOML, so the error names the line the
    /// operator wrote. A line with no mapping (0) is left as it is.
    pub(super) fn at_lines(mut self, lines: &[usize]) -> ConfigError {
        if let ConfigError::Syntax { line, .. }
        | ConfigError::UnknownKey { line, .. }
        | ConfigError::MissingKey { line, .. }
        | ConfigError::InvalidValue { line, .. } = &mut self
        {
            if let Some(&original) = line.checked_sub(1).and_then(|i| lines.get(i)) {
                if original > 0 {
                    *line = original;
                }
            }
        }
        self
    }
}

/// The table a key sits in, as the operator wrote it in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// Outside any `[section]`.
    TopLevel,
    /// A plain table such as `[server]`; the name is dotted for nested tables.
    Table(String),
    /// An entry of an array of tables such as `[[auth.users]]`.
    ArrayEntry(String),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::TopLevel => f.write_str("at top level"),
            Section::Table(name) => write!(f, "in [{name}]"),
            Section::ArrayEntry(name) => write!(f, "in [[{name}]]"),
        }
    }
}
