//! Crash injection: a seeded workload (publishes to several queues, acks, rollovers, segment rolls, compaction, a
//! queue deletion) is crashed at every sync point in turn; the durable image is reopened and checked. Some crash
//! images are also torn at every byte of the interrupted write, and some are crashed again during their own recovery.
//!
//! The invariants: recovery always opens; every message confirmed (on_durable Ok) before the crash and not acked is
//! present exactly once, with its exact bytes; nothing never published to a queue appears in it; and a second
//! recovery after the first one's background work finds the same live set.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::sim_fs::{CrashImage, Restore};

pub(crate) const QUEUES: [QueueId; 3] = [1, 2, 3];

pub(crate) fn crash_config() -> StoreConfig {
    // Small files so that one workload crosses many WAL rollovers, segment rolls and compactions. Repairs after a
    // fault happen only through `retry_now`, never on a timer, so every run makes the same calls.
    StoreConfig {
        retry_after: std::time::Duration::from_secs(3600),
        retry_max: std::time::Duration::from_secs(3600),
        ..config(1500, 2500)
    }
}

/// What the workload did before the crash was noticed.
#[derive(Default, Clone)]
pub(crate) struct Model {
    published: BTreeMap<QueueId, BTreeSet<u64>>,
    acked: BTreeMap<QueueId, BTreeSet<u64>>,
    pub(crate) confirms: Confirms,
}

/// What a workload does to the store or its file system before a step (inject or clear a fault).
pub(crate) type Hook<'a> = &'a dyn Fn(usize, &Store, &SimFs);

/// Runs the workload; every step is flushed and settled, so the sequence of syncs is the same on every run.
fn run_workload(store: &Store, fs: &SimFs, seed: u64, steps: usize, hook: Hook<'_>) -> Model {
    let mut rng = XorShift::new(seed);
    let mut model = Model::default();
    let mut next_id = 1;
    let mut dropped = None;
    for step in 0..steps {
        if fs.crashed() {
            break;
        }
        hook(step, store, fs);
        if step == steps * 2 / 3 {
            // Queue 3 is deleted: its messages may vanish from now on (as if acked), and it gets no more publishes.
            let published = model.published.get(&3).cloned().unwrap_or_default();
            model.acked.entry(3).or_default().extend(published);
            dropped = Some(3);
            store.drop_queue(3);
        }
        match rng.below(10) {
            0..=4 => {
                let mask = rng.below(7) + 1;
                let queues: Vec<QueueId> = QUEUES
                    .iter()
                    .copied()
                    .filter(|q| mask & (1 << (q - 1)) != 0 && Some(*q) != dropped)
                    .collect();
                if queues.is_empty() {
                    continue;
                }
                for q in &queues {
                    model.published.entry(*q).or_default().insert(next_id);
                }
                publish(store, &model.confirms, next_id, &queues);
                next_id += 1;
            }
            _ => {
                let q = QUEUES[rng.below(3) as usize];
                if Some(q) == dropped {
                    continue;
                }
                let acked = model.acked.entry(q).or_default();
                let unacked: Vec<u64> = model
                    .published
                    .get(&q)
                    .into_iter()
                    .flatten()
                    .filter(|id| !acked.contains(id))
                    .copied()
                    .collect();
                if unacked.is_empty() {
                    continue;
                }
                // Mostly old messages (a consumer working through a backlog), sometimes the newest.
                let n = 1 + rng.below(4) as usize;
                let ids: Vec<u64> = (0..n)
                    .map(|_| unacked[rng.below(unacked.len() as u64) as usize])
                    .collect();
                acked.extend(ids.iter().copied());
                store.ack(q, ids);
            }
        }
        let _ = store.flush();
        store.settle();
    }
    model
}

/// Opens the crashed image and checks the invariants; then reopens once more after the background work settled.
pub(crate) fn check_recovery(fs: &SimFs, model: &Model, what: &str) {
    let cfg = crash_config();
    let confirmed = model.confirms.ok();
    let (store, rec) = match Store::open(cfg.clone(), Arc::new(fs.clone()), &QUEUES) {
        Ok(r) => r,
        Err(e) => panic!("{what}: recovery failed to open: {e}"),
    };
    assert!(
        rec.corrupt_queues.is_empty(),
        "{what}: a crash is not damage: {:?}",
        rec.corrupt_queues
    );
    let mut first = BTreeMap::new();
    for q in QUEUES {
        let got = ids(&rec, q);
        let published = model.published.get(&q).cloned().unwrap_or_default();
        let acked = model.acked.get(&q).cloned().unwrap_or_default();
        for id in &got {
            assert!(
                published.contains(id),
                "{what}: queue {q} recovered {id}, never published to it"
            );
            assert_eq!(
                store.read(q, *id).unwrap(),
                message(*id),
                "{what}: queue {q} message {id} bytes differ"
            );
        }
        let got_set: BTreeSet<u64> = got.iter().copied().collect();
        for id in published
            .iter()
            .filter(|id| confirmed.contains(id) && !acked.contains(id))
        {
            assert!(
                got_set.contains(id),
                "{what}: queue {q} lost confirmed message {id}"
            );
        }
        first.insert(q, got);
    }
    store.settle();
    store
        .close()
        .unwrap_or_else(|e| panic!("{what}: close after recovery: {e}"));
    let (_store, again) = open(fs, &cfg, &QUEUES);
    for q in QUEUES {
        assert_eq!(
            ids(&again, q),
            first[&q],
            "{what}: second recovery of queue {q} differs"
        );
    }
}

