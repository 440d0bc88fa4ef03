//! The `seckill-bench` command; see the library's documentation or `--help`.

use seckill_bench::cli::{self, Command};
use seckill_bench::{html, run, run_buy, run_compare, run_idle, run_nemesis, run_overload, run_sale, sys};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let command = match cli::parse(&argv[1..]) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("seckill-bench: {e}\n(see seckill-bench --help)");
            return ExitCode::from(2);
        }
    };
    // Thousands of connections need thousands of descriptors; raising the soft
    // limit to the hard one is harmless otherwise.
    if let Err(e) = sys::raise_fd_limit() {
        eprintln!("seckill-bench: warning: cannot raise the open-file limit: {e}");
    }
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Run { config, json } => {
            let mut summary = match run(&config) {
                Ok(summary) => summary,
                Err(e) => {
                    eprintln!("seckill-bench: {e}");
                    return ExitCode::FAILURE;
                }
            };
            summary.argv = argv;
            let failed = summary.failed();
            finish(&summary.table(), &summary.to_json(), json.as_deref(), failed)
        }
        Command::Idle { config, json } => match run_idle(&config) {
            Ok(summary) => {
                // Plain data: serialisation cannot fail.
                let doc = serde_json::to_string_pretty(&summary).expect("summary serialises");
                finish(&summary.table(), &doc, json.as_deref(), summary.failed())
            }
            Err(e) => {
                eprintln!("seckill-bench idle: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Buy { config, json } => match run_buy(&config) {
            Ok(mut report) => {
                report.argv = argv;
                finish(&report.table(), &report.to_json(), json.as_deref(), report.failed())
            }
            Err(e) => {
                eprintln!("seckill-bench buy: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Sale { config, json, report } => match run_sale(&config) {
            Ok(mut sale) => {
                sale.argv = argv;
                if let Some(path) = report.as_deref()
                    && let Err(e) = std::fs::write(path, html::render(&sale))
                {
                    eprintln!("seckill-bench: cannot write {path}: {e}");
                    return ExitCode::FAILURE;
                }
                let code = finish(&sale.table(), &sale.to_json(), json.as_deref(), sale.failed());
                if sale.promises_failed() { ExitCode::from(PROMISE_BROKEN) } else { code }
            }
            Err(e) => {
                eprintln!("seckill-bench sale: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Compare { config, json } => match run_compare(&config) {
            Ok(mut compare) => {
                compare.argv = argv;
                let code = finish(&compare.table(), &compare.to_json(), json.as_deref(), false);
                if compare.promises_failed() { ExitCode::from(PROMISE_BROKEN) } else { code }
            }
            Err(e) => {
                eprintln!("seckill-bench compare: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Overload { config, json } => match run_overload(&config) {
            Ok(mut overload) => {
                overload.argv = argv;
                let code = finish(&overload.table(), &overload.to_json(), json.as_deref(), overload.failed());
                if overload.violated() { ExitCode::from(PROMISE_BROKEN) } else { code }
            }
            Err(e) => {
                eprintln!("seckill-bench overload: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Nemesis { config, json } => match run_nemesis(&config) {
            Ok(mut nemesis) => {
                nemesis.argv = argv;
                let code = finish(&nemesis.table(), &nemesis.to_json(), json.as_deref(), false);
                if nemesis.failed() { ExitCode::from(PROMISE_BROKEN) } else { code }
            }
            Err(e) => {
                eprintln!("seckill-bench nemesis: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The exit status when a sale broke a promise of the contract (for
/// `overload` also a 429/503 without Retry-After, or memory not bounded).
const PROMISE_BROKEN: u8 = 3;

/// Prints the table (to stderr when the JSON takes stdout), writes the JSON.
fn finish(table: &str, json: &str, json_to: Option<&str>, failed: bool) -> ExitCode {
    match json_to {
        Some("-") => {
            eprint!("{table}");
            println!("{json}");
        }
        Some(path) => {
            print!("{table}");
            if let Err(e) = std::fs::File::create(path).and_then(|mut f| writeln!(f, "{json}")) {
                eprintln!("seckill-bench: cannot write {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => print!("{table}"),
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
