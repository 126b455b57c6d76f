//! `warren ctl` (also installed as `warrenctl`): rabbitmqctl's everyday commands, with its names, argument order,
//! output and exit codes, run against a node's management HTTP API (Warren's, or RabbitMQ's with the management
//! plugin: the API is the same). See docs/ctl.md.
//!
//! - `args`: the command line (clap); `error`: failures and their exit codes;
//! - `api`: the HTTP client (the `rabbitmq_http_client` crate, plus plain GETs for listings);
//! - `listing`: the list commands' info keys; `output`: tables and JSON, pure;
//! - `commands/`: one file per group of commands.

mod api;
mod args;
mod commands;
mod error;
mod listing;
mod output;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use self::api::Api;
use self::args::CtlArgs;
use self::error::{exit, CtlError};
use self::output::{Formatter, Rows};

/// Runs `warren ctl` with `args` (the first being the program name) and returns its exit code: 0 on success, else
/// rabbitmqctl's code for the failure (64 usage, 65 bad data, 67 no such user, 69 node unreachable, 70 node
/// failure, 75 timeout; 77 refused credentials), with the cause on standard error.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    crate::install_crypto_provider();
    let args = match CtlArgs::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            // Help asked for prints to stdout and succeeds; every real parse error (and help shown because a
            // command is missing) goes to stderr and is a usage error.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error:\n{error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Checks the options against the command, connects and runs it.
fn execute(args: &CtlArgs) -> Result<(), CtlError> {
    if args.vhost.is_some() && !args.command.takes_vhost() {
        return Err(CtlError::Usage(format!(
            "{} does not act in a vhost: --vhost/-p is not an option of it",
            args.command.name()
        )));
    }
    let timeout = args.timeout.map(Duration::from_secs);
    let api = Api::new(&args.node, &args.username, &args.password, timeout)?;
    let ctx = Ctx {
        api,
        vhost: args.vhost.clone().unwrap_or_else(|| "/".to_owned()),
        formatter: args.formatter,
        quiet: args.quiet,
        headers: !args.no_table_headers,
        timeout,
    };
    commands::run(&ctx, &args.command)
}

/// What every command runs with: the API, the vhost (`-p`, `/` by default) and how to print.
pub(crate) struct Ctx {
    /// The node's management API.
    pub(crate) api: Api,
    /// The vhost the command acts in.
    pub(crate) vhost: String,
    /// The output format.
    pub(crate) formatter: Formatter,
    /// `-q`: no informational line.
    pub(crate) quiet: bool,
    /// Whether tables have a header row.
    pub(crate) headers: bool,
    /// `--timeout`, if given.
    pub(crate) timeout: Option<Duration>,
}

impl Ctx {
    /// Prints rabbitmqctl's informational line ("Adding user \"u\" ...") on standard output, as rabbitmqctl does,
    /// unless `-q` or a JSON formatter.
    pub(crate) fn banner(&self, text: &str) {
        if !self.quiet && self.formatter != Formatter::Json {
            self.write(&format!("{text}\n"));
        }
    }

    /// Prints a result message (rabbitmqctl's "Queue was successfully deleted with 3 ready messages"), except in
    /// JSON, where the command prints a JSON value instead.
    pub(crate) fn message(&self, text: &str) {
        if self.formatter != Formatter::Json {
            self.write(&format!("{text}\n"));
        }
    }

    /// Prints rows in the chosen format.
    pub(crate) fn print_rows(&self, rows: &Rows) {
        self.write(&rows.render(self.formatter, self.headers));
    }

    /// Writes to standard output; a closed pipe (`| head`) is not an error worth a panic.
    pub(crate) fn write(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// The error for a 404 on an object in the current vhost: "no such vhost" if the vhost is missing, else
    /// `missing()`.
    pub(crate) fn missing_in_vhost(&self, missing: impl FnOnce() -> CtlError) -> CtlError {
        match self.api.get(&["vhosts", &self.vhost]) {
            Err(api::ApiError::NotFound) => CtlError::no_such_vhost(&self.vhost),
            _ => missing(),
        }
    }
}
