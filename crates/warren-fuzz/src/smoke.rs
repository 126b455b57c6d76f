//! The stable fuzz smoke: for one target, replay every committed corpus and regression input, then run seeded
//! mutations of them, each on a thread with a tokio worker's 2 MiB stack, under a watchdog (an input that runs for
//! [`HANG_LIMIT`] is a hang) and with the target's allocation bound checked (when [`crate::alloc::TrackingAlloc`]
//! is installed). An input that fails is written to `fuzz/artifacts/<target>/` so that libFuzzer and
//! `WARREN_FUZZ_REPLAY` can replay it.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::alloc;
use crate::mutate::{parse_dictionary, Mutator, Rng};
use crate::Target;

/// One input running this long is a hang. Generous: debug builds on a loaded 2-core CI machine.
pub const HANG_LIMIT: Duration = Duration::from_secs(20);
/// The stack the smoke runs targets on: tokio's default worker stack, where the broker's parsers run.
pub const STACK: usize = 2 << 20;

/// The repository's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every file of a directory, sorted by name, with its bytes; none if the directory does not exist.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).ok()?,
            ))
        })
        .collect();
    out.sort();
    out
}

/// The committed seed corpus of a target (`fuzz/corpus/<name>/`) and its regression inputs
/// (`fuzz/regressions/<name>/`, inputs that once failed).
pub fn corpus(target: &Target) -> Vec<(String, Vec<u8>)> {
    let mut all = files(&fuzz_dir().join("corpus").join(target.name));
    all.extend(files(&fuzz_dir().join("regressions").join(target.name)));
    all
}

/// A target's libFuzzer dictionary, `fuzz/dict/<name>.dict`.
pub fn dictionary(target: &Target) -> Result<Vec<Vec<u8>>, String> {
    let path = fuzz_dir()
        .join("dict")
        .join(format!("{}.dict", target.name));
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_dictionary(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a smoke run did.
#[derive(Debug)]
pub struct Report {
    /// Corpus and regression inputs replayed.
    pub replayed: usize,
    /// Mutated inputs run.
    pub mutated: usize,
    /// The largest single allocation any input caused, in bytes (0 without the tracking allocator).
    pub largest_alloc: usize,
    /// The slowest input.
    pub slowest: Duration,
    /// The whole run.
    pub elapsed: Duration,
}

/// How one input went.
enum Outcome {
    Passed {
        largest_alloc: usize,
        took: Duration,
    },
    Failed {
        input: Vec<u8>,
        why: String,
    },
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".into())
}

fn run_one(target: &Target, input: &[u8]) -> Outcome {
    let started = Instant::now();
    let limit = (target.alloc_limit)(input);
    match catch_unwind(AssertUnwindSafe(|| alloc::measure(|| (target.run)(input)))) {
        Ok(((), largest_alloc)) if largest_alloc <= limit => Outcome::Passed {
            largest_alloc,
            took: started.elapsed(),
        },
        Ok(((), largest_alloc)) => Outcome::Failed {
            input: input.to_vec(),
            why: format!(
                "one allocation of {largest_alloc} bytes, over the bound of {limit} for this input"
            ),
        },
        Err(payload) => Outcome::Failed {
            input: input.to_vec(),
            why: format!("panicked: {}", panic_text(payload.as_ref())),
        },
    }
}

/// Saves a failing input where libFuzzer keeps its crashes; gives the path.
fn save_artifact(target: &Target, kind: &str, input: &[u8]) -> String {
    let dir = fuzz_dir().join("artifacts").join(target.name);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("smoke-{kind}-{hash:016x}"));
    match fs::create_dir_all(&dir).and_then(|()| fs::write(&path, input)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

fn describe(input: &[u8]) -> String {
    if input.len() <= 256 {
        format!("{input:02x?}")
    } else {
        format!("{} bytes", input.len())
    }
}

/// Replays the corpus of `target`, then runs `mutations` seeded mutations of it; Err describes the first failure
/// (a panic, a broken contract, an allocation over the bound, or a hang) and where the input was saved.
pub fn run(target: &Target, mutations: usize, seed: u64) -> Result<Report, String> {
    let corpus: Vec<Vec<u8>> = corpus(target).into_iter().map(|(_, bytes)| bytes).collect();
    if corpus.is_empty() {
        return Err(format!(
            "no corpus under {}",
            fuzz_dir().join("corpus").join(target.name).display()
        ));
    }
    let dictionary = dictionary(target)?;
    let max_len = corpus.iter().map(Vec::len).max().unwrap_or(0) + 1024;
    let current = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let worker_current = current.clone();
    let worker_target = *target;
    let total = corpus.len() + mutations;
    let replayed = corpus.len();
    let started = Instant::now();
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-smoke-{}", target.name))
        .stack_size(STACK)
        .spawn(move || {
            let target = worker_target;
            let mut mutator = Mutator::new(seed, dictionary, max_len);
            let mut pick = Rng::new(seed ^ 0x5EED);
            let inputs = corpus.iter().cloned().chain((0..mutations).map(|_| {
                let mut input = corpus[pick.below(corpus.len())].clone();
                mutator.mutate(&mut input, &corpus);
                input
            }));
            for input in inputs {
                *crate::lock(&worker_current) = input.clone();
                let outcome = run_one(&target, &input);
                let failed = matches!(outcome, Outcome::Failed { .. });
                if tx.send(outcome).is_err() || failed {
                    return;
                }
            }
        })
        .map_err(|e| format!("cannot start the smoke thread: {e}"))?;
    let mut report = Report {
        replayed,
        mutated: mutations,
        largest_alloc: 0,
        slowest: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    for _ in 0..total {
        match rx.recv_timeout(HANG_LIMIT) {
            Ok(Outcome::Passed {
                largest_alloc,
                took,
            }) => {
                report.largest_alloc = report.largest_alloc.max(largest_alloc);
                report.slowest = report.slowest.max(took);
            }
            Ok(Outcome::Failed { input, why }) => {
                let _ = worker.join();
                let path = save_artifact(target, "failure", &input);
                return Err(format!(
                    "{}: {why}\n  input {} saved as {path}",
                    target.name,
                    describe(&input)
                ));
            }
            Err(_) => {
                // The worker is stuck; it is left running and ends with the test process.
                let input = crate::lock(&current).clone();
                let path = save_artifact(target, "hang", &input);
                return Err(format!(
                    "{}: an input ran longer than {HANG_LIMIT:?}: {}\n  saved as {path}",
                    target.name,
                    describe(&input)
                ));
            }
        }
    }
    let _ = worker.join();
    report.elapsed = started.elapsed();
    Ok(report)
}
