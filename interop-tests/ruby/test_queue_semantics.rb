# Queue semantics as bunny applications rely on them: message TTL and per-message expiration, length limits
# (x-max-length-bytes drop-head, reject-publish nacked to a confirm channel), a consumer's retry loop counted in
# x-death, message priorities, single active consumer, the quorum queue delivery limit and queue expiry. Each test
# passes against RabbitMQ 3.10 as well.

require_relative "harness"

class QueueSemantics < Interop::TestCase
  # Publishes [body, properties] pairs (or bodies) on a confirm channel and waits until the broker acked them all.
  def publish(queue, *messages)
    @ch.confirm_select unless @ch.using_publisher_confirms?
    messages.each do |message|
      body, properties = message.is_a?(Array) ? message : [message, {}]
      @ch.default_exchange.publish(body, routing_key: queue, **properties)
    end
    assert(@ch.wait_for_confirms, "publishes were nacked")
  end

  # basic.get (manual ack) until a message comes: [delivery_info, properties, body].
  def get_one(queue)
    wait_until("a message in #{queue}") do
      info, properties, body = @ch.basic_get(queue, manual_ack: true)
      info && [info, properties, body]
    end
  end

  # A message's headers: consumers get Bunny::MessageProperties, basic.get a plain hash.
  def headers(properties)
    (properties.is_a?(Hash) ? properties[:headers] : properties.headers) || {}
  end

  # The x-death entries of a message as [queue, reason, count] triples, most recent first.
  def deaths(properties)
    (headers(properties)["x-death"] || []).map { |d| [d["queue"], d["reason"], d["count"]] }
  end

  def test_message_ttl_drops_what_nobody_took_in_time
    # A second: long enough that the depth check right after the publish does not race the TTL on a busy machine.
    queue = queue("ttl", arguments: { "x-message-ttl" => 1000 })
    publish(queue, "short-lived")
    assert_equal(1, depth(queue), "depth right after the publish")
    wait_depth(queue, 0)
    assert_equal([], drain(@ch, queue))
  end

  def test_per_message_expiration_expires_behind_a_message_that_does_not
    queue = queue("expiration")
    publish(queue, "stays", ["goes", { expiration: 100 }])
    sleep 0.4
    # RabbitMQ expires only from the head: it may still count the expired message, but never delivers it.
    assert_equal(["stays"], drain(@ch, queue))
    wait_depth(queue, 0)
  end

  def test_max_length_bytes_drops_the_oldest
    queue = queue("maxbytes", arguments: { "x-max-length-bytes" => 10 })
    publish(queue, "aaaa", "bbbb", "cccc") # 12 body bytes: the oldest goes
    assert_equal(%w[bbbb cccc], drain(@ch, queue))
  end

  def test_reject_publish_nacks_what_does_not_fit
    queue = queue("full", arguments: { "x-max-length" => 1, "x-overflow" => "reject-publish" })
    publish(queue, "fits")
    @ch.default_exchange.publish("refused", routing_key: queue)
    assert_equal(false, @ch.wait_for_confirms, "wait_for_confirms after a publish that overflows")
    assert_equal([2], @ch.nacked_set.to_a, "the nacked publish sequence numbers")
    assert_equal(["fits"], drain(@ch, queue))
    publish(queue, "fits again")
    assert_equal(["fits again"], drain(@ch, queue))
  end

  def test_a_consumer_retry_loop_counts_its_rounds_in_x_death
    work = Interop.unique("work")
    retry_queue = Interop.unique("retry")
    delete_later(queue: work)
    delete_later(queue: retry_queue)
    @ch.queue_declare(work, arguments: { "x-dead-letter-exchange" => "", "x-dead-letter-routing-key" => retry_queue })
    @ch.queue_declare(retry_queue, arguments: {
                        "x-message-ttl" => 50, "x-dead-letter-exchange" => "", "x-dead-letter-routing-key" => work,
                      })
    worker = @conn.create_channel
    worker.prefetch(1)
    seen = []
    worker.basic_consume(work, Interop.unique("worker"), false) do |info, properties, body|
      seen << [body, deaths(properties), headers(properties)["x-first-death-reason"]]
      # The third attempt succeeds; the first two fail and go round through the retry queue.
      seen.size < 3 ? worker.reject(info.delivery_tag, false) : worker.ack(info.delivery_tag)
    end
    publish(work, "flaky")
    wait_until("three attempts", timeout: 10) { seen.size >= 3 }
    assert_equal(["flaky", [], nil], seen[0], "the first attempt")
    # The most recent death first; each (queue, reason) pair has one entry whose count goes up.
    assert_equal(["flaky", [[retry_queue, "expired", 1], [work, "rejected", 1]], "rejected"], seen[1], "attempt 2")
    assert_equal(["flaky", [[retry_queue, "expired", 2], [work, "rejected", 2]], "rejected"], seen[2], "attempt 3")
    sleep 0.2 # a fourth delivery would show up here
    assert_equal(3, seen.size, "the acked attempt ends the loop")
    assert_equal([0, 0], [depth(work), depth(retry_queue)])
  end

  def test_priorities_deliver_the_highest_first_to_a_prefetch_one_consumer
    queue = queue("prio", arguments: { "x-max-priority" => 10 })
    publish(queue, "none", ["low", { priority: 1 }], ["top", { priority: 9 }], ["mid", { priority: 5 }])
    consumer = @conn.create_channel
    consumer.prefetch(1)
    got = []
    consumer.basic_consume(queue, Interop.unique("prio"), false) do |info, _properties, body|
      got << body
      consumer.ack(info.delivery_tag)
    end
    wait_until("four deliveries") { got.size == 4 }
    assert_equal(%w[top mid low none], got)
  end

  def test_single_active_consumer_fails_over_when_the_active_one_cancels
    queue = queue("sac", arguments: { "x-single-active-consumer" => true })
    first = @conn.create_channel
    second = @conn.create_channel
    got = { first: [], second: [] }
    first_tag = Interop.unique("first")
    first.basic_consume(queue, first_tag, true) { |_info, _properties, body| got[:first] << body }
    second.basic_consume(queue, Interop.unique("second"), true) { |_info, _properties, body| got[:second] << body }
    publish(queue, "a0", "a1", "a2")
    wait_until("three deliveries to the first consumer") { got[:first].size == 3 }
    sleep 0.2 # a delivery to the waiting consumer would show up here
    assert_equal([], got[:second], "the second consumer waits while the first is active")

    first.basic_cancel(first_tag)
    publish(queue, "b0", "b1", "b2")
    wait_until("three deliveries to the second consumer") { got[:second].size == 3 }
    assert_equal({ first: %w[a0 a1 a2], second: %w[b0 b1 b2] }, got)
  end

  def test_quorum_delivery_limit_dead_letters_after_the_redeliveries
    dead = queue("dead")
    queue = queue("quorum", durable: true, arguments: {
                    "x-queue-type" => "quorum", "x-delivery-limit" => 1,
                    "x-dead-letter-exchange" => "", "x-dead-letter-routing-key" => dead,
                  })
    publish(queue, "poison")

    info, properties, = get_one(queue)
    assert_equal(false, info.redelivered, "redelivered on the first delivery")
    # RabbitMQ 3.10 sends x-delivery-count 0 on the first delivery; 3.13 (which Warren follows) leaves the header out
    # until the message comes back.
    count = headers(properties)["x-delivery-count"]
    assert([nil, 0].include?(count), "x-delivery-count #{count.inspect} on the first delivery")
    @ch.reject(info.delivery_tag, true)
    info, properties, body = get_one(queue)
    assert_equal(["poison", true], [body, info.redelivered], "the redelivery")
    assert_equal(1, headers(properties)["x-delivery-count"], "x-delivery-count")
    # Returned a second time, more often than the limit allows: dead-lettered instead of redelivered.
    @ch.reject(info.delivery_tag, true)

    info, properties, body = get_one(dead)
    assert_equal("poison", body)
    assert_equal([[queue, "delivery_limit", 1]], deaths(properties), "x-death")
    assert_equal("delivery_limit", headers(properties)["x-first-death-reason"])
    @ch.ack(info.delivery_tag)
    wait_depth(queue, 0)
    assert_equal([nil, nil, nil], @ch.basic_get(queue, manual_ack: true))
  end

  def test_unused_queue_expires
    queue = queue("expires", arguments: { "x-expires" => 300 })
    assert_equal(0, depth(queue))
    # Not polled: a passive declare counts as a use and would keep the queue alive.
    sleep 1.5
    assert_channel_closed(Bunny::NotFound, 404, "NOT_FOUND - no queue") { depth(queue) }
  end
end
