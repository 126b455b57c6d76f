# The six RabbitMQ tutorials (rabbitmq.com/tutorials, Ruby/bunny), each turned into assertions on what arrives.

require "securerandom"
require_relative "harness"

class Tutorials < Interop::TestCase
  def test_tutorial1_hello_world
    queue = queue("hello")
    @ch.default_exchange.publish("Hello World!", routing_key: queue)

    received = []
    consumer = @ch.queue(queue, no_declare: true).subscribe do |delivery_info, _properties, body|
      received << [delivery_info, body]
    end
    wait_until("the message", timeout: 10) { received.any? }
    consumer.cancel

    delivery_info, body = received.first
    assert_equal(1, received.size)
    assert_equal("Hello World!", body)
    assert_equal("", delivery_info.exchange)
    assert_equal(queue, delivery_info.routing_key)
    assert_equal(false, delivery_info.redelivered?)
    assert_equal(0, depth(queue))
  end

  def test_tutorial2_work_queues_fair_dispatch_and_redelivery
    queue = queue("task_queue", durable: true)
    @ch.confirm_select

    worker_a = connect.create_channel
    worker_a.prefetch(1)
    got_a = []
    worker_a.basic_consume(queue, "worker-a", false) { |info, props, body| got_a << [info, props, body] }
    @ch.default_exchange.publish("task1", routing_key: queue, persistent: true)
    wait_until("worker A's task") { got_a.any? }

    worker_b = connect.create_channel
    worker_b.prefetch(1)
    got_b = []
    worker_b.basic_consume(queue, "worker-b", false) { |info, props, body| got_b << [info, props, body] }
    @ch.default_exchange.publish("task2", routing_key: queue, persistent: true)
    @ch.default_exchange.publish("task3", routing_key: queue, persistent: true)
    assert(@ch.wait_for_confirms, "publishes were nacked")
    wait_until("worker B's task") { got_b.any? }

    # prefetch 1: each worker holds one unacked task, the third waits in the queue.
    sleep 0.3
    assert_equal(["task1"], got_a.map(&:last))
    assert_equal(["task2"], got_b.map(&:last))
    assert_equal(false, got_a[0][0].redelivered?)
    assert_equal(2, got_a[0][1].delivery_mode)
    wait_depth(queue, 1)

    # Worker A's channel closes without acking: its task goes back to the queue, B is still busy.
    worker_a.close
    wait_depth(queue, 2)
    sleep 0.3
    assert_equal(["task2"], got_b.map(&:last))

    # B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
    worker_b.ack(got_b[0][0].delivery_tag)
    wait_until("task1 redelivered to B") { got_b.size == 2 }
    info, _, body = got_b[1]
    assert_equal("task1", body)
    assert_equal(true, info.redelivered?, "a requeued message must arrive with redelivered=true")
    worker_b.ack(info.delivery_tag)
    wait_until("task3 at B") { got_b.size == 3 }
    info, _, body = got_b[2]
    assert_equal("task3", body)
    assert_equal(false, info.redelivered?)
    worker_b.ack(info.delivery_tag)
    wait_depth(queue, 0)
  end

  def test_tutorial3_publish_subscribe_fanout
    exchange = exchange("logs", :fanout)
    @ch.confirm_select
    logs = @ch.fanout(exchange, no_declare: true)
    logs.publish("before anyone listens")

    subscribers = Array.new(2) do
      ch = connect.create_channel
      q = ch.queue("", exclusive: true)
      assert(q.name.start_with?("amq.gen-"), "server-named queue #{q.name.inspect}")
      q.bind(exchange)
      got = []
      q.subscribe { |info, _props, body| got << [info.exchange, body] }
      [ch, q.name, got]
    end
    assert(subscribers[0][1] != subscribers[1][1], "two server-named queues got the same name")

    logs.publish("log-1", routing_key: "ignored.key")
    logs.publish("log-2")
    assert(@ch.wait_for_confirms, "publishes were nacked")
    subscribers.each do |_ch, _queue, got|
      wait_until("two log lines") { got.size >= 2 }
      sleep 0.1
      assert_equal([[exchange, "log-1"], [exchange, "log-2"]], got)
    end

    # An exclusive queue goes away with its connection.
    first_ch, first_queue, = subscribers[0]
    first_ch.connection.close
    wait_gone(first_queue)
  end

  def test_tutorial4_routing_direct
    exchange = exchange("direct_logs", :direct)
    errors_only = @ch.queue("", exclusive: true).bind(exchange, routing_key: "error").name
    everything = @ch.queue("", exclusive: true)
    %w[info warning error].each { |severity| everything.bind(exchange, routing_key: severity) }

    @ch.confirm_select
    x = @ch.direct(exchange, no_declare: true)
    %w[info warning error debug].each { |severity| x.publish(severity, routing_key: severity) }
    assert(@ch.wait_for_confirms)

    assert_equal(["error"], drain(@ch, errors_only))
    assert_equal(%w[info warning error], drain(@ch, everything.name))

    # Unbinding stops the flow for that key only.
    everything.unbind(exchange, routing_key: "info")
    x.publish("info-2", routing_key: "info")
    x.publish("warning-2", routing_key: "warning")
    assert(@ch.wait_for_confirms)
    assert_equal(["warning-2"], drain(@ch, everything.name))
  end

  def test_tutorial5_topics
    exchange = exchange("topic_logs", :topic)
    q1 = @ch.queue("", exclusive: true).bind(exchange, routing_key: "*.orange.*").name
    q2 = @ch.queue("", exclusive: true)
    q2.bind(exchange, routing_key: "*.*.rabbit")
    q2.bind(exchange, routing_key: "lazy.#")
    all = @ch.queue("", exclusive: true).bind(exchange, routing_key: "#").name

    keys = [
      "quick.orange.rabbit",      # Q1, Q2
      "lazy.orange.elephant",     # Q1, Q2
      "quick.orange.fox",         # Q1
      "lazy.brown.fox",           # Q2
      "lazy.pink.rabbit",         # Q2, once although two bindings match
      "quick.brown.fox",          # nobody but '#'
      "orange",                   # nobody but '#'
      "quick.orange.male.rabbit", # nobody but '#'
      "lazy.orange.male.rabbit",  # Q2
      "lazy",                     # Q2: '#' matches zero words
    ]
    @ch.confirm_select
    x = @ch.topic(exchange, no_declare: true)
    keys.each { |key| x.publish(key, routing_key: key) }
    assert(@ch.wait_for_confirms)

    assert_equal(%w[quick.orange.rabbit lazy.orange.elephant quick.orange.fox], drain(@ch, q1))
    assert_equal(%w[quick.orange.rabbit lazy.orange.elephant lazy.brown.fox lazy.pink.rabbit
                    lazy.orange.male.rabbit lazy], drain(@ch, q2.name))
    assert_equal(keys, drain(@ch, all))
  end

  def test_tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id
    rpc_queue = queue("rpc_queue")
    fib = ->(n) { n < 2 ? n : fib.call(n - 1) + fib.call(n - 2) }

    server = connect.create_channel
    server.prefetch(1)
    server.basic_consume(rpc_queue, "rpc-server", false) do |info, props, body|
      server.default_exchange.publish(fib.call(Integer(body)).to_s,
                                      routing_key: props.reply_to, correlation_id: props.correlation_id)
      server.ack(info.delivery_tag)
    end

    client = connect.create_channel
    reply_queue = client.queue("", exclusive: true)
    assert(reply_queue.name.start_with?("amq.gen-"), "server-named reply queue #{reply_queue.name.inspect}")
    responses = {}
    reply_queue.subscribe { |_info, props, body| responses[props.correlation_id] = Integer(body) }

    requests = {}
    [0, 1, 10, 20].each do |n|
      correlation_id = SecureRandom.uuid
      requests[correlation_id] = n
      client.default_exchange.publish(n.to_s, routing_key: rpc_queue, reply_to: reply_queue.name,
                                              correlation_id: correlation_id)
    end
    wait_until("#{requests.size} RPC replies", timeout: 10) { responses.size >= requests.size }
    assert_equal(requests.transform_values { |n| fib.call(n) }, responses)
  end
end
