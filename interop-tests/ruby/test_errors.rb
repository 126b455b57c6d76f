# Channel errors as bunny raises them (reply codes and RabbitMQ's close texts), and that the connection survives them.

require_relative "harness"

class ChannelErrors < Interop::TestCase
  def assert_connection_still_usable(session)
    ch = session.create_channel
    q = ch.queue("", exclusive: true)
    ch.default_exchange.publish("still fine", routing_key: q.name)
    ch.close
  end

  def test_exclusive_queue_from_another_connection_is_405
    queue = queue("exclusive", exclusive: true)
    other = connect
    locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '#{queue}' in vhost '/'"

    assert_channel_closed(Bunny::ResourceLocked, 405, locked) do
      other.create_channel.queue_declare(queue, exclusive: true)
    end
    assert_channel_closed(Bunny::ResourceLocked, 405, locked) do
      other.create_channel.queue_declare(queue, passive: true)
    end
    assert_channel_closed(Bunny::ResourceLocked, 405, locked) do
      other.create_channel.basic_consume(queue, "thief", true) { |*| }
    end
    assert_channel_closed(Bunny::ResourceLocked, 405, locked) do
      other.create_channel.queue_delete(queue)
    end
    # (basic.get is refused the same way, but bunny only notices the channel.close after its 15 s basic.get wait.)
    assert(other.open?, "a channel error must not close the connection")
    assert_connection_still_usable(other)

    # The owner is unaffected.
    @ch.default_exchange.publish("mine", routing_key: queue)
    wait_depth(queue, 1)
  end

  def test_passive_declare_of_missing_queue_is_404
    missing = Interop.unique("no-such-queue")
    error = assert_channel_closed(Bunny::NotFound, 404, "NOT_FOUND - no queue '#{missing}' in vhost '/'") do
      @ch.queue_declare(missing, passive: true)
    end
    assert_equal("NOT_FOUND - no queue '#{missing}' in vhost '/'", error.channel_close.reply_text)
    assert(@ch.closed?, "the channel is closed after the error")
    assert(@conn.open?, "a channel error must not close the connection")
    assert_connection_still_usable(@conn)
  end

  def test_passive_declare_of_missing_exchange_is_404
    missing = Interop.unique("no-such-exchange")
    assert_channel_closed(Bunny::NotFound, 404, "NOT_FOUND - no exchange '#{missing}' in vhost '/'") do
      @ch.exchange_declare(missing, "direct", passive: true)
    end
  end

  def test_redeclare_with_other_arguments_is_406
    queue = queue("args", arguments: { "x-message-ttl" => 60_000 })
    # The same arguments again are fine.
    @ch.queue_declare(queue, arguments: { "x-message-ttl" => 60_000 })

    assert_channel_closed(Bunny::PreconditionFailed, 406,
                          "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '#{queue}' in vhost '/'") do
      @ch.queue_declare(queue, arguments: { "x-message-ttl" => 1000 })
    end
    @ch = @conn.create_channel
    assert_channel_closed(Bunny::PreconditionFailed, 406,
                          "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '#{queue}' in vhost '/'") do
      @ch.queue_declare(queue, durable: true, arguments: { "x-message-ttl" => 60_000 })
    end
    @ch = @conn.create_channel
    exchange = exchange("args", :direct)
    assert_channel_closed(Bunny::PreconditionFailed, 406,
                          "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '#{exchange}' in vhost '/'") do
      @ch.exchange_declare(exchange, "fanout")
    end
    # The queue kept its original definition.
    @ch = @conn.create_channel
    @ch.queue_declare(queue, arguments: { "x-message-ttl" => 60_000 })
    assert_connection_still_usable(@conn)
  end

  def test_wrong_password_is_refused
    url = Interop.amqp_url.sub(%r{\A(amqps?://[^:/@]*):[^@]*@}, '\1:definitely-not-the-password@')
    assert(url != Interop.amqp_url, "AMQP_URL #{Interop.amqp_url.inspect} carries no password to change")
    begin
      Bunny.new(url, automatically_recover: false, log_level: :fatal, connection_timeout: 10).start
      flunk("a wrong password was accepted")
    rescue Bunny::AuthenticationFailureError, Bunny::PossibleAuthenticationFailureError
      # RabbitMQ advertises authentication_failure_close and closes with 403 ACCESS_REFUSED.
    end
  end
end
