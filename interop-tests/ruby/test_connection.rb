# Connection-level behaviour (heartbeat negotiation and liveness, a 16 MiB message over many body frames, properties
# and headers) and AMQP transactions.

require "digest"
require "securerandom"
require_relative "harness"

class Heartbeats < Interop::TestCase
  def test_server_proposes_60_seconds
    session = connect(heartbeat: :server)
    assert_equal(60, session.heartbeat, "with heartbeat: :server bunny takes RabbitMQ's connection.tune value")
  end

  def test_negotiated_heartbeat_keeps_an_idle_connection_open
    session = connect(heartbeat: 2)
    assert_equal(2, session.heartbeat, "the lower of the two proposals is negotiated")
    # Bunny sets its socket read timeout to 2.2 x the heartbeat: if the broker sent nothing for 4.4 s the reader
    # would fail and (recovery being off) close the session. 6 s of idleness therefore proves broker heartbeats.
    sleep 6
    assert(session.open?, "connection closed during 6 s of heartbeats (status #{session.status})")
    ch = session.create_channel
    q = ch.queue("", exclusive: true)
    ch.confirm_select
    ch.default_exchange.publish("alive", routing_key: q.name)
    assert(ch.wait_for_confirms)
    assert_equal(["alive"], drain(ch, q.name))
  end
end

class LargeMessages < Interop::TestCase
  def test_16_mib_message_round_trip
    queue = queue("large")
    body = SecureRandom.random_bytes(1024) * (16 * 1024) # 16 MiB, 128+ body frames at frame_max 131072
    assert_equal(16 * 1024 * 1024, body.bytesize)
    @ch.confirm_select
    @ch.default_exchange.publish(body, routing_key: queue, message_id: "big")
    assert(@ch.wait_for_confirms)

    got = []
    consumer = @ch.basic_consume(queue, "big", false) do |info, props, payload|
      @ch.ack(info.delivery_tag)
      got << [props.message_id, payload]
    end
    wait_until("the 16 MiB delivery", timeout: 30) { got.any? }
    @ch.basic_cancel(consumer.consumer_tag)
    assert_equal("big", got[0][0])
    assert_equal(body.bytesize, got[0][1].bytesize)
    assert_equal(Digest::SHA256.hexdigest(body), Digest::SHA256.hexdigest(got[0][1]))
  end
end

class Properties < Interop::TestCase
  def as_bytes(value)
    case value
    when String then value.b
    when Array then value.map { |v| as_bytes(v) }
    when Hash then value.to_h { |k, v| [k.b, as_bytes(v)] }
    else value
    end
  end

  def test_properties_and_headers_round_trip
    queue = queue("props")
    headers = {
      "string" => "plain",
      "unicode" => "h\u00e9llo \u2713",
      "int" => 42,
      "negative" => -7,
      "long" => 2**40,
      "float" => 1.5,
      "true" => true,
      "false" => false,
      "void" => nil,
      "timestamp" => Time.at(1_700_000_000),
      "array" => [1, "two", [3], { "four" => 4 }],
      "table" => { "nested" => { "deeper" => "yes" }, "n" => 1 },
    }
    user = URI.decode_www_form_component(Interop.amqp_url[%r{\Aamqps?://([^:@/]*)}, 1] || "guest")
    sent = {
      content_type: "application/json", content_encoding: "utf-8", headers: headers, delivery_mode: 2, priority: 5,
      correlation_id: "corr-1", reply_to: "reply.here", expiration: "60000", message_id: "msg-1",
      timestamp: 1_700_000_000, type: "order.created", user_id: user, app_id: "interop"
    }
    @ch.confirm_select
    @ch.default_exchange.publish('{"k": 1}', sent.merge(routing_key: queue))
    @ch.default_exchange.publish("", routing_key: queue) # only bunny's defaults, empty body
    assert(@ch.wait_for_confirms)

    _, props, body = @ch.basic_get(queue, manual_ack: false)
    assert_equal('{"k": 1}', body)
    (sent.keys - %i[headers timestamp]).each { |name| assert_equal(sent[name], props[name], name.to_s) }
    assert_equal(Time.at(1_700_000_000), props[:timestamp], "timestamp") # bunny decodes a timestamp as a Time
    # bunny hands back header strings as binary (ASCII-8BIT): compare bytes.
    headers.each { |key, value| assert_equal(as_bytes(value), as_bytes(props[:headers][key]), "header #{key}") }
    assert_equal(headers.keys.sort, props[:headers].keys.sort, "the broker added or dropped headers")

    _, props, body = @ch.basic_get(queue, manual_ack: false)
    assert_equal("", body)
    assert_equal("application/octet-stream", props[:content_type], "bunny's default content type")
    %i[headers message_id timestamp correlation_id].each { |name| assert_equal(nil, props[name], name.to_s) }
  end
end

class Transactions < Interop::TestCase
  def test_tx_commit_makes_publishes_and_acks_take_effect
    queue = queue("tx.commit")
    @ch.tx_select
    @ch.default_exchange.publish("a", routing_key: queue)
    @ch.default_exchange.publish("b", routing_key: queue)
    sleep 0.3
    assert_equal(0, depth(queue), "uncommitted publishes must not be visible")
    @ch.tx_commit
    wait_depth(queue, 2)

    get_a, _, body_a = @ch.basic_get(queue, manual_ack: true)
    get_b, _, body_b = @ch.basic_get(queue, manual_ack: true)
    assert_equal(%w[a b], [body_a, body_b])
    @ch.ack(get_a.delivery_tag)
    @ch.ack(get_b.delivery_tag)
    @ch.tx_commit
    # The acks were committed: closing the channel requeues nothing.
    @ch.close
    sleep 0.3
    assert_equal(0, depth(queue))
  end

  def test_tx_rollback_discards_publishes_and_acks
    queue = queue("tx.rollback")
    @ch.tx_select
    @ch.default_exchange.publish("discarded", routing_key: queue)
    @ch.tx_rollback
    @ch.default_exchange.publish("kept", routing_key: queue)
    @ch.tx_commit
    wait_depth(queue, 1)
    sleep 0.2
    assert_equal(1, depth(queue), "the rolled-back publish must never arrive")

    get_ok, _, body = @ch.basic_get(queue, manual_ack: true)
    assert_equal("kept", body)
    @ch.ack(get_ok.delivery_tag)
    @ch.tx_rollback
    # The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
    @ch.close
    wait_depth(queue, 1)
    ch = @conn.create_channel
    get_ok, _, body = ch.basic_get(queue, manual_ack: false)
    assert_equal("kept", body)
    assert_equal(true, get_ok.redelivered)
  end
end
