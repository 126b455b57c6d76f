// Runs the RabbitMQ Java client interop suite: every test method (name starting with "test") of the classes listed
// below, one result line per test, then the summary line that interop-tests/run parses
// (`interop-summary: passed=N failed=N skipped=N`).
//
// Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f java -cp ... interop.Main [-k PATTERN]...
package interop;

import com.rabbitmq.client.Connection;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

public final class Main {
    private static final List<Class<? extends BrokerTest>> TEST_CLASSES = List.of(
            AcksTest.class,
            ConfirmsTest.class,
            ConnectionTest.class,
            ConsumerCancelTest.class,
            ErrorsTest.class,
            QueueSemanticsTest.class,
            RecoveryTest.class,
            TlsTest.class,
            TutorialsTest.class,
            TxTest.class);

    /** A test that runs longer than this is stuck (a lost delivery, a missing reply): fail it, don't hang the run. */
    private static final long TEST_TIMEOUT_SECONDS = parseTimeout(System.getenv("INTEROP_TEST_TIMEOUT"));

    private Main() {}

    public static void main(String[] args) throws Exception {
        List<String> patterns = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("-k") && i + 1 < args.length) {
                patterns.add(args[++i]);
            } else {
                System.out.println("usage: interop.Main [-k PATTERN]...");
                System.exit(2);
            }
        }

        Package client = Connection.class.getPackage();
        System.out.printf("RabbitMQ Java client %s on Java %s, AMQP_URL=%s%n",
                client.getImplementationVersion(), System.getProperty("java.version"), BrokerTest.amqpUrl());
        try (Connection probe = BrokerTest.factory().newConnection()) {
            probe.getServerProperties();
        } catch (Exception e) {
            System.out.printf("FAIL  cannot connect to the broker at %s: %s%n", BrokerTest.amqpUrl(), e);
            System.out.println("interop-summary: passed=0 failed=1 skipped=0");
            System.exit(1);
        }

        int passed = 0;
        int failed = 0;
        int skipped = 0;
        for (Class<? extends BrokerTest> testClass : TEST_CLASSES) {
            Method[] methods = testClass.getDeclaredMethods();
            Arrays.sort(methods, Comparator.comparing(Method::getName));
            for (Method method : methods) {
                if (!method.getName().startsWith("test") || Modifier.isStatic(method.getModifiers())) {
                    continue;
                }
                String name = testClass.getSimpleName() + "." + method.getName();
                if (!patterns.isEmpty() && patterns.stream().noneMatch(name::contains)) {
                    continue;
                }
                long started = System.nanoTime();
                Throwable problem = runOne(testClass, method);
                String took = String.format("(%.2fs)", (System.nanoTime() - started) / 1e9);
                if (problem == null) {
                    passed++;
                    System.out.printf("PASS  %s %s%n", name, took);
                } else if (problem instanceof BrokerTest.Skipped) {
                    skipped++;
                    System.out.printf("SKIP  %s: %s%n", name, problem.getMessage());
                } else {
                    failed++;
                    System.out.printf("FAIL  %s %s%n%s%n", name, took, describe(problem));
                }
                System.out.flush();
            }
        }
        System.out.printf("interop-summary: passed=%d failed=%d skipped=%d%n", passed, failed, skipped);
        System.out.flush();
        // Client threads (consumer pools, recovery) of a timed-out test must not keep the JVM alive.
        System.exit(failed == 0 ? 0 : 1);
    }

    /** Runs one test on a fresh instance: setUp, the method (bounded by the timeout), then tearDown. */
    private static Throwable runOne(Class<? extends BrokerTest> testClass, Method method) {
        ExecutorService executor = Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, "test-" + method.getName());
            thread.setDaemon(true);
            return thread;
        });
        BrokerTest test;
        try {
            test = testClass.getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            return e;
        }
        Throwable problem = null;
        Future<?> outcome = executor.submit(() -> {
            test.setUp();
            method.invoke(test);
            return null;
        });
        try {
            outcome.get(TEST_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            outcome.cancel(true);
            problem = new AssertionError("test took longer than " + TEST_TIMEOUT_SECONDS + " s");
        } catch (ExecutionException e) {
            problem = e.getCause() instanceof InvocationTargetException ite ? ite.getCause() : e.getCause();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            problem = e;
        } finally {
            executor.shutdownNow();
            test.tearDown();
        }
        return problem;
    }

    /** The failure and the frames of this suite that led to it, indented under the FAIL line. */
    private static String describe(Throwable problem) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = problem; t != null; t = t.getCause()) {
            text.append(t == problem ? "      " : "      caused by: ").append(t).append('\n');
            for (StackTraceElement frame : t.getStackTrace()) {
                if (frame.getClassName().startsWith("interop.") && !frame.getClassName().equals(Main.class.getName())) {
                    text.append("        at ").append(frame).append('\n');
                }
            }
            if (t.getCause() == t) {
                break;
            }
        }
        return text.toString().stripTrailing();
    }

    private static long parseTimeout(String value) {
        try {
            return value == null ? 60 : Long.parseLong(value);
        } catch (NumberFormatException e) {
            return 60;
        }
    }
}
