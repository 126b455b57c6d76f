//! The stable smoke's mutator: AFL-style havoc (bit flips, interesting values, length-field arithmetic, block
//! erase, insert and copy, dictionary words, splicing with another corpus input), seeded, deterministic, and with no
//! dependency. It finds less than libFuzzer, which also follows coverage; its job is a bounded, repeatable pass in
//! CI over the neighbourhood of real traffic.

/// A small, fast, seeded generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Reads a libFuzzer dictionary: one word per line, `"..."` or `name="..."`, with `\xNN`, `\\` and `\"` escapes;
/// `#` starts a comment line.
pub fn parse_dictionary(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let quoted = line
            .find('"')
            .and_then(|start| {
                line.rfind('"')
                    .filter(|end| *end > start)
                    .map(|end| &line[start + 1..end])
            })
            .ok_or_else(|| format!("line {}: no quoted word", n + 1))?;
        let mut word = Vec::new();
        let mut bytes = quoted.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                word.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    word.push(hex.ok_or_else(|| format!("line {}: bad \\x escape", n + 1))?);
                }
                Some(other @ (b'\\' | b'"')) => word.push(other),
                _ => return Err(format!("line {}: bad escape", n + 1)),
            }
        }
        if word.len() > 64 {
            return Err(format!(
                "line {}: libFuzzer takes words of at most 64 bytes",
                n + 1
            ));
        }
        words.push(word);
    }
    Ok(words)
}

/// Mutates corpus inputs into new ones.
#[derive(Debug)]
pub struct Mutator {
    rng: Rng,
    dictionary: Vec<Vec<u8>>,
    max_len: usize,
}

const INTERESTING_8: [u8; 9] = [0, 1, 2, 7, 0x7F, 0x80, 0xCE, 0xFE, 0xFF];
const INTERESTING_32: [u32; 10] = [
    0,
    1,
    4,
    0x7F,
    0x80,
    0xFF,
    0x1000,
    0x2_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
];

impl Mutator {
    /// A mutator drawing from `seed`, inserting `dictionary` words, never growing an input past `max_len`.
    pub fn new(seed: u64, dictionary: Vec<Vec<u8>>, max_len: usize) -> Mutator {
        Mutator {
            rng: Rng::new(seed),
            dictionary,
            max_len,
        }
    }

    /// One to eight stacked mutations of `input`; `others` is the corpus to splice from.
    pub fn mutate(&mut self, input: &mut Vec<u8>, others: &[Vec<u8>]) {
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate_once(input, others);
        }
        input.truncate(self.max_len);
    }

    fn mutate_once(&mut self, input: &mut Vec<u8>, others: &[Vec<u8>]) {
        let rng = &mut self.rng;
        let len = input.len();
        match rng.below(12) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let at = rng.below(len);
                input[at] = INTERESTING_8[rng.below(INTERESTING_8.len())];
            }
            3 if len >= 4 => {
                // A length field: an interesting value, big- or little-endian.
                let at = rng.below(len - 3);
                let v = INTERESTING_32[rng.below(INTERESTING_32.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                input[at..at + 4].copy_from_slice(&bytes);
            }
            4 if len >= 4 => {
                // Length arithmetic: a 32-bit big-endian field nudged by a little.
                let at = rng.below(len - 3);
                let v =
                    u32::from_be_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]);
                let delta = rng.below(33) as u32;
                let v = if rng.below(2) == 0 {
                    v.wrapping_add(delta)
                } else {
                    v.wrapping_sub(delta)
                };
                input[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                input.drain(at..at + n);
            }
            6 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                input.splice(at..at, bytes);
            }
            7 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(256));
                let block = input[from..from + n].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, block);
            }
            8 | 9 if !self.dictionary.is_empty() => {
                let word = self.dictionary[rng.below(self.dictionary.len())].clone();
                let at = rng.below(len + 1);
                if rng.below(2) == 0 || at + word.len() > len {
                    input.splice(at..at, word);
                } else {
                    input[at..at + word.len()].copy_from_slice(&word);
                }
            }
            10 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            11 if len > 0 => input.truncate(rng.below(len)),
            _ => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next_u64() as u8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_lines_unescape() {
        let words = parse_dictionary("# c\nkw=\"a\\x00\\\\\\\"\"\n\"F\"\n").unwrap();
        assert_eq!(words, vec![b"a\0\\\"".to_vec(), b"F".to_vec()]);
        assert!(parse_dictionary("nope").is_err());
    }

    #[test]
    fn mutations_are_repeatable_and_bounded() {
        let corpus = vec![b"hello world".to_vec(), vec![1, 0, 0, 0, 4, 1, 2, 3, 4]];
        let run = |seed| {
            let mut m = Mutator::new(seed, vec![b"XYZ".to_vec()], 32);
            let mut out = Vec::new();
            for i in 0..200 {
                let mut input = corpus[i % 2].clone();
                m.mutate(&mut input, &corpus);
                assert!(input.len() <= 32);
                out.push(input);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
