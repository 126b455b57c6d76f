"""Writes docs/benchmarks.md from the raw results of bench/compare.sh (one JSON line per run in $RESULTS).

Run by compare.sh, which passes everything through the environment; it reports figures and judges nothing.
"""

import json
import os
import subprocess
import time
from collections import defaultdict

ENV = os.environ
NAMES = {"warren": "Warren", "rabbitmq": "RabbitMQ", "garagemq": "garagemq"}


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def perf(run, key="perf"):
    return run.get(key) or {}


def latency_ms(run, which, pct):
    lat = perf(run).get(which) or {}
    return lat[pct] / 1000 if lat.get(pct) is not None else None


def idle_kib(run):
    before, after, opened = run.get("rss_before_kib"), run.get("rss_after_kib"), run.get("opened")
    if before is None or after is None or not opened:
        return None
    return (after - before) / opened


def published(run):
    return perf(run).get("publish_rate")


def consumed(run):
    return perf(run).get("consume_rate")


def consumed_window(run):
    """Deliveries while the producers were publishing, per second of that window (the drain after is not in it)."""
    return perf(run).get("consume_rate_window")


def peak_rss(run):
    return perf(run).get("broker_peak_rss_mib")


def cpu_ns(run):
    """The broker's CPU time (user + system, /proc/PID/stat) over the run, per message the consumers received."""
    p = perf(run)
    cpu, received = p.get("broker_cpu_s"), p.get("received")
    return cpu * 1e9 / received if cpu is not None and received else None


def sustained(published_label, consumed_label):
    """The figures of a sustained scenario: is the consumer keeping up, at what latency and memory."""
    return [
        (published_label, "higher", RATE, published),
        (consumed_label, "higher", RATE, consumed_window),
        ("end-to-end latency p50, ms", "lower", MS, lambda r: latency_ms(r, "latency_us", "p50")),
        ("end-to-end latency p99, ms", "lower", MS, lambda r: latency_ms(r, "latency_us", "p99")),
        ("broker peak RSS, MiB", "lower", MIB, peak_rss),
        ("broker CPU per message received, ns", "lower", RATE, cpu_ns),
    ]


# (figure, better, format, value of one run) per scenario.
RATE, MS, SEC, MIB, KIB = "{:,.0f}", "{:.2f}", "{:.2f}", "{:,.0f}", "{:.1f}"
FIGURES = {
    "1": sustained("published msg/s", "consumed msg/s while publishing"),
    "2": sustained("published msg/s", "consumed msg/s while publishing"),
    "3": [
        ("published (confirmed) msg/s", "higher", RATE, published),
        ("consumed msg/s", "higher", RATE, consumed),
        ("confirm latency p50, ms", "lower", MS, lambda r: latency_ms(r, "confirm_latency_us", "p50")),
        ("confirm latency p99, ms", "lower", MS, lambda r: latency_ms(r, "confirm_latency_us", "p99")),
    ],
    "4": sustained("published msg/s, 4 producers", "consumed msg/s while publishing, 4 consumers"),
    "5": [("published msg/s", "higher", RATE, published),
          ("delivered msg/s, 10 queues together", "higher", RATE, consumed)],
    "6": [("end-to-end latency p50, ms", "lower", MS, lambda r: latency_ms(r, "latency_us", "p50")),
          ("end-to-end latency p99, ms", "lower", MS, lambda r: latency_ms(r, "latency_us", "p99"))],
    "7": [
        ("publish phase, s", "lower", SEC, lambda r: perf(r, "publish").get("elapsed_s")),
        ("drain phase, s", "lower", SEC, lambda r: perf(r, "drain").get("consume_time_s")),
        ("broker peak RSS, MiB", "lower", MIB,
         lambda r: r["peak_rss_kib"] / 1024 if r.get("peak_rss_kib") else None),
    ],
    "8": [("broker RSS increase per connection, KiB", "lower", KIB, idle_kib)],
    "9": sustained("published msg/s, 16 producers", "consumed msg/s while publishing, 2 consumers"),
    "10": sustained("published msg/s", "consumed msg/s while publishing (at most 5,000)"),
}


def problems(run):
    """What went wrong in one run, as text (empty if nothing did)."""
    s, found = run["scenario"], []
    keys = {"7": ["publish", "drain"]}.get(s, ["perf"])
    for key in keys:
        summary = perf(run, key)
        if not summary:
            found.append(f"{key}: `warren perf` printed no summary")
            continue
        found += summary.get("errors") or []
        if summary.get("missing") or summary.get("duplicates"):
            found.append(f"{summary.get('missing')} missing, {summary.get('duplicates')} duplicates")
    if s == "7":
        drain = perf(run, "drain")
        got = (drain.get("received") or 0) + (drain.get("stale") or 0)
        if drain and got < int(ENV["BACKLOG"]):
            found.append(f"drained {got:,} of {int(ENV['BACKLOG']):,} messages")
    if s == "8" and run.get("opened") != int(ENV["IDLE"]):
        found.append(f"{run.get('opened')} of {ENV['IDLE']} connections opened")
    return found


