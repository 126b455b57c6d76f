//! `warren soak`: a long run against a broker with the load that finds leaks and stalls rather than peak rates:
//! thousands of idle connections with heartbeats spread over loopback source addresses, connection and queue
//! churn, a steady producer/consumer pair whose end-to-end latency is watched, slow and stalled consumers; a
//! report line (RSS, open files, missed heartbeats, p99) each interval. It shares the load generator's client.
//!
//! - `options`: the command line ([`SoakArgs`]) and the validated plan; `fd_limit`: the tool's own open files;
//! - `link`: a set-up connection driven frame by frame with heartbeats both ways; `topology`: declare, delete,
//!   consume; `delivery`: reassembling deliveries;
//! - the loads: `idle` (the idle connections), `churn` (connections), `queue_churn`, `feed` (a rate-paced
//!   publisher), `steady` (the latency consumer), `slow` and `stalled` consumers;
//! - `tally`: the shared counters; `broker_proc`: the broker's RSS and fds from `/proc`; `report`: the interval
//!   lines and the [`SoakSummary`]; `run`: the coordinator.

mod broker_proc;
mod churn;
mod delivery;
mod fd_limit;
mod feed;
mod idle;
mod link;
mod options;
mod queue_churn;
mod report;
mod run;
mod slow;
mod stalled;
mod steady;
mod tally;
mod topology;

use std::future::Future;

pub use options::SoakArgs;
pub use report::SoakSummary;

use super::PerfError;

/// Runs the soak `args` describes for `--time`, printing a report line each `--report-every`; errors during the
/// run are in the summary, which says whether it passed.
pub async fn run(args: &SoakArgs) -> Result<SoakSummary, PerfError> {
    run_until(args, std::future::pending()).await
}

/// As [`run`], but `interrupt` completing (Ctrl-C) ends the timed part early; connections are closed as usual.
pub async fn run_until(
    args: &SoakArgs,
    interrupt: impl Future<Output = ()>,
) -> Result<SoakSummary, PerfError> {
    run::run(args, interrupt).await
}
