//! Memory pressure pages message bodies out, as RabbitMQ's queues page out past half the memory high watermark: a
//! publisher with no consumer, whose queue's own budget would hold everything in memory, fills a queue well past the
//! watermark and is never left blocked, because the queue pages its bodies to disk (the message store for persistent
//! messages of a durable queue, the spill store for the rest) and the memory alarm clears. Every message comes back.
//! Without the paging the broker passes the watermark, blocks the publisher, and the publish never completes.

mod common;

use std::time::Duration;

use common::process::{fresh_data_dir, BrokerProcess};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const MESSAGES: usize = 3000;
const SIZE: usize = 64 * 1024;

/// A broker whose memory high watermark is 160 MiB and whose queues may each keep 1 GiB in memory.
fn broker(name: &str) -> (BrokerProcess, std::path::PathBuf) {
    let dir = fresh_data_dir(name);
    let config = dir.with_extension("toml");
    std::fs::write(
        &config,
        "[alarms]\nvm_memory_high_watermark.absolute = \"160MiB\"\n\
         [storage]\nqueue_memory_budget = 1073741824\n",
    )
    .expect("write config");
    let arg = config.to_string_lossy().into_owned();
    (BrokerProcess::start(&dir, &["--config", &arg]), dir)
}

/// Publishes MESSAGES bodies of SIZE bytes (each starting with its index) with confirms, then reads them all back.
async fn fill_past_the_watermark_and_drain(broker: &BrokerProcess, durable: bool) {
    let conn = Connection::connect(&broker.uri(), ConnectionProperties::default())
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let options = QueueDeclareOptions {
        durable,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("big".into(), options, FieldTable::default())
        .await
        .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let properties = BasicProperties::default().with_delivery_mode(if durable { 2 } else { 1 });
    let publish_all = async {
        for window in (0..MESSAGES).collect::<Vec<_>>().chunks(50) {
            let mut confirms = Vec::new();
            for &i in window {
                let mut body = vec![0u8; SIZE];
                body[..8].copy_from_slice(&(i as u64).to_be_bytes());
                confirms.push(
                    ch.basic_publish(
                        "".into(),
                        "big".into(),
                        BasicPublishOptions::default(),
                        &body,
                        properties.clone(),
                    )
                    .await
                    .expect("publish"),
                );
            }
            for confirm in confirms {
                assert!(
                    confirm.await.expect("confirm").is_ack(),
                    "a publish was nacked"
                );
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(180), publish_all)
        .await
        .expect(
            "the publisher stayed blocked: the queue kept its bodies in memory past the watermark",
        );
    for i in 0..MESSAGES {
        let got = ch
            .basic_get("big".into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("a message for every one published");
        let index = u64::from_be_bytes(got.delivery.data[..8].try_into().expect("8 bytes"));
        assert_eq!((index, got.delivery.data.len()), (i as u64, SIZE));
    }
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_page_to_the_store_under_memory_pressure() {
    let (broker, dir) = broker("paging-persistent");
    fill_past_the_watermark_and_drain(&broker, true).await;
    let log = std::fs::read_to_string(dir.with_extension("log")).expect("log");
    assert!(log.contains("past the paging threshold"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_messages_page_to_the_spill_store_under_memory_pressure() {
    let (broker, dir) = broker("paging-transient");
    fill_past_the_watermark_and_drain(&broker, false).await;
    let log = std::fs::read_to_string(dir.with_extension("log")).expect("log");
    assert!(log.contains("past the paging threshold"), "{log}");
}
