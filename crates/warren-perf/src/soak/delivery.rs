//! Reassembling deliveries for the soak's consumers: basic.deliver, its content header and body frames become one
//! [`Delivered`] with the delivery tag and the stamp the feeder wrote at the front of the body. Other methods on
//! the channel (consume-ok, qos-ok) pass; the broker cancelling the consumer or closing the channel ends it.

use super::super::body::{Stamp, STAMP_LEN};
use warren_protocol::client::parse_deliver;
use warren_protocol::frame::FrameKind;
use warren_protocol::{basic, channel, decode_method, AMQPClass, RawFrame};

/// One whole delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub tag: u64,
    /// `None` when the body is shorter than a stamp.
    pub stamp: Option<Stamp>,
}

/// Where a consumer is in the delivery it is reading.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    state: State,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    Header(u64),
    Body {
        tag: u64,
        remaining: u64,
        stamp: [u8; STAMP_LEN],
        have: usize,
    },
}

impl Reassembly {
    /// Takes the next frame of the consumer's channel; returns a delivery once its last frame is in. `Err` when
    /// the channel or the consumer is gone, or the frames make no sense.
    pub(crate) fn on_frame(&mut self, frame: &RawFrame) -> Result<Option<Delivered>, String> {
        match (frame.kind, &mut self.state) {
            (FrameKind::Method, State::Idle) => {
                if let Some(deliver) = parse_deliver(&frame.payload) {
                    self.state = State::Header(deliver.delivery_tag);
                    return Ok(None);
                }
                match decode_method(&frame.payload) {
                    Ok(AMQPClass::Channel(channel::AMQPMethod::Close(close))) => Err(format!(
                        "the broker closed the channel: {} {}",
                        close.reply_code, close.reply_text
                    )),
                    Ok(AMQPClass::Basic(basic::AMQPMethod::Cancel(_))) => {
                        Err("the broker cancelled the consumer".to_owned())
                    }
                    Ok(_) => Ok(None),
                    Err(e) => Err(format!("undecodable method: {}", e.text)),
                }
            }
            (FrameKind::Header, State::Header(tag)) => {
                let tag = *tag;
                let size = frame
                    .payload
                    .get(4..12)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or("a content header too short")?;
                if size == 0 {
                    self.state = State::Idle;
                    return Ok(Some(Delivered { tag, stamp: None }));
                }
                self.state = State::Body {
                    tag,
                    remaining: size,
                    stamp: [0; STAMP_LEN],
                    have: 0,
                };
                Ok(None)
            }
            (
                FrameKind::Body,
                State::Body {
                    tag,
                    remaining,
                    stamp,
                    have,
                },
            ) => {
                let take = (STAMP_LEN - *have).min(frame.payload.len());
                stamp[*have..*have + take].copy_from_slice(&frame.payload[..take]);
                *have += take;
                *remaining = remaining.saturating_sub(frame.payload.len() as u64);
                if *remaining > 0 {
                    return Ok(None);
                }
                let delivered = Delivered {
                    tag: *tag,
                    stamp: Stamp::read(&stamp[..*have]),
                };
                self.state = State::Idle;
                Ok(Some(delivered))
            }
            (kind, state) => Err(format!("unexpected {kind:?} frame while in {state:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use warren_protocol::content::{put_body_frames, put_content_header};
    use warren_protocol::frame::FrameSplitter;
    use warren_protocol::put_method;

    fn frames(bytes: BytesMut) -> Vec<RawFrame> {
        let splitter = FrameSplitter::new(131_072);
        let mut buf = bytes;
        std::iter::from_fn(|| splitter.next_frame(&mut buf).ok().flatten()).collect()
    }

    #[test]
    fn a_delivery_in_several_body_frames_gives_its_stamp() {
        let mut out = BytesMut::new();
        put_method(
            &mut out,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "c".into(),
                delivery_tag: 7,
                redelivered: false,
                exchange: "".into(),
                routing_key: "q".into(),
            })),
        );
        let mut body = vec![0u8; 10_000];
        let stamp = Stamp {
            producer: 1,
            seq: 2,
            sent_at_ns: 3,
        };
        stamp.write(&mut body);
        put_content_header(&mut out, 1, body.len() as u64, &[0, 0]);
        // frame_max 4096: three body frames.
        put_body_frames(&mut out, 1, &body, 4096);
        let mut reassembly = Reassembly::default();
        let got: Vec<_> = frames(out)
            .iter()
            .map(|f| reassembly.on_frame(f).expect("valid"))
            .collect();
        assert_eq!(got.len(), 5);
        assert!(got[..4].iter().all(Option::is_none));
        assert_eq!(
            got[4],
            Some(Delivered {
                tag: 7,
                stamp: Some(stamp)
            })
        );
    }

    #[test]
    fn a_cancel_or_a_channel_close_ends_the_consumer() {
        let mut out = BytesMut::new();
        put_method(
            &mut out,
            1,
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag: "c".into(),
                nowait: true,
            })),
        );
        let frame = &frames(out)[0];
        assert!(Reassembly::default().on_frame(frame).is_err());
    }
}
