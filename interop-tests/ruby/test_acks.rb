# basic.get and the ways a consumer settles a delivery (nack with and without requeue, reject), publisher confirms,
# mandatory publishing with basic.return, and a server-sent basic.cancel when a consumed queue is deleted.

require_relative "harness"

class Acks < Interop::TestCase
  def publish(queue, *bodies)
    @ch.confirm_select unless @ch.using_publisher_confirms?
    bodies.each { |body| @ch.default_exchange.publish(body, routing_key: queue) }
    assert(@ch.wait_for_confirms, "publishes were nacked")
  end

  # Consumes one message with manual ack on `ch`, then cancels the consumer (its delivery stays unacked).
  def next_delivery(ch, queue)
    got = []
    consumer = ch.basic_consume(queue, Interop.unique("ctag"), false) { |info, _props, body| got << [info, body] }
    wait_until("a delivery") { got.any? }
    ch.basic_cancel(consumer.consumer_tag)
    got.first
  end

  def test_basic_get
    queue = queue("get")
    assert_equal([nil, nil, nil], @ch.basic_get(queue, manual_ack: true), "basic.get-empty on an empty queue")

    publish(queue, "a", "b", "c")
    get_ok, _props, body = @ch.basic_get(queue, manual_ack: true)
    assert_equal("a", body)
    assert_equal(2, get_ok.message_count, "basic.get-ok message_count counts what is left")
    assert_equal(1, get_ok.delivery_tag.to_i)
    assert_equal(false, get_ok.redelivered)
    assert_equal(["", queue], [get_ok.exchange, get_ok.routing_key])
    @ch.ack(get_ok.delivery_tag)

    get_ok, _, body = @ch.basic_get(queue, manual_ack: false)
    assert_equal(["b", 1, 2], [body, get_ok.message_count, get_ok.delivery_tag.to_i])
    get_ok, _, body = @ch.basic_get(queue, manual_ack: true) # not acked
    assert_equal(["c", 0, 3], [body, get_ok.message_count, get_ok.delivery_tag.to_i])
    assert_equal([nil, nil, nil], @ch.basic_get(queue, manual_ack: true))

    # Closing the channel returns the unacked message, now marked redelivered.
    @ch.close
    @ch = @conn.create_channel
    wait_depth(queue, 1)
    get_ok, _, body = @ch.basic_get(queue, manual_ack: false)
    assert_equal("c", body)
    assert_equal(true, get_ok.redelivered)
    assert_equal(1, get_ok.delivery_tag.to_i, "delivery tags are per channel and start at 1")
  end

  def test_nack_with_requeue_redelivers
    queue = queue("nack.requeue")
    publish(queue, "retry me")
    consumer = @conn.create_channel
    info, body = next_delivery(consumer, queue)
    assert_equal(["retry me", false], [body, info.redelivered?])
    consumer.nack(info.delivery_tag, false, true)

    info, body = next_delivery(consumer, queue)
    assert_equal("retry me", body)
    assert_equal(true, info.redelivered?, "a nacked-and-requeued message comes back with redelivered=true")
    consumer.ack(info.delivery_tag)
    sleep 0.2
    assert_equal(0, depth(queue))
    assert_equal([nil, nil, nil], @ch.basic_get(queue, manual_ack: true))
  end

  def test_nack_without_requeue_discards
    queue = queue("nack.drop")
    publish(queue, "poison", "fine")
    get_ok, _, body = @ch.basic_get(queue, manual_ack: true)
    assert_equal("poison", body)
    @ch.nack(get_ok.delivery_tag, false, false)
    _, _, body = @ch.basic_get(queue, manual_ack: false)
    assert_equal("fine", body)
    assert_equal([nil, nil, nil], @ch.basic_get(queue, manual_ack: true), "a nack without requeue drops the message")
    # Not hidden somewhere either: closing the channel brings nothing back.
    @ch.close
    sleep 0.2
    assert_equal(0, depth(queue))
  end

  def test_nack_multiple_requeues_all_up_to_the_tag
    queue = queue("nack.multiple")
    publish(queue, "1", "2", "3", "4")
    tags = Array.new(3) { @ch.basic_get(queue, manual_ack: true)[0].delivery_tag.to_i }
    assert_equal([1, 2, 3], tags)
    @ch.nack(tags[1], true, true) # settles 1 and 2, leaves 3 unacked
    wait_depth(queue, 3)
    bodies = Array.new(3) do
      get_ok, _, body = @ch.basic_get(queue, manual_ack: false)
      [body, get_ok.redelivered]
    end
    assert_equal([["1", true], ["2", true], ["4", false]], bodies.sort)
    @ch.ack(tags[2])
    @ch.close
    sleep 0.2
    assert_equal(0, depth(queue))
  end

  def test_reject_with_and_without_requeue
    queue = queue("reject")
    publish(queue, "m")
    consumer = @conn.create_channel
    info, = next_delivery(consumer, queue)
    assert_equal(false, info.redelivered?)
    consumer.reject(info.delivery_tag, true)

    info, body = next_delivery(consumer, queue)
    assert_equal("m", body)
    assert_equal(true, info.redelivered?)
    consumer.reject(info.delivery_tag, false)
    sleep 0.2
    assert_equal(0, depth(queue))
    consumer.close
    sleep 0.2
    assert_equal(0, depth(queue), "a message rejected without requeue must not come back")
  end
