//! The `seckill` binary: configuration, then the server, then a graceful
//! shutdown on SIGTERM/SIGINT. See the crate docs of `seckill` for the map.

use std::process::ExitCode;

use seckill::log::{self, Level};
use seckill::server;
use seckill_config::{Config, Loaded, LogLevel};

fn main() -> ExitCode {
    let config = match Config::from_process() {
        Ok(Loaded::Run(config)) => config,
        Ok(Loaded::Help(text) | Loaded::Version(text) | Loaded::PrintConfig(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("seckill: {error}");
            return ExitCode::from(2);
        }
    };
    log::set_level(log_level(config.server.log_level));
    abort_on_panic();
    let running = match server::start(&config) {
        Ok(running) => running,
        Err(error) => {
            seckill::log!(Level::Error, "start-up failed", error = error);
            return ExitCode::from(1);
        }
    };
    match running.run_until_signal() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            seckill::log!(Level::Error, "signal handling failed", error = error);
            ExitCode::from(1)
        }
    }
}

/// A panic is a bug (a broken invariant, such as a stock ledger that no
/// longer adds up): the whole process stops, whichever thread it was on,
/// in every build. Release builds abort anyway (`panic = "abort"`); without
/// this, a debug build would lose the one thread (a worker, the writer) and
/// limp on answering 503. A restart rebuilds everything from the store.
fn abort_on_panic() {
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        print(info);
        std::process::abort();
    }));
}

fn log_level(level: LogLevel) -> Level {
    match level {
        LogLevel::Error => Level::Error,
        LogLevel::Warn => Level::Warn,
        LogLevel::Info => Level::Info,
        LogLevel::Debug => Level::Debug,
        LogLevel::Trace => Level::Trace,
    }
}