def cell(fmt, values, flagged):
    shown = [v for v in values if v is not None]
    if not shown:
        return "n/a", None
    mean = sum(shown) / len(shown)
    runs = " / ".join(("n/a" if v is None else fmt.format(v)) + ("†" if f else "") for v, f in zip(values, flagged))
    return f"{fmt.format(mean)} ({runs})", mean


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    source, fstype = (sh("df", "--output=source,fstype", ENV["WORK"]).splitlines()[-1].split() + ["?", "?"])[:2]
    device = os.path.basename(source)
    disk = sh("lsblk", "-dno", "SIZE,MODEL", source) or "?"
    rotational = sh("cat", f"/sys/block/{device}/queue/rotational")
    virtio = "virtio " if os.path.exists(f"/sys/block/{device}/device/driver") and "virtio" in os.path.realpath(
        f"/sys/block/{device}/device/driver") else ""
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores (the brokers and `warren perf` share them; nothing is pinned)",
        f"RAM: {mem_kib / 1048576:.0f} GiB",
        f"Kernel: Linux {os.uname().release}",
        f"Disk: {source}, {virtio}block device, {disk.strip()}, {fstype}"
        + (f", rotational flag {rotational}" + (" (as the VM's virtual disk reports it)" if virtio else "")
           if rotational else "")
        + f"; the brokers' data directories are under {ENV['WORK']}",
        f"Load average (1, 5, 15 min) at the start: {ENV['LOAD_START']}; at the end: {ENV['LOAD_END']}",
    ]


def versions(brokers):
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(ENV["WARREN_BIN"])))
    out = [f"Warren {sh(ENV['WARREN_BIN'], '--version').replace('warren ', '')} (work tree at commit {ENV['WARREN_COMMIT']} when the run "
           f"started; binary built {built}), release build, "
           "default configuration: `sync = \"always\"` (fdatasync before a persistent message is confirmed)"]
    rabbit = sh("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server")
    otp = sh("erl", "-noshell", "-eval", 'io:format("~s", [erlang:system_info(otp_release)]), halt().')
    out.append(f"RabbitMQ {rabbit} (Debian's rabbitmq-server), Erlang/OTP {otp}, default configuration "
               "(classic queues, no plugins)")
    if "garagemq" in brokers:
        out.append(f"garagemq {sh('dpkg-query', '-W', '-f=${Version}', 'garagemq')} (Debian's package), its "
                   "packaged configuration with `tcp.nodelay: true` (shipped false; see bench/brokers.sh)")
    return out


