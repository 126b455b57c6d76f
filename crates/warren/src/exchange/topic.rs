//! The topic exchange's word trie: binding keys compiled into a trie at table construction, matched against a
//! routing key by walking the trie with a set of live nodes (no backtracking, no allocation per word).
//!
//! Rules (RabbitMQ's, from `rabbit_db_topic_exchange`): a key is split on every `.` into words, and the empty key
//! has *zero* words, so `"a..b"` is `["a", "", "b"]`, `"."` is `["", ""]` and `""` is `[]`. In a binding key the
//! whole word `*` matches exactly one word (possibly an empty one) and the whole word `#` matches zero or more
//! words; `*` or `#` inside a longer word (`a*`) is literal. Matching is byte-exact and case-sensitive.

use std::collections::HashMap;
use std::mem;

/// Index of the root node; every trie has one.
const ROOT: usize = 0;

/// Splits a routing or binding key into words the way RabbitMQ does: `""` has no words, otherwise every `.`
/// separates two (possibly empty) words.
pub(crate) fn words(key: &str) -> impl Iterator<Item = &str> {
    // `str::split` yields one empty word for "", RabbitMQ yields none; skipping the whole iterator for the empty
    // key is the only difference.
    key.split('.')
        .take(if key.is_empty() { 0 } else { usize::MAX })
}

/// One trie node: a prefix of one or more binding keys.
#[derive(Debug, Default)]
struct TrieNode {
    /// Children reached by a literal word.
    literal: HashMap<Box<str>, usize>,
    /// Child reached by `*` (exactly one word).
    star: Option<usize>,
    /// Child reached by `#` (zero or more words); that child has `self_loop` set.
    hash: Option<usize>,
    /// Set on nodes reached by `#`: such a node may consume any number of further words and stay where it is.
    self_loop: bool,
    /// Targets (caller-chosen ids, here destination indices) of the binding keys that end at this node; sorted,
    /// without duplicates.
    targets: Vec<usize>,
}

/// Binding keys compiled into a word trie. Immutable once built; `&self` matching is safe to share across
/// threads.
#[derive(Debug)]
pub(crate) struct TopicTrie {
    nodes: Vec<TrieNode>,
}

