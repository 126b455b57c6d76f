//! The config text as parsed TOML that still knows where each key was written, so that every error (a serde error
//! from the typed structs, or a failed validation) can name the line, the key and the section at fault.
//!
//! serde's `deny_unknown_fields` says *which* key is unknown and toml says *where* (a byte span), but neither says in
//! which table; this module finds the key at that span in the parsed document and reports its path.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{ConfigError, Section};

/// A parsed config text, with the name of the file it came from.
pub(super) struct TomlSource<'a> {
    origin: &'a Path,
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

/// One step of the path from the document root to a key.
#[derive(Clone, Copy, Debug)]
enum Segment<'t> {
    /// A key of a table.
    Key(&'t str),
    /// An entry of an array (of values, or of tables such as `[[auth.users]]`); which one is not needed, since the
    /// error's line already points at it.
    Entry,
}

impl<'a> TomlSource<'a> {
    /// Parses `text` as TOML; syntax errors (unclosed brackets, duplicate keys, ...) are reported here.
    pub(super) fn parse(text: &'a str, origin: &'a Path) -> Result<Self, ConfigError> {
        let root = DeTable::parse(text).map_err(|err| ConfigError::Syntax {
            path: origin.to_owned(),
            line: line_at(text, err.span()),
            message: err.message().to_owned(),
        })?;
        Ok(TomlSource { origin, text, root })
    }

    /// Deserializes the document into `T`, turning serde's errors into ones that name the line, key and section.
    pub(super) fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        // Cloning the parsed tree is cheap (strings are borrowed from `text`) and keeps the original for `explain`.
        T::deserialize(toml::de::Deserializer::from(self.root.clone()))
            .map_err(|err| self.explain(&err))
    }

    /// The error for a value that deserialized but failed validation; `span` is the value's, from `toml::Spanned`.
    pub(super) fn invalid(
        &self,
        span: Range<usize>,
        key: &str,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.origin.to_owned(),
            line: line_at(self.text, Some(span)),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// Maps a serde/toml error onto the key it is about. serde's messages are stable ("unknown field `x`, expected
    /// ...", "missing field `x`"); the span points at the unknown key, at the bad value, or at the table missing a key.
    fn explain(&self, err: &toml::de::Error) -> ConfigError {
        let path = self.origin.to_owned();
        let line = line_at(self.text, err.span());
        let message = err.message();
        let mut at = Vec::new();
        let found = err
            .span()
            .is_some_and(|span| find_in_table(self.root.get_ref(), &span, &mut at));
        if !found {
            return ConfigError::Syntax {
                path,
                line,
                message: message.to_owned(),
            };
        }
        if backticked_after(message, "unknown field ").is_some() {
            // The span is the unknown key's own, so the path ends with it.
            if let Some((Segment::Key(key), table)) = at.split_last() {
                return ConfigError::UnknownKey {
                    path,
                    line,
                    key: (*key).to_owned(),
                    section: section_of(table),
                };
            }
        }
        if let Some(key) = backticked_after(message, "missing field ") {
            return ConfigError::MissingKey {
                path,
                line,
                key: key.to_owned(),
                section: section_of(&at),
            };
        }
        // A value of the wrong type or range; name the innermost key (for `vhosts = ["/", 3]`, `vhosts`).
        match at.iter().rev().find_map(|segment| match segment {
            Segment::Key(key) => Some(*key),
            Segment::Entry => None,
        }) {
            Some(key) => ConfigError::InvalidValue {
                path,
                line,
                key: key.to_owned(),
                reason: message.to_owned(),
            },
            None => ConfigError::Syntax {
                path,
                line,
                message: message.to_owned(),
            },
        }
    }
}

/// The 1-based line holding the start of `span`; line 1 when toml gave no position.
fn line_at(text: &str, span: Option<Range<usize>>) -> usize {
    let end = span.map_or(0, |span| span.start.min(text.len()));
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
}

/// Searches `table` for the key, value or table whose span is exactly `span`, leaving its path in `path`.
/// Spans do not nest (a `[server]` table's span is just its header), so the whole tree is searched.
fn find_in_table<'t>(
    table: &'t DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'t>>,
) -> bool {
    for (key, value) in table.iter() {
        path.push(Segment::Key(key.get_ref()));
        if key.span() == *span || find_in_value(value, span, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// Like `find_in_table`, for a value. Children are searched before the value itself: the first entry of an array of
/// tables has the same span (its `[[header]]`) as the array, and the entry is the more precise answer.
fn find_in_value<'t>(
    value: &'t Spanned<DeValue<'_>>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'t>>,
) -> bool {
    let in_children = match value.get_ref() {
        DeValue::Table(table) => find_in_table(table, span, path),
        DeValue::Array(array) => array.iter().any(|entry| {
            path.push(Segment::Entry);
            let found = find_in_value(entry, span, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    in_children || value.span() == *span
}

/// The section a table path names: `[server]`, `[[auth.users]]` for an entry of an array of tables, or top level.
fn section_of(table: &[Segment<'_>]) -> Section {
    let name = table
        .iter()
        .filter_map(|segment| match segment {
            Segment::Key(key) => Some(*key),
            Segment::Entry => None,
        })
        .collect::<Vec<_>>()
        .join(".");
    match table.last() {
        None => Section::TopLevel,
        Some(Segment::Entry) => Section::ArrayEntry(name),
        Some(Segment::Key(_)) => Section::Table(name),
    }
}

/// The name in backticks right after `prefix`: `backticked_after("missing field `name`", "missing field ")`.
fn backticked_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message
        .strip_prefix(prefix)?
        .strip_prefix('`')?
        .split('`')
        .next()
}