end

class PublisherConfirms < Interop::TestCase
  def test_confirmed_publishes_are_acked_and_enqueued
    queue = queue("confirm", durable: true)
    @ch.confirm_select
    x = @ch.default_exchange
    50.times { |i| x.publish("persistent-#{i}", routing_key: queue, persistent: true) }
    50.times { |i| x.publish("transient-#{i}", routing_key: queue) }
    assert_equal(true, @ch.wait_for_confirms, "every publish must be acked")
    assert(@ch.unconfirmed_set.empty?, "unconfirmed: #{@ch.unconfirmed_set.to_a.inspect}")
    assert(@ch.nacked_set.empty?, "nacked: #{@ch.nacked_set.to_a.inspect}")
    assert_equal(100, @ch.next_publish_seq_no - 1)
    assert_equal(100, depth(queue))
    bodies = drain(@ch, queue)
    assert_equal(%w[persistent-0 persistent-1], bodies[0, 2])
    assert_equal("transient-49", bodies[-1])
  end

  def test_confirm_callback_sees_every_sequence_number
    queue = queue("confirm.callback")
    acked = []
    @ch.confirm_select(proc { |tag, _multiple, nack| acked << [tag, nack] })
    20.times { |i| @ch.default_exchange.publish("m#{i}", routing_key: queue) }
    assert(@ch.wait_for_confirms)
    assert_equal((1..20).map { |tag| [tag, false] }, acked.sort)
  end

  def test_mandatory_unroutable_is_returned
    @ch.confirm_select
    returned = []
    key = Interop.unique("nowhere")
    direct = @ch.exchange("amq.direct", type: :direct) # predefined: bunny does not redeclare it
    direct.on_return { |info, props, body| returned << [info, props, body] }
    direct.publish("lost", routing_key: key, mandatory: true, message_id: "m-1")
    assert(@ch.wait_for_confirms, "an unroutable message is still confirmed (acked)")
    wait_until("basic.return") { returned.any? }
    info, props, body = returned.first
    assert_equal([312, "NO_ROUTE"], [info.reply_code, info.reply_text])
    assert_equal(["amq.direct", key], [info.exchange, info.routing_key])
    assert_equal("lost", body)
    assert_equal("m-1", props.message_id)

    # Without mandatory an unroutable message is confirmed and dropped silently; a routable one is not returned.
    direct.publish("dropped", routing_key: key)
    queue = queue("routable")
    @ch.default_exchange.publish("kept", routing_key: queue, mandatory: true)
    assert(@ch.wait_for_confirms)
    sleep 0.2
    assert_equal(1, returned.size, "only the mandatory unroutable publish comes back")
    assert_equal(["kept"], drain(@ch, queue))
  end
end

class ConsumerCancelledByServer < Interop::TestCase
  def test_deleting_the_queue_cancels_its_consumer
    queue = queue("cancel")
    consumer_ch = @conn.create_channel
    cancelled = []
    consumer = Bunny::Consumer.new(consumer_ch, queue, Interop.unique("ctag"), true)
    consumer.on_delivery { |_info, _props, _body| }
    consumer.on_cancellation { |basic_cancel| cancelled << basic_cancel.consumer_tag }
    consumer_ch.basic_consume_with(consumer)

    @ch.queue_delete(queue)
    wait_until("basic.cancel from the server") { cancelled.any? }
    sleep 0.3
    assert_equal([consumer.consumer_tag], cancelled, "exactly one basic.cancel for our consumer")
    assert(consumer_ch.open?, "a server-side cancel must leave the channel open")
    spare = consumer_ch.queue("", exclusive: true)
    assert_equal([nil, nil, nil], consumer_ch.basic_get(spare.name, manual_ack: false), "the channel still works")
  end
end
