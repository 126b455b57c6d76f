//! Group commit: what is queued while a sync runs is written and synced together afterwards. No timing is asserted:
//! the simulated fs holds the first sync until every publisher thread has queued its messages.

use std::sync::Arc;
use std::thread;

use super::*;

#[test]
fn publishes_queued_during_a_sync_share_the_next_one() {
    let fs = SimFs::new();
    let (store, _) = open(&fs, &config(1 << 20, 1 << 20), &[1, 2]);
    let confirms = Confirms::default();
    fs.pause_syncs();
    publish(&store, &confirms, 1, &[1]);
    while fs.syncs_waiting() == 0 {
        thread::yield_now();
    }
    let syncs_before = fs.stats().data_syncs;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (store, confirms) = (store.clone(), confirms.clone());
            thread::spawn(move || {
                for i in 0..250 {
                    let id = 2 + t * 250 + i;
                    publish(&store, &confirms, id, &[1 + id % 2]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    fs.resume_syncs();
    store.flush().unwrap();
    assert_eq!(confirms.ok().len(), 1001);
    assert_eq!(confirms.calls(), 1001);
    let syncs = fs.stats().data_syncs - syncs_before;
    assert!(
        syncs <= 3,
        "1000 publishes queued during one sync took {syncs} syncs"
    );
    assert!(store.stats().wal_syncs <= 4);
}

#[test]
fn concurrent_publishers_each_get_exactly_one_confirm() {
    let fs = SimFs::new();
    let cfg = config(64 << 10, 64 << 10);
    let (store, _) = open(&fs, &cfg, &[1, 2, 3, 4]);
    let confirms = Confirms::default();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (store, confirms) = (store.clone(), confirms.clone());
            thread::spawn(move || {
                for i in 0..500 {
                    let id = 1 + t * 500 + i;
                    publish(&store, &confirms, id, &[1 + t]);
                    if i % 3 == 0 {
                        store.ack(1 + t, vec![id]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.flush().unwrap();
    store.settle();
    assert_eq!(confirms.calls(), 2000);
    assert_eq!(confirms.ok().len(), 2000);
    let stats = store.stats();
    assert!(stats.wal_syncs <= stats.publishes);
    store.close().unwrap();
    let (_store, rec) = open(&fs, &cfg, &[1, 2, 3, 4]);
    for t in 0..4u64 {
        let want: Vec<u64> = (0..500)
            .filter(|i| i % 3 != 0)
            .map(|i| 1 + t * 500 + i)
            .collect();
        assert_eq!(ids(&rec, 1 + t), want);
    }
}

/// Not a test: measures group commit on the real disk. Run with
/// `cargo test --release --lib store::tests::group_commit::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_publish_rate_on_disk() {
    let dir = std::env::temp_dir().join(format!("warren-store-measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = StoreConfig::new(&dir);
    let (store, _) = Store::open(cfg, Arc::new(crate::StdFileSystem), &[1, 2, 3, 4]).unwrap();
    // Overridable: WARREN_MEASURE_WINDOW (unconfirmed publishes per publisher), WARREN_MEASURE_ACK=1 (a consumer
    // acks each message once confirmed, so nothing is copied into segments).
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let window = env("WARREN_MEASURE_WINDOW", 2000);
    let ack = env("WARREN_MEASURE_ACK", 0) == 1;
    let per_thread = 50_000u64;
    let body = Bytes::from(vec![7u8; 1024]);
    let start = std::time::Instant::now();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (store, body) = (store.clone(), body.clone());
            thread::spawn(move || {
                let (tx, rx) = std::sync::mpsc::channel();
                for i in 0..per_thread {
                    let id = 1 + t * per_thread + i;
                    let msg = StoredMessage {
                        msg_id: id,
                        exchange: "amq.direct".into(),
                        routing_key: "perf".into(),
                        properties_raw: Bytes::from_static(&[0x10, 0x00, 0x02]),
                        body: body.clone(),
                        meta: meta(id),
                    };
                    let tx = tx.clone();
                    let done = Box::new(move |r: Result<(), StoreError>| {
                        tx.send((id, r.is_ok())).unwrap()
                    });
                    store.publish(msg, vec![1 + t], done);
                    // At most `window` unconfirmed per publisher, like a client with a confirm window.
                    if i >= window {
                        let (confirmed, ok) = rx.recv().unwrap();
                        assert!(ok);
                        if ack {
                            store.ack(1 + t, vec![confirmed]);
                        }
                    }
                }
                for _ in 0..per_thread.min(window) {
                    assert!(rx.recv().unwrap().1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    let stats = store.stats();
    let n = 4 * per_thread;
    println!(
        "window {window}, ack {ack}: {n} publishes of 1 KiB in {:.2} s: {:.0}/s, {} syncs ({:.1} publishes per sync)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        stats.wal_syncs,
        n as f64 / stats.wal_syncs.max(1) as f64
    );
    println!("{stats:?}");
    store.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