impl TopicTrie {
    /// Builds the trie from `(binding key, target id)` pairs. A target may appear under several keys and a key
    /// under several targets.
    pub(crate) fn build<'a>(patterns: impl IntoIterator<Item = (&'a str, usize)>) -> TopicTrie {
        let mut trie = TopicTrie {
            nodes: vec![TrieNode::default()],
        };
        for (key, target) in patterns {
            let end = trie.insert(key);
            trie.nodes[end].targets.push(target);
        }
        for node in &mut trie.nodes {
            node.targets.sort_unstable();
            node.targets.dedup();
        }
        trie
    }

    /// Walks (creating as needed) the path for `key` and returns its last node.
    fn insert(&mut self, key: &str) -> usize {
        let mut at = ROOT;
        let mut previous_was_hash = false;
        for word in words(key) {
            // "#.#" matches exactly what "#" matches; collapsing runs of `#` keeps the live set small.
            if word == "#" && previous_was_hash {
                continue;
            }
            previous_was_hash = word == "#";
            at = match word {
                "#" => match self.nodes[at].hash {
                    Some(child) => child,
                    None => {
                        let child = self.push_node(true);
                        self.nodes[at].hash = Some(child);
                        child
                    }
                },
                "*" => match self.nodes[at].star {
                    Some(child) => child,
                    None => {
                        let child = self.push_node(false);
                        self.nodes[at].star = Some(child);
                        child
                    }
                },
                literal => match self.nodes[at].literal.get(literal) {
                    Some(&child) => child,
                    None => {
                        let child = self.push_node(false);
                        self.nodes[at].literal.insert(literal.into(), child);
                        child
                    }
                },
            };
        }
        at
    }

    fn push_node(&mut self, self_loop: bool) -> usize {
        self.nodes.push(TrieNode {
            self_loop,
            ..TrieNode::default()
        });
        self.nodes.len() - 1
    }

    /// Appends to `out` the target of every binding key that matches `routing_key`, each once, in ascending order.
    ///
    /// This is a set-of-states walk (a Thompson NFA simulation) rather than a backtracking search: the live set
    /// holds each node at most once per word, so a publisher cannot make patterns like `#.a.#.a.#` blow up with a
    /// long key; the cost is bounded by words x live nodes.
    pub(crate) fn matches(&self, routing_key: &str, out: &mut Vec<usize>) {
        let mut live: Vec<usize> = Vec::with_capacity(8);
        let mut next: Vec<usize> = Vec::with_capacity(8);
        self.enter(ROOT, &mut live);
        for word in words(routing_key) {
            if live.is_empty() {
                return;
            }
            next.clear();
            for &at in &live {
                let node = &self.nodes[at];
                if node.self_loop {
                    // `#` consumes this word and stays.
                    next.push(at);
                }
                if let Some(&child) = node.literal.get(word) {
                    self.enter(child, &mut next);
                }
                if let Some(child) = node.star {
                    self.enter(child, &mut next);
                }
            }
            next.sort_unstable();
            next.dedup();
            mem::swap(&mut live, &mut next);
        }
        // Reuse the spare buffer to collect targets so they can be deduplicated before reaching `out`.
        next.clear();
        for &at in &live {
            next.extend_from_slice(&self.nodes[at].targets);
        }
        next.sort_unstable();
        next.dedup();
        out.extend_from_slice(&next);
    }

    /// Adds `at` to the live set together with the `#` nodes below it, because `#` may match zero words.
    fn enter(&self, mut at: usize, live: &mut Vec<usize>) {
        live.push(at);
        while let Some(hash) = self.nodes[at].hash {
            live.push(hash);
            at = hash;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, key: &str) -> bool {
        let trie = TopicTrie::build([(pattern, 7)]);
        let mut out = Vec::new();
        trie.matches(key, &mut out);
        out == [7]
    }

    /// (binding key, routing key, expected), per RabbitMQ's rules (see the module doc).
    const CASES: &[(&str, &str, bool)] = &[
        // Literal words.
        ("a.b.c", "a.b.c", true),
        ("a.b.c", "a.b", false),
        ("a.b", "a.b.c", false),
        ("a.b.c", "A.b.c", false),
        ("", "", true),
        ("", "a", false),
        ("a", "", false),
        // `*`: exactly one word, possibly empty.
        ("*", "a", true),
        ("*", "", false),
        ("*", "a.b", false),
        ("*", ".", false),
        ("*.*", ".", true),
        ("a.*", "a.", true),
        ("a.*", "a", false),
        ("*.b.*", "a.b.c", true),
        ("*.b.*", "a.x.c", false),
        ("a*", "ab", false),
        ("a*", "a*", true),
        // `#`: zero or more words.
        ("#", "", true),
        ("#", "a", true),
        ("#", "a.b.c", true),
        ("#", ".", true),
        ("#.#", "", true),
        ("#.#", "a.b", true),
        ("a.#", "a", true),
        ("a.#", "a.b.c", true),
        ("a.#", "b.a", false),
        ("#.a", "a", true),
        ("#.a", "x.y.a", true),
        ("#.a", "a.x", false),
        ("a.#.b", "a.b", true),
        ("a.#.b", "a.x.y.b", true),
        ("a.#.b", "a.x.y.c", false),
        ("#.b.#", "b", true),
        ("#.b.#", "a.b.c.b.d", true),
        ("#.b.#", "a.c", false),
        ("#.*", "", false),
        ("#.*", "a", true),
        ("*.#", "a.b.c", true),
        ("#.*.#", "", false),
        ("#.*.#", "a", true),
        // Empty words.
        ("a..b", "a..b", true),
        ("a.*.b", "a..b", true),
        ("a.#.b", "a...b", true),
        ("a.b", "a..b", false),
        (".", ".", true),
        (".", "", false),
        ("a#", "a.b", false),
    ];

    #[test]
    fn topic_table_of_cases_follows_rabbitmq_rules() {
        for &(pattern, key, expected) in CASES {
            assert_eq!(
                matches(pattern, key),
                expected,
                "pattern {pattern:?} against key {key:?}"
            );
        }
        assert!(CASES.len() >= 25);
    }

    #[test]
    fn topic_empty_key_has_zero_words() {
        assert_eq!(words("").count(), 0);
        assert_eq!(words("a..b").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(words(".").collect::<Vec<_>>(), ["", ""]);
    }

    #[test]
    fn topic_hash_matches_zero_words() {
        assert!(matches("a.#", "a"));
        assert!(matches("#", ""));
        assert!(matches("a.#.#.b", "a.b"));
    }

    #[test]
    fn topic_star_does_not_match_empty_key() {
        assert!(!matches("*", ""));
    }

    #[test]
    fn topic_returns_each_target_once_in_ascending_order() {
        let trie = TopicTrie::build([("a.*", 3), ("#", 1), ("a.b", 3), ("*.b", 2), ("x", 0)]);
        let mut out = Vec::new();
        trie.matches("a.b", &mut out);
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn topic_shared_prefixes_keep_targets_apart() {
        let trie = TopicTrie::build([("a.b", 0), ("a.c", 1), ("a.#", 2), ("a", 3)]);
        let mut out = Vec::new();
        trie.matches("a.c", &mut out);
        assert_eq!(out, [1, 2]);
        out.clear();
        trie.matches("a", &mut out);
        assert_eq!(out, [2, 3]);
    }

    /// RabbitMQ's reference matcher (`match_words` in its topic tests), a direct backtracking definition.
    fn reference(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (Some((&"#", rest)), _) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
            (Some((&"*", rest)), Some((_, key_rest))) => reference(rest, key_rest),
            (Some((word, rest)), Some((first, key_rest))) => {
                word == first && reference(rest, key_rest)
            }
            _ => false,
        }
    }

    #[test]
    fn topic_agrees_with_reference_matcher_on_generated_keys() {
        // A small fixed-seed generator keeps the test deterministic without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound) as usize
        };
        let pattern_words = ["a", "b", "", "*", "#"];
        let key_words = ["a", "b", ""];
        for _ in 0..3000 {
            let pattern: Vec<&str> = (0..next(5)).map(|_| pattern_words[next(5)]).collect();
            let key: Vec<&str> = (0..next(6)).map(|_| key_words[next(3)]).collect();
            let (pattern, key) = (pattern.join("."), key.join("."));
            let expected = reference(
                &words(&pattern).collect::<Vec<_>>(),
                &words(&key).collect::<Vec<_>>(),
            );
            assert_eq!(
                matches(&pattern, &key),
                expected,
                "pattern {pattern:?} against key {key:?}"
            );
        }
    }

    #[test]
    fn topic_many_hashes_on_a_long_key_stay_cheap() {
        // A backtracking matcher takes exponential time here; the live-set walk is linear in the key.
        let pattern = "#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b";
        let key = vec!["a"; 200].join(".");
        assert!(!matches(pattern, &key));
        assert!(matches(pattern, &format!("{key}.b")));
    }
}
