# Shared pieces of the bunny interop suite: connecting to the broker under test, unique names, cleanup, waiting,
# assertions, and the runner that prints one line per test and the `interop-summary:` line interop-tests/run parses.
#
# Every test talks to the broker named by AMQP_URL and creates its own uniquely named queues and exchanges, so the
# suite can run against a shared RabbitMQ in differential mode. Tests assert what RabbitMQ does; where Warren differs,
# the test fails and says what it saw.

require "bunny"
require "securerandom"
require "timeout"

module Interop
  DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f".freeze
  # A test that runs longer than this is stuck (a lost delivery, a missing reply): fail it instead of hanging the run.
  TEST_TIMEOUT_SECONDS = Integer(ENV.fetch("INTEROP_TEST_TIMEOUT", "60"))

  class AssertionFailed < StandardError; end

  def self.amqp_url
    ENV.fetch("AMQP_URL", DEFAULT_URL)
  end

  # A started Bunny session for the broker under test. Automatic recovery is off: a dropped connection must fail the
  # test that caused it, not be papered over by a reconnect.
  def self.connect(**options)
    defaults = {
      automatically_recover: false,
      connection_timeout: 10,
      continuation_timeout: 15_000,
      log_level: ENV["INTEROP_DEBUG"] ? :debug : :fatal,
    }
    session = Bunny.new(amqp_url, **defaults.merge(options))
    session.start
    session
  end

  def self.unique(stem)
    "interop.rb.#{stem}.#{SecureRandom.hex(5)}"
  end

  # A test case: one open session and channel (`@conn`, `@ch`), more on request, all closed and every declared queue
  # and exchange deleted afterwards. Subclasses define `test_*` methods.
  class TestCase
    @cases = []
    class << self
      attr_reader :cases

      def inherited(klass)
        super
        TestCase.cases << klass
      end
    end

    def setup
      @sessions = []
      @queues = []
      @exchanges = []
      @conn = connect
      @ch = @conn.create_channel
    end

    def teardown
      @sessions.reverse_each { |s| close_quietly(s) }
      return if @queues.empty? && @exchanges.empty?

      cleaner = Interop.connect
      begin
        [[:queue_delete, @queues], [:exchange_delete, @exchanges]].each do |method, names|
          names.each do |name|
            ch = cleaner.create_channel
            begin
              ch.public_send(method, name)
              ch.close
            rescue Bunny::Exception, Timeout::Error
              # already gone, or exclusive to a connection that is now closed
            end
          end
        end
      ensure
        close_quietly(cleaner)
      end
    end

    # --- topology -------------------------------------------------------------------------------------------------

    def connect(**options)
      session = Interop.connect(**options)
      @sessions << session
      session
    end

    # Declares a uniquely named queue on `@ch` (queue.declare itself, not bunny's per-channel cache) and returns its
    # name.
    def queue(stem, **options)
      name = Interop.unique(stem)
      @queues << name
      @ch.queue_declare(name, options)
      name
    end

    def exchange(stem, type, **options)
      name = Interop.unique(stem)
      @exchanges << name
      @ch.exchange_declare(name, type.to_s, options)
      name
    end

    def delete_later(queue: nil, exchange: nil)
      @queues << queue if queue
      @exchanges << exchange if exchange
    end

    # --- observing the broker -------------------------------------------------------------------------------------

    # The queue's ready-message count, read with a passive declare on a throwaway channel (a failed passive declare
    # closes its channel).
    def depth(queue)
      ch = @conn.create_channel
      begin
        ch.queue_declare(queue, passive: true).message_count
      ensure
        ch.close if ch.open?
      end
    end

    def wait_until(what, timeout: 5.0)
      deadline = monotonic + timeout
      loop do
        value = yield
        return value if value
        flunk("timed out after #{timeout} s waiting for #{what}") if monotonic > deadline
        sleep 0.02
      end
    end

    def wait_depth(queue, expected, timeout: 5.0)
      seen = nil
      deadline = monotonic + timeout
      loop do
        seen = depth(queue)
        return if seen == expected
        flunk("queue #{queue} holds #{seen} ready messages, expected #{expected}") if monotonic > deadline
        sleep 0.02
      end
    end

    def wait_gone(queue, timeout: 5.0)
      deadline = monotonic + timeout
      loop do
        begin
          depth(queue)
        rescue Bunny::NotFound
          return
        end
        flunk("queue #{queue} still exists after #{timeout} s") if monotonic > deadline
        sleep 0.05
      end
    end

    # basic.get with auto-ack until the queue is empty; returns the bodies in order.
    def drain(ch, queue)
      bodies = []
      loop do
        _, _, body = ch.basic_get(queue, manual_ack: false)
        return bodies if body.nil?
        bodies << body
      end
    end

    # --- assertions -----------------------------------------------------------------------------------------------

    def flunk(message)
      raise AssertionFailed, message
    end

    def assert(condition, message = "assertion failed")
      flunk(message) unless condition
    end

    def assert_equal(expected, actual, message = nil)
      return if expected == actual
      flunk("#{message ? "#{message}: " : ""}expected #{expected.inspect}, got #{actual.inspect}")
    end

    # Runs the block and checks that the broker closed the channel with `code` and a reply text starting with
    # `text_prefix` (RabbitMQ's close texts; clients log and sometimes match them). Returns the exception.
    def assert_channel_closed(klass, code, text_prefix)
      begin
        yield
      rescue klass => e
        close = e.channel_close
        assert_equal(code, close.reply_code, "reply code (#{close.reply_text})")
        assert(close.reply_text.start_with?(text_prefix),
               "reply text #{close.reply_text.inspect} does not start with #{text_prefix.inspect}")
        return e
      end
      flunk("expected the broker to close the channel with #{code} (#{klass}), but nothing was raised")
    end

    private

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end

    def close_quietly(session)
      Timeout.timeout(10) { session.close if session.open? }
    rescue StandardError, Timeout::Error
      # a connection the broker already dropped is fine to abandon here
    end
  end

  # Runs every test_* method of every TestCase subclass (or those whose name contains one of `patterns`), one
  # PASS/FAIL line each, then the summary line. Returns the process exit status.
  def self.run(patterns)
    passed = failed = 0
    TestCase.cases.each do |klass|
      klass.public_instance_methods(false).grep(/\Atest_/).sort.each do |method|
        name = "#{klass.name}.#{method}"
        next unless patterns.empty? || patterns.any? { |p| name.include?(p) }

        started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        error = nil
        test = klass.new
        begin
          Timeout.timeout(TEST_TIMEOUT_SECONDS, AssertionFailed, "test took longer than #{TEST_TIMEOUT_SECONDS} s") do
            begin
              test.setup
              test.public_send(method)
            ensure
              test.teardown
            end
          end
        rescue Exception => e # rubocop:disable Lint/RescueException - a crash in one test must not stop the run
          raise if e.is_a?(Interrupt) || e.is_a?(SystemExit)
          error = e
        end
        elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
        if error
          failed += 1
          puts format("%-5s %s (%.2fs)", "FAIL", name, elapsed)
          puts "      #{error.class}: #{error.message}"
          (error.backtrace || []).reject { |l| l.include?("/gems/") }.first(6).each { |l| puts "        #{l}" }
        else
          passed += 1
          puts format("%-5s %s (%.2fs)", "PASS", name, elapsed)
        end
        $stdout.flush
      end
    end
    puts "interop-summary: passed=#{passed} failed=#{failed} skipped=0"
    failed.zero? ? 0 : 1
  end
end
