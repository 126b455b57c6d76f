//! `warrenctl`: `warren ctl` under a name of its own, for operators used to `rabbitmqctl` (see docs/ctl.md).

fn main() -> std::process::ExitCode {
    warren::ctl::run(std::env::args_os())
}
