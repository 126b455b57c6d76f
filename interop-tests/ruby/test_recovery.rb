# Bunny's automatic connection recovery against a real broker. The suite cannot restart the broker, so the recovering
# session runs through a loopback TCP proxy that the test cuts (as the Java suite's RecoveryTest does): bunny sees a
# network failure, the broker a dropped client (its unacked deliveries are requeued as redelivered).

require "socket"
require "uri"
require_relative "harness"

# A loopback TCP proxy to the broker whose proxied connections can all be cut at once while it keeps listening.
class CuttableProxy
  attr_reader :port

  def initialize(target_host, target_port)
    @target_host = target_host
    @target_port = target_port
    @server = TCPServer.new("127.0.0.1", 0)
    @port = @server.addr[1]
    @sockets = []
    @lock = Mutex.new
    @accepted = 0
    @acceptor = Thread.new { accept_loop }
  end

  def accepted
    @lock.synchronize { @accepted }
  end

  # Closes every proxied socket pair; returns how many client connections were cut.
  def cut_all
    sockets = @lock.synchronize { @sockets.slice!(0..) }
    sockets.each { |s| close_socket(s) }
    sockets.size / 2
  end

  def close
    close_socket(@server)
    @acceptor.join(2)
    cut_all
  end

  private

  def accept_loop
    loop do
      client = @server.accept
      upstream = begin
        TCPSocket.new(@target_host, @target_port)
      rescue SystemCallError
        close_socket(client)
        next
      end
      @lock.synchronize do
        @accepted += 1
        @sockets << client << upstream
      end
      Thread.new { pump(client, upstream) }
      Thread.new { pump(upstream, client) }
    end
  rescue IOError, SystemCallError
    # the proxy was closed
  end

  def pump(from, to)
    loop { to.write(from.readpartial(64 * 1024)) }
  rescue IOError, SystemCallError
    # cut, or the other side went away
  ensure
    close_socket(from)
    close_socket(to)
  end

  def close_socket(socket)
    socket.shutdown(:RDWR) if socket.respond_to?(:shutdown) && !socket.is_a?(TCPServer)
  rescue IOError, SystemCallError
    # already closed or not connected
  ensure
    begin
      socket.close
    rescue IOError, SystemCallError
      # already closed
    end
  end
end

class Recovery < Interop::TestCase
  RECOVERY_TIMEOUT = 20.0

  def test_automatic_recovery_redelivers_unacked_and_restores_consumer
    target = URI.parse(Interop.amqp_url)
    proxy = CuttableProxy.new(target.host, target.port || 5672)
    proxied_url = target.dup
    proxied_url.host = "127.0.0.1"
    proxied_url.port = proxy.port

    recoveries = Queue.new
    session = Bunny.new(proxied_url.to_s,
                        automatically_recover: true,
                        network_recovery_interval: 0.5,
                        recovery_attempts: 60, # ~30 s of retries: never loop forever after a failed test
                        recovery_completed: -> { recoveries << :done },
                        connection_timeout: 10,
                        continuation_timeout: 15_000,
                        log_level: ENV["INTEROP_DEBUG"] ? :debug : :fatal)
    @sessions << session
    begin
      session.start
      assert_equal(1, proxy.accepted, "connections through the proxy")

      # Topology bunny records and replays: a named, non-exclusive, non-auto-delete queue bound to a direct exchange,
      # consumed with manual acks.
      ch = session.create_channel
      queue_name = Interop.unique("recovery.work")
      exchange_name = Interop.unique("recovery.direct")
      delete_later(queue: queue_name, exchange: exchange_name)
      x = ch.direct(exchange_name, durable: false, auto_delete: false)
      q = ch.queue(queue_name, durable: false, exclusive: false, auto_delete: false)
      q.bind(x, routing_key: "work")

      deliveries = Queue.new
      q.subscribe(manual_ack: true, consumer_tag: Interop.unique("ctag")) do |info, props, body|
        deliveries << [info, props, body]
      end

      x.publish("before the cut", routing_key: "work", message_id: "m1")
      info, props, body = pop(deliveries, "the first delivery")
      assert_equal(["before the cut", "m1", false], [body, props.message_id, info.redelivered?],
                   "first delivery (body, message_id, redelivered)")
      # ... and not acked: the broker must requeue it when the connection drops.

      cut = proxy.cut_all
      assert_equal(1, cut, "proxied connections cut")

      started = monotonic
      pop(recoveries, "bunny to report recovery completed", timeout: RECOVERY_TIMEOUT)
      wait_until("the recovered session to be open", timeout: [RECOVERY_TIMEOUT - (monotonic - started), 1].max) do
        session.open?
      end
      assert_equal(2, proxy.accepted, "connections through the proxy after one recovery")
      assert(ch.open?, "the channel is open again after recovery (status #{ch.status})")

      info, props, body = pop(deliveries, "the redelivery of the unacked message to the recovered consumer")
      assert_equal(["before the cut", "m1"], [body, props.message_id], "redelivered message (body, message_id)")
      assert_equal(true, info.redelivered?, "a message unacked when the connection dropped comes back redelivered")
      ch.ack(info.delivery_tag)

      x.publish("after recovery", routing_key: "work", message_id: "m2")
      info, props, body = pop(deliveries, "a delivery published after recovery")
      assert_equal(["after recovery", "m2", false], [body, props.message_id, info.redelivered?],
                   "post-recovery delivery (body, message_id, redelivered)")
      ch.ack(info.delivery_tag)

      # Both acks took effect on the recovered channel: nothing is left, ready or unacked.
      ch.close
      wait_depth(queue_name, 0)
      assert(deliveries.empty?, "unexpected extra deliveries: #{deliveries.size}")
    ensure
      close_quietly(session)
      proxy.close
    end
  end

  private

  def pop(queue, what, timeout: 5.0)
    deadline = monotonic + timeout
    loop do
      begin
        return queue.pop(true)
      rescue ThreadError
        flunk("timed out after #{timeout} s waiting for #{what}") if monotonic > deadline
        sleep 0.02
      end
    end
  end
end
