//! Channel lifecycle corners on the wire, each answered as RabbitMQ 3.13 answers it: a channel.close that crosses
//! the server's own, and channel numbers (RabbitMQ limits how many channels are open, not their numbers).

mod common;

use common::RawClient;
use warren::server::RunningServer;
use warren_protocol::{basic, channel, connection, queue, AMQPClass, FieldTable};

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

fn publish_to_missing_exchange() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "missing".into(),
        routing_key: "k".into(),
        mandatory: false,
        immediate: false,
    }))
}

/// Reads the connection.close the server sends: (code, text, class id, method id).
async fn connection_close(client: &mut RawClient) -> (u16, String, u16, u16) {
    match client.read_method().await {
        Some((0, AMQPClass::Connection(connection::AMQPMethod::Close(c)))) => (
            c.reply_code,
            c.reply_text.as_str().to_owned(),
            c.class_id,
            c.method_id,
        ),
        other => panic!("expected connection.close, got {other:?}"),
    }
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

/// A raw client past connection.open-ok that proposed `channel_max` in tune-ok.
async fn client_with_channel_max(server: &RunningServer, channel_max: u16) -> RawClient {
    let mut client = RawClient::connect(server).await;
    client.send(b"AMQP\x00\x00\x09\x01").await;
    client.read_frame().await.expect("connection.start");
    client
        .send_frame(
            1,
            0,
            &common::start_ok_payload("PLAIN", b"\0guest\0guest", true),
        )
        .await;
    client.read_frame().await.expect("connection.tune");
    client
        .send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max: 131072,
                heartbeat: 0,
            })),
        )
        .await;
    client
        .send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: "/".into(),
            })),
        )
        .await;
    let open_ok = client.read_frame().await.expect("connection.open-ok");
    assert_eq!(open_ok.method_ids(), Some((10, 41)));
    client
}

#[tokio::test]
async fn a_close_crossing_the_servers_close_is_answered_and_the_connection_lives() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    // The publish makes the server close channel 1 (404); the client closes it too before it has seen that.
    client.send_method(1, publish_to_missing_exchange()).await;
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

#[tokio::test]
async fn channel_open_on_a_closing_channel_is_a_channel_error() {
    // RabbitMQ looks for a second channel.open before it looks at the channel's closing state.
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(1).await;
    client.send_method(1, publish_to_missing_exchange()).await;
    let close = client.read_frame().await.expect("channel.close");
    assert_eq!(close.close_code(), Some(404));
    client
        .send_method(
            1,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    assert_eq!(
        connection_close(&mut client).await,
        (
            504,
            "CHANNEL_ERROR - second 'channel.open' seen".into(),
            20,
            10
        )
    );
}

#[tokio::test]
async fn channel_65535_opens_when_channel_max_is_2047() {
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    client.open_channel(65535).await;
    client.open_channel(2048).await;
    assert_channel_works(&mut client, 65535).await;
    assert_channel_works(&mut client, 2048).await;
    client.send_method(65535, channel_close()).await;
    match client.read_method().await {
        Some((65535, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)))) => {}
        other => panic!("expected close-ok on 65535, got {other:?}"),
    }
    client.open_channel(65535).await;
    assert_channel_works(&mut client, 65535).await;
}

#[tokio::test]
async fn channel_max_limits_how_many_channels_are_open_not_their_numbers() {
    let server = common::start_server().await;
    let mut client = client_with_channel_max(&server, 2).await;
    client.open_channel(1).await;
    client.open_channel(40000).await;
    // A closed channel no longer counts.
    client.send_method(40000, channel_close()).await;
    client.read_method().await.expect("close-ok");
    client.open_channel(3).await;
    client
        .send_method(
            7,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    assert_eq!(
        connection_close(&mut client).await,
        (
            530,
            "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
                .into(),
            0,
            0
        )
    );
}

#[tokio::test]
async fn a_channel_the_server_is_closing_counts_until_its_close_ok() {
    let server = common::start_server().await;
    let mut client = client_with_channel_max(&server, 2).await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    client.send_method(2, publish_to_missing_exchange()).await;
    let close = client.read_frame().await.expect("channel.close");
    assert_eq!(close.close_code(), Some(404));
    client
        .send_method(
            3,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
    let (code, text, _, _) = connection_close(&mut client).await;
    assert_eq!(code, 530, "{text}");

    let mut client = client_with_channel_max(&server, 2).await;
    client.open_channel(1).await;
    client.open_channel(2).await;
    client.send_method(2, publish_to_missing_exchange()).await;
    client.read_frame().await.expect("channel.close");
    client.send_method(2, channel_close_ok()).await;
    client.open_channel(3).await;
    assert_channel_works(&mut client, 3).await;
}

#[tokio::test]
async fn a_content_frame_on_an_unused_channel_is_an_unexpected_frame() {
    // RabbitMQ's frame assembler sees it before any channel does: a content frame where a method must come.
    let server = common::start_server().await;
    let mut client = RawClient::connect(&server).await;
    client.handshake().await;
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&1u64.to_be_bytes());
    header.extend_from_slice(&[0, 0]);
    client.send_frame(2, 3, &header).await;
    assert_eq!(
        connection_close(&mut client).await,
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead".into(),
            0,
            0
        )
    );
}
