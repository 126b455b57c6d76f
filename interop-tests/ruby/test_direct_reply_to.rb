# Direct reply-to (amq.rabbitmq.reply-to) with bunny: an RPC round trip across two connections.

require_relative "harness"

class DirectReplyTo < Interop::TestCase
  PSEUDO = "amq.rabbitmq.reply-to".freeze

  def test_rpc_round_trip_across_connections
    requests = queue("rpc")

    # The requester consumes the pseudo-queue with no-ack (bunny's no_ack argument) before it publishes.
    replies = Queue.new
    @ch.basic_consume(PSEUDO, @ch.generate_consumer_tag, true) { |info, props, body| replies << [info, props, body] }

    # The responder, on another connection, answers to whatever reply_to the request carries.
    responder = connect.create_channel
    seen = Queue.new
    responder.basic_consume(requests, responder.generate_consumer_tag, true) do |_info, props, body|
      seen << props
      responder.default_exchange.publish("pong:#{body}", routing_key: props.reply_to,
                                                         correlation_id: props.correlation_id)
    end

    @ch.default_exchange.publish("ping", routing_key: requests, reply_to: PSEUDO, correlation_id: "c1")
    wait_until("the reply", timeout: 5) { !replies.empty? }

    request = seen.pop
    assert(request.reply_to.start_with?("#{PSEUDO}."), "the broker rewrote reply_to to a reply name, not " \
                                                       "#{request.reply_to.inspect}")
    assert_equal("c1", request.correlation_id, "the request's correlation id")
    info, props, body = replies.pop
    assert_equal("pong:ping", body, "reply body")
    assert_equal("c1", props.correlation_id, "reply correlation id")
    assert_equal("", info.exchange, "reply exchange")
    assert_equal(request.reply_to, info.routing_key, "reply routing key")
    sleep 0.2
    assert(replies.empty?, "one reply only")
    assert(@ch.open?, "the requester's channel is open")
  end
end
