//! Choosing a small corpus out of what the proxies saved.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::{sorted_entries, write, write_seeds};

/// What `select` keeps: inputs per method id, per method id that carries a table, per property-flags value, and
/// streams in all.
const SELECT_PER_METHOD: usize = 1;
const SELECT_PER_METHOD_WITH_TABLE: usize = 2;
const SELECT_PER_FLAGS: usize = 1;
const SELECT_STREAMS: usize = 8;

/// Reads `LABEL-KEY-HASH` file names (a label may hold dashes, a key does not): (label, key).
fn label_and_key(name: &str) -> Option<(&str, &str)> {
    let (rest, _hash) = name.rsplit_once('-')?;
    rest.rsplit_once('-')
}

pub(crate) fn select(raw: &Path, out: &Path) -> Result<(), String> {
    for target in ["frames", "methods", "content"] {
        // Group by key; within a group take one input per client in turn, so the kept ones differ in origin.
        let mut groups: std::collections::BTreeMap<String, Vec<(String, PathBuf)>> =
            Default::default();
        for path in sorted_entries(&raw.join(target)) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some((label, key)) = label_and_key(&name) else {
                continue;
            };
            if label.starts_with("deep") {
                continue;
            }
            let key = if target == "frames" {
                "stream".to_string()
            } else {
                key.to_string()
            };
            groups
                .entry(key)
                .or_default()
                .push((label.to_string(), path));
        }
        let mut used: HashMap<String, usize> = HashMap::new();
        for (key, mut inputs) in groups {
            let cap = match target {
                "frames" => SELECT_STREAMS,
                "content" => SELECT_PER_FLAGS,
                _ if matches!(
                    key.as_str(),
                    "10.11" | "40.10" | "40.30" | "40.40" | "50.10" | "50.20" | "50.50" | "60.20"
                ) =>
                {
                    SELECT_PER_METHOD_WITH_TABLE
                }
                _ => SELECT_PER_METHOD,
            };
            // Within a group no client twice while another is left; across groups the least used client first.
            let mut kept = Vec::new();
            let mut labels_seen = HashSet::new();
            while kept.len() < cap && !inputs.is_empty() {
                let unseen = |l: &String| !labels_seen.contains(l);
                let pool = if inputs.iter().any(|(l, _)| unseen(l)) {
                    inputs
                        .iter()
                        .enumerate()
                        .filter(|(_, (l, _))| unseen(l))
                        .collect::<Vec<_>>()
                } else {
                    inputs.iter().enumerate().collect()
                };
                let pick = pool
                    .iter()
                    .min_by_key(|(_, (l, _))| used.get(l).copied().unwrap_or(0))
                    .map_or(0, |(i, _)| *i);
                let (label, path) = inputs.remove(pick);
                *used.entry(label.clone()).or_insert(0usize) += 1;
                labels_seen.insert(label);
                kept.push(path);
            }
            for path in kept {
                let name = path
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_default();
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                write(&out.join(target).join(name), &bytes)?;
            }
        }
    }
    for path in sorted_entries(&raw.join("store")) {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(name) = path.file_name() {
            write(&out.join("store").join(name), &bytes)?;
        }
    }
    write_seeds(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_client_and_key() {
        assert_eq!(
            label_and_key("python-more-60.40-00ff"),
            Some(("python-more", "60.40"))
        );
        assert_eq!(label_and_key("c-stream-1234"), Some(("c", "stream")));
        assert_eq!(label_and_key("nodash"), None);
    }
}
