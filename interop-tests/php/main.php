<?php
// Runs the php-amqplib interop suite: every test_*.php file here, one PASS/FAIL line per test, then the summary line
// that interop-tests/run parses (`interop-summary: passed=N failed=N skipped=N`).
//
// Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f php main.php [PATTERN...]

namespace Interop;

ini_set('memory_limit', '1G');  // the 16 MiB message is held several times over
error_reporting(E_ALL);

// Debian's php-amqplib installs its own autoloader; a Composer install has vendor/autoload.php.
$autoloaders = [getenv('PHP_AMQPLIB_AUTOLOAD') ?: '', '/usr/share/php/PhpAmqpLib/autoload.php', __DIR__ . '/vendor/autoload.php'];
$found = false;
foreach ($autoloaders as $autoload) {
    if ($autoload !== '' && is_file($autoload)) {
        require_once $autoload;
        $found = true;
        break;
    }
}
if (!$found || !class_exists(\PhpAmqpLib\Connection\AMQPStreamConnection::class)) {
    echo "FAIL  php-amqplib is not installed (apt-get install php-cli php-amqplib)\n";
    echo "interop-summary: passed=0 failed=1 skipped=0\n";
    exit(1);
}
require_once __DIR__ . '/harness.php';

printf("php-amqplib %s on PHP %s, AMQP_URL=%s\n",
    \PhpAmqpLib\Package::VERSION ?? '?', PHP_VERSION, amqp_url());
try {
    connect()->close();
} catch (\Throwable $e) {
    // every test would fail the same way; say it once
    printf("FAIL  cannot connect to the broker at %s: %s: %s\n", amqp_url(), get_class($e), $e->getMessage());
    echo "interop-summary: passed=0 failed=1 skipped=0\n";
    exit(1);
}

$files = glob(__DIR__ . '/test_*.php');
sort($files);
foreach ($files as $file) {
    require_once $file;
}
exit(run(array_slice($argv, 1)));
