//! `backstop`: a Backstop store from the command line.
//!
//! Lists the issues and routes a service recorded, shows one issue, resolves and
//! ignores issues, and follows new events and performance problems as they are stored.
//! The commands, their `--json` output and the exit codes are described in
//! `docs/cli.md`.

mod commands;
mod error;
mod json;
mod output;
mod store;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::commands::Command;
use crate::error::code;

/// Reads a Backstop store: issues, routes, and new events as they arrive.
#[derive(Parser)]
#[command(
    name = "backstop",
    version,
    propagate_version = true,
    after_help = "Exit codes: 0 done, 1 the store, stdout or an alert test failed, \
        2 bad arguments or alert settings, \
        3 no such file, 4 not a Backstop database, 5 no such issue, \
        6 a schema version this build cannot read. JSON fields: docs/cli.md."
)]
struct Cli {
    /// The store file [default: $BACKSTOP_DB, else backstop.db]. No command creates it.
    #[arg(long, global = true, value_name = "FILE")]
    db: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    match commands::run(&store_path(cli.db), cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_closed_output() => ExitCode::SUCCESS,
        Err(e) => {
            fail(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--db`, else `BACKSTOP_DB` unless empty, else `backstop.db` in the working directory.
fn store_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("BACKSTOP_DB")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from("backstop.db"))
}

/// Help and version go to stdout as clap writes them; a usage error becomes one line
/// on stderr.
fn usage(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
        _ => {
            // clap's first line says what is wrong; the lines after it (usage, tips)
            // are folded into this one where they help.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let mut message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
            if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
                message.push_str(&format!(" (expected {})", valid.join(", ")));
            }
            if let Some(ContextValue::Strings(like)) = e.get(ContextKind::SuggestedSubcommand)
                && let Some(best) = like.last()
            {
                message.push_str(&format!(" (did you mean {best}?)"));
            }
            fail(&format!("{message}; see backstop --help"));
            ExitCode::from(code::USAGE)
        }
    }
}

fn fail(message: &str) {
    let _ = writeln!(std::io::stderr(), "backstop: {message}");
}
