//! Crash injection through faults: the crash tests' workload runs while the disk fills up (with room for part of a
//! record, so appends are torn), while syncs fail and lose their pages, while the disk is full to the byte, and
//! while only the segment files' syncs fail (so a WAL file's retirement fails and is kept); after each fault the
//! space comes back and the store is told to repair itself (`retry_now`, so every run makes the same calls). The run is crashed at every sync point in turn, repairs included, and the crash tests' invariants
//! are checked: recovery opens, every confirmed and unacked message is there with its bytes, nothing else is.

use super::crash::{check_recovery, crashed_run_with, Hook, SEED, STEPS};
use super::*;
use crate::sim_fs::Restore;
use crate::StoreHealth;

/// The faults, by workload step.
fn faults(step: usize, store: &Store, fs: &SimFs) {
    let heal = |store: &Store| {
        // On a crashed file system the repair fails like everything else.
        let health = store.retry_now();
        assert!(fs.crashed() || health == StoreHealth::Healthy, "{health:?}");
    };
    match step {
        40 => fs.set_capacity(Some(fs.used_bytes() + 150)),
        70 => {
            fs.set_capacity(None);
            heal(store);
        }
        100 => fs.set_syncs_failing(true),
        115 => {
            fs.set_syncs_failing(false);
            heal(store);
        }
        140 => fs.fill(),
        155 => {
            fs.set_capacity(None);
            heal(store);
        }
        165 => fs.set_syncs_failing_under(Some(&Path::new(DIR).join("queues"))),
        195 => {
            fs.set_syncs_failing_under(None);
            heal(store);
        }
        _ => {}
    }
}

#[test]
fn crash_at_every_sync_through_faults_and_repairs_loses_no_confirmed_message() {
    let hook: Hook<'_> = &faults;
    let ((image, model, total), stats) = crashed_run_with(SEED, STEPS, None, hook);
    assert_eq!(
        (stats.failures, stats.recoveries),
        (4, 4),
        "each fault fails the store and each repair heals it: {stats:?}"
    );
    let (confirmed, refused) = (model.confirms.ok(), model.confirms.err());
    let last_refused = refused.iter().max().copied().unwrap_or(0);
    assert!(
        !refused.is_empty() && confirmed.iter().filter(|id| **id > last_refused).count() > 5,
        "the workload must see refusals, then confirms after the last repair"
    );
    check_recovery(
        &SimFs::restore(&image, Restore::default()),
        &model,
        "faults, no crash",
    );
    for n in 1..=total {
        let ((image, model, _), _) = crashed_run_with(SEED, STEPS, Some(n), hook);
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
                &format!("faults, crash at sync {n}, eager_dirs {eager_dirs}"),
            );
        }
    }
}
