# Runs the bunny interop suite: every test_*.rb file here, one PASS/FAIL line per test, then the summary line that
# interop-tests/run parses (`interop-summary: passed=N failed=N skipped=N`).
#
# Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f ruby main.rb [PATTERN...]

$stdout.sync = true
begin
  require_relative "harness"
rescue LoadError => e
  puts "FAIL  bunny is not loadable (apt-get install ruby-bunny, or gem install bunny): #{e.message}"
  puts "interop-summary: passed=0 failed=1 skipped=0"
  exit 1
end

puts "bunny #{Bunny::VERSION} on Ruby #{RUBY_VERSION}, AMQP_URL=#{Interop.amqp_url}"
begin
  Interop.connect.close
rescue StandardError => e
  # every test would fail the same way; say it once
  puts "FAIL  cannot connect to the broker at #{Interop.amqp_url}: #{e.class}: #{e.message}"
  puts "interop-summary: passed=0 failed=1 skipped=0"
  exit 1
end

Dir[File.join(__dir__, "test_*.rb")].sort.each { |file| require file }
exit Interop.run(ARGV)
