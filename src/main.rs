//! The `seckill` binary: configuration, then the server, then a graceful
//! shutdown on SIGTERM/SIGINT. See the crate docs of `seckill` for the map.

use std::process::ExitCode;
use std::time::Duration;

use seckill::log::{self, Level};
use seckill::server::{self, ServerSettings};
use seckill_config::{Config, Loaded, LogLevel, ReactorMode};
use seckill_protocol::Limits;
use seckill_reactor::{Design, ReactorConfig};

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
    let running = match server::start(settings(&config)) {
        Ok(running) => running,
        Err(error) => {
            seckill::log!(Level::Error, "start-up failed", error = error, listen = config.server.listen);
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

/// The server's settings from the configuration: the one place where config
/// keys become the reactor's and the protocol's types.
fn settings(config: &Config) -> ServerSettings {
    let http = &config.http;
    let reactor = ReactorConfig {
        listen: config.server.listen,
        threads: config.server.event_loops(),
        design: match config.server.reactor {
            ReactorMode::ReusePort => Design::ReusePort,
            ReactorMode::Acceptor => Design::Acceptor,
        },
        limits: Limits {
            head_bytes_max: http.head_bytes_max,
            uri_bytes_max: http.uri_bytes_max,
            header_count_max: http.header_count_max,
            body_bytes_max: http.body_bytes_max,
        },
        head_timeout: Duration::from_millis(http.head_timeout_ms),
        idle_timeout: Duration::from_millis(http.idle_timeout_ms),
        connections_max: http.connections_max,
        pipeline_depth_max: http.pipeline_depth_max,
        pin_cpus: config.server.pin_cpus,
    };
    ServerSettings {
        reactor,
        drain: Duration::from_millis(config.server.drain_ms),
        shutdown_grace: Duration::from_millis(config.server.shutdown_grace_ms),
    }
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