def main():
    runs = [json.loads(line) for line in open(ENV["RESULTS"]) if line.strip()]
    brokers = ENV["BROKERS_RUN"].split()
    scenarios = [line.rstrip("\n").split("\t") for line in open(ENV["SCENARIO_FILE"]) if line.strip()]
    by = defaultdict(dict)
    for run in runs:
        by[(run["scenario"], run["broker"])][run["run"]] = run
    nruns = int(ENV["RUNS"])
    quick = ENV["QUICK"] == "1"

    header = ["scenario", "figure", "better"] + [f"{NAMES[b]}: mean (run 1 / run 2{' / ...' if nruns > 2 else ''})"
                                                  for b in brokers] + ["Warren / RabbitMQ"]
    rows, notes = [], []
    for s, title, _ in scenarios:
        for i, (figure, better, fmt, value) in enumerate(FIGURES[s]):
            cells, means = [], {}
            for b in brokers:
                these = [by[(s, b)].get(r, {"scenario": s}) for r in range(1, nruns + 1)]
                text, means[b] = cell(fmt, [value(r) if r.get("broker") else None for r in these],
                                      [bool(r.get("broker") and problems(r)) for r in these])
                cells.append(text)
            w, r = means.get("warren"), means.get("rabbitmq")
            ratio = f"{w / r:.2f}×" if w is not None and r else "n/a"
            rows.append([f"{s}. {title}" if i == 0 else "", figure, better] + cells + [ratio])
        for b in brokers:
            for n, run in sorted(by[(s, b)].items()):
                for p in problems(run):
                    notes.append(f"scenario {s}, {NAMES[b]}, run {n}: {p}")

    out = ["# Benchmarks: Warren against RabbitMQ", ""]
    if quick:
        out += [f"> **Quick smoke run ({ENV['STARTED']}): not a measurement.** `bench/compare.sh --quick` "
                f"({ENV['SECONDS_PER_RUN']} s runs, a {int(ENV['BACKLOG']):,}-message backlog, {ENV['IDLE']} idle "
                "connections) on a shared machine, run to show that the script works end to end. To be replaced by "
                "a full run (`bench/compare.sh`) on a quiet machine.", ""]
    out += [f"Generated by `{ENV['COMMAND_LINE']}` on {ENV['STARTED']}. Each scenario ran {nruns} times per broker, "
            "brokers alternating; each cell is the mean, then every run. The ratio is Warren's mean over RabbitMQ's: "
            "above 1 favours Warren where higher is better (throughput), below 1 where lower is better (latency, "
            "time, memory).", ""]
    out += ["## Results", ""]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    out.append("")
    extra = [line.strip() for line in open(ENV["NOTES"]) if line.strip()]
    if notes or extra:
        out += ["Runs marked † had a problem (the figure is still the tool's measurement):", ""]
        out += [f"- {n}" for n in notes + extra]
        out.append("")

    out += ["## What each figure is", "",
            "- **published msg/s**: messages sent over the time until the producers stopped publishing "
            "(`publish_rate` of `warren perf --json`); with confirms, publishing is held to the confirm window.",
            "- **consumed msg/s while publishing** (sustained scenarios 1, 2, 4, 9, 10): deliveries received while the "
            "producers were still publishing, over the publishing time (`consume_rate_window`). A consumer that falls "
            "behind shows here; the backlog it drains after the producers stop does not count.",
            "- **consumed / delivered msg/s** (scenarios 3 and 5): messages received over the time until the last "
            "delivery, drain included (`consume_rate`).",
            "- **broker CPU per message received** (sustained scenarios): the broker process's user + system CPU time "
            "over the run (`/proc/PID/stat`, `warren perf --broker-pid`) divided by the messages its consumers received.",
            "- **broker peak RSS** (sustained scenarios): the largest VmRSS of the broker process sampled every 100 ms "
            "during the run (`warren perf --broker-pid`; for RabbitMQ the beam.smp process). The brokers run every "
            "sustained scenario in turn, so this includes memory a broker kept from earlier scenarios (Warren does not "
            "yet give freed memory back to the system: the robustness issue).",
            "- **latencies**: from `warren perf`'s histograms (about 3% accurate): confirm latency from encoding a "
            "publish to its confirm; end-to-end from the send timestamp in the body to the delivery.",
            "- **backlog**: publish phase = the whole publishing run (`elapsed_s`: until the broker answered "
            "channel.close, i.e. had taken every publish; no confirms); drain phase = from the consumer's start to the "
            "last delivery (`consume_time_s`); peak RSS = the broker process's VmHWM after the drain.",
            "- **idle connections**: broker VmRSS with the connections open (2 s after the last one opened) minus "
            "VmRSS before, divided by the number opened. For RabbitMQ the process is beam.smp.",
            ""]
    out += ["## Machine", ""] + [f"- {m}" for m in machine()] + [""]
    out += ["## Brokers", ""] + [f"- {v}" for v in versions(brokers)] + [""]
    out += ["## How it ran", "",
            f"- `{ENV['COMMAND_LINE']}`; raw results: one JSON line per run in `{ENV['RESULTS']}`, logs beside it.",
            f"- Each broker on its own port and data directory under `{ENV['WORK']}` (bench/brokers.sh): Warren "
            f"`target/release/warren --listen 127.0.0.1:{ENV['WARREN_PORT']} --data-dir {ENV['WORK']}/warren "
            f"--log-level warn`; RabbitMQ `rabbitmq-server` with RABBITMQ_NODE_PORT={ENV['RABBIT_PORT']}, "
            f"RABBITMQ_NODENAME=bench{ENV['RABBIT_PORT']}@localhost, RABBITMQ_MNESIA_BASE={ENV['WORK']}/rabbitmq/mnesia"
            + (f"; garagemq `garagemq --config {ENV['WORK']}/garagemq.yaml` (port {ENV['GARAGE_PORT']})"
               if "garagemq" in brokers else "") + ".",
            "- Scenarios 1-6, 9 and 10: all brokers running; each broker first gets one unrecorded 2 s warm-up run; then each "
            f"scenario runs {nruns} times per broker, brokers in order on odd runs and reversed on even runs. "
            "Scenarios 7 and 8: each run on a fresh start of one broker, the only broker running, so its peak RSS "
            "is its own.",
            "- Every queue and exchange is named per run, so no run sees what another left (garagemq refuses "
            "server-named queues). The load generator is `warren perf` for every broker (docs/perf.md).",
            "", "| # | scenario | `warren perf --uri URI --json` options (run 1) |", "|---|---|---|"]
    out += [f"| {s} | {title} | " + ", then ".join(f"`{c}`" for c in opts.split(";;")) + " |"
            for s, title, opts in scenarios]
    out += ["", "Scenario 10's consumer processes (counts, acks) at most 5,000 deliveries a second "
            "(`--consumer-rate`), a consumer slow by its own work. Scenario 4 uses `--spread`: producer *i* publishes to queue *i* through the default exchange, and "
            "consumer *i* reads queue *i*, so each producer/consumer pair has its own queue. Scenario 6 runs the load "
            "generator on one thread (`--threads 1`) for every broker: at 1,000 msg/s it needs no more, and on its "
            "default thread per core its own hand-offs between threads added about 200 us to the p99 it measured, "
            "for every broker alike (docs/perf.md). Scenario 8 holds the "
            f"connections for {ENV['IDLE_HOLD']} s after they are all open.", ""]
    with open(ENV["OUT"], "w") as f:
        f.write("\n".join(out))


main()