/// Runs the workload on a fresh fs that crashes at the `n`-th sync after open (or at the end).
fn crashed_run(seed: u64, steps: usize, n: Option<u64>) -> (CrashImage, Model, u64) {
    let (run, stats) = crashed_run_with(seed, steps, n, &|_, _, _| {});
    if n.is_none() {
        // The workload must reach every kind of background work, or crashing through it proves little.
        assert!(
            stats.wal_files_retired >= 10
                && stats.segments_deleted >= 5
                && stats.segments_compacted >= 2,
            "{stats:?}"
        );
    }
    run
}

/// [`crashed_run`] with `hook` before each step; also returns the store's counters at the end.
#[allow(clippy::type_complexity)]
pub(crate) fn crashed_run_with(
    seed: u64,
    steps: usize,
    n: Option<u64>,
    hook: Hook<'_>,
) -> ((CrashImage, Model, u64), crate::StoreStats) {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &crash_config(), &QUEUES);
    let before = fs.stats();
    if let Some(n) = n {
        fs.crash_at_sync(n);
    }
    let model = run_workload(&store, &fs, seed, steps, hook);
    let after = fs.stats();
    let count = |s: crate::sim_fs::SimStats| s.data_syncs + s.dir_syncs + s.failed_syncs;
    let syncs = count(after) - count(before);
    let stats = store.stats();
    fs.crash_now();
    drop(store);
    ((fs.crash_image().unwrap(), model, syncs), stats)
}

pub(crate) const SEED: u64 = 0x5eed_0001;
pub(crate) const STEPS: usize = 220;

#[test]
fn crash_at_every_sync_point_loses_no_confirmed_message() {
    let (image, model, total) = crashed_run(SEED, STEPS, None);
    assert!(total > 100, "workload too small: {total} syncs");
    assert!(model.confirms.ok().len() > 50);
    check_recovery(
        &SimFs::restore(&image, Restore::default()),
        &model,
        "no crash",
    );
    for n in 1..=total {
        let (image, model, _) = crashed_run(SEED, STEPS, Some(n));
        for eager_dirs in [false, true] {
            let fs = SimFs::restore(
                &image,
                Restore {
                    eager_dirs,
                    tear: None,
                },
            );
            check_recovery(
                &fs,
                &model,
                &format!("crash at sync {n}, eager_dirs {eager_dirs}"),
            );
        }
    }
}

#[test]
fn torn_writes_at_every_byte_offset_recover() {
    let (_, _, total) = crashed_run(SEED, STEPS, None);
    let (mut wal_cases, mut seg_cases) = (0, 0);
    for n in 1..=total {
        let (image, model, _) = crashed_run(SEED, STEPS, Some(n));
        let Some((path, tail)) = image.torn_file.clone() else {
            continue;
        };
        let is_wal = path.extension().is_some_and(|e| e == "wal");
        if tail < 20 || (is_wal && wal_cases >= 3) || (!is_wal && seg_cases >= 2) {
            continue;
        }
        if is_wal {
            wal_cases += 1
        } else {
            seg_cases += 1
        }
        for keep in 0..=tail {
            for zero_fill in [false, true] {
                let fs = SimFs::restore(
                    &image,
                    Restore {
                        eager_dirs: false,
                        tear: Some((keep, zero_fill)),
                    },
                );
                check_recovery(
                    &fs,
                    &model,
                    &format!("sync {n} torn in {} at {keep}/{tail}", path.display()),
                );
            }
        }
    }
    assert_eq!(
        (wal_cases, seg_cases),
        (3, 2),
        "not enough torn-write cases found"
    );
}

#[test]
fn crash_during_recovery_loses_no_confirmed_message() {
    let (_, _, total) = crashed_run(SEED, STEPS, None);
    for n in (7..=total).step_by(23) {
        let (image, model, _) = crashed_run(SEED, STEPS, Some(n));
        for k in 1.. {
            let fs = SimFs::restore(&image, Restore::default());
            fs.crash_at_sync(k);
            if let Ok((store, _)) = Store::open(crash_config(), Arc::new(fs.clone()), &QUEUES) {
                store.settle();
                drop(store);
            }
            if !fs.crashed() {
                break;
            }
            let second = fs.crash_image().unwrap();
            let fs = SimFs::restore(&second, Restore::default());
            check_recovery(
                &fs,
                &model,
                &format!("crash at sync {n}, then at recovery sync {k}"),
            );
        }
    }
}
