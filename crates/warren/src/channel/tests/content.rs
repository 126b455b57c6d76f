//! Content frames: the 505 UNEXPECTED_FRAME rules of a publish in progress, and the size checks on its body.

use warren_protocol::error::ReplyCode;
use warren_protocol::FrameKind;

use super::{assert_error, content_header, declare, Harness};

const HEADER_EXPECTED: &str =
    "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead";
const BODY_EXPECTED: &str =
    "UNEXPECTED_FRAME - expected content body, got non content body frame instead";
const METHOD_EXPECTED: &str =
    "UNEXPECTED_FRAME - expected method frame, got non method frame instead";

#[tokio::test]
async fn method_where_a_content_header_is_expected_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    assert!(h.channel.expects_content());
    let result = h.method(declare("x")).await;
    assert_error(
        result,
        ReplyCode::UnexpectedFrame,
        HEADER_EXPECTED,
        (60, 40),
    );
}

#[tokio::test]
async fn method_where_a_content_body_is_expected_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    h.content(FrameKind::Header, &content_header(5))
        .await
        .unwrap();
    let result = h.method(declare("x")).await;
    assert_error(result, ReplyCode::UnexpectedFrame, BODY_EXPECTED, (60, 40));
}

#[tokio::test]
async fn publish_where_a_content_header_is_expected_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    let result = h.start_publish("", "q", false);
    assert_error(
        result,
        ReplyCode::UnexpectedFrame,
        HEADER_EXPECTED,
        (60, 40),
    );
}

#[tokio::test]
async fn content_header_with_no_publish_is_an_unexpected_frame() {
    let mut h = Harness::open();
    let result = h.content(FrameKind::Header, &content_header(5)).await;
    assert_error(result, ReplyCode::UnexpectedFrame, METHOD_EXPECTED, (0, 0));
}

#[tokio::test]
async fn body_frame_with_no_publish_is_an_unexpected_frame() {
    let mut h = Harness::open();
    let result = h.content(FrameKind::Body, b"hello").await;
    assert_error(result, ReplyCode::UnexpectedFrame, METHOD_EXPECTED, (0, 0));
}

#[tokio::test]
async fn body_frame_before_the_content_header_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    let result = h.content(FrameKind::Body, b"hello").await;
    assert_error(
        result,
        ReplyCode::UnexpectedFrame,
        HEADER_EXPECTED,
        (60, 40),
    );
}

#[tokio::test]
async fn content_header_where_a_body_is_expected_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    h.content(FrameKind::Header, &content_header(5))
        .await
        .unwrap();
    let result = h.content(FrameKind::Header, &content_header(5)).await;
    assert_error(result, ReplyCode::UnexpectedFrame, BODY_EXPECTED, (60, 40));
}

#[tokio::test]
async fn body_larger_than_the_declared_size_is_a_frame_error() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    h.content(FrameKind::Header, &content_header(3))
        .await
        .unwrap();
    let result = h.content(FrameKind::Body, b"hello").await;
    assert_error(
        result,
        ReplyCode::FrameError,
        "FRAME_ERROR - content body is larger than the declared size 3",
        (0, 0),
    );
}

#[tokio::test]
async fn content_header_of_another_class_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    let mut header = content_header(0);
    header[1] = 50;
    let result = h.content(FrameKind::Header, &header).await;
    assert_error(
        result,
        ReplyCode::UnexpectedFrame,
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
        (60, 40),
    );
}

#[tokio::test]
async fn content_header_with_a_weight_is_an_unexpected_frame() {
    let mut h = Harness::open();
    h.start_publish("", "q", false).unwrap();
    let mut header = content_header(0);
    header[3] = 1;
    let result = h.content(FrameKind::Header, &header).await;
    assert_error(
        result,
        ReplyCode::UnexpectedFrame,
        HEADER_EXPECTED,
        (60, 40),
    );
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_refused_before_its_content() {
    let mut h = Harness::open();
    let result = h.start_publish("nowhere", "q", false);
    assert_error(
        result,
        ReplyCode::NotFound,
        "NOT_FOUND - no exchange 'nowhere' in vhost '/'",
        (60, 40),
    );
    assert!(!h.channel.expects_content());
}

#[tokio::test]
async fn a_complete_message_ends_the_publish_and_reaches_its_queue() {
    let mut h = Harness::open();
    h.declare_queue("q").await;
    h.publish("", "q", b"hello").await.unwrap();
    assert!(!h.channel.expects_content());
    h.publish("", "q", b"").await.unwrap();
    assert_eq!(h.ready("q").await, 2);
}
