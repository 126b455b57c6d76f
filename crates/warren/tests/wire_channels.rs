//! Channel lifecycle corners on the wire, each answered as RabbitMQ 3.13 answers it: a channel.close that crosses
//! the server's own, and channel numbers (RabbitMQ limits how many channels are open, not their numbers).

mod common;

use common::RawClient;
use warren_protocol::{basic, channel, queue, AMQPClass, FieldTable};

fn channel_close() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

fn channel_close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

fn declare_server_named() -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: "".into(),
        passive: false,
        durable: false,
        exclusive: true,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// Checks that channel `ch` works: a queue.declare on it is answered with declare-ok.
async fn assert_channel_works(client: &mut RawClient, ch: u16) {
    client.send_method(ch, declare_server_named()).await;
    match client.read_method().await {
        Some((got, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))) if got == ch => {}
        other => panic!("expected declare-ok on channel {ch}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_close_crossing_the_servers_close_is_answered_and_the_connection_lives() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    // The publish makes the server close channel 1 (404); the client closes it too before it has seen that.
    client
        .send_method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "missing".into(),
                routing_key: "k".into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
    client.send_method(1, channel_close()).await;
    match client.read_method().await {
        Some((1, AMQPClass::Channel(channel::AMQPMethod::Close(close)))) => {
            assert_eq!(close.reply_code, 404)
        }
        other => panic!("expected the server's channel.close, got {other:?}"),
    }
    match client.read_method().await {
        Some((1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))) => {}
        other => panic!("expected close-ok for the client's close, got {other:?}"),
    }
    // The close-ok the client owes for the server's close: dropped, not a connection error.
    client.send_method(1, channel_close_ok()).await;
    assert_channel_works(&mut client, 2).await;
    client.open_channel(1).await;
    assert_channel_works(&mut client, 1).await;
}
