//! Start-up and graceful shutdown of the whole server: builds the reactor's
//! settings from the configuration, starts the loops, prints the `listening
//! on` line, and on SIGTERM/SIGINT drains per contract §1.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seckill_reactor::{Design, Reactor, ReactorConfig};

use crate::app::App;
use crate::handler::{Completion, LoopHandler};
use crate::log;
use crate::log::Level;

/// The settings of the server shell, resolved from the configuration.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub reactor: ReactorConfig,
    pub drain: Duration,
    pub shutdown_grace: Duration,
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    app: Arc<App>,
    reactor: Reactor<Completion>,
    settings: ServerSettings,
}

/// Starts the loops and prints `listening on http://HOST:PORT` on stdout.
pub fn start(settings: ServerSettings) -> std::io::Result<Running> {
    let app = Arc::new(App::new(settings.reactor.threads));
    let handler_app = app.clone();
    let reactor =
        Reactor::start(settings.reactor.clone(), move |loop_id| LoopHandler::new(loop_id, handler_app.clone()))?;
    app.attach_loop_stats(reactor.stats());
    let addr = reactor.local_addr();
    crate::log!(
        Level::Info,
        "started",
        addr = addr,
        threads = settings.reactor.threads,
        reactor = design_name(settings.reactor.design)
    );
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    Ok(Running { app, reactor, settings })
}

fn design_name(design: Design) -> &'static str {
    match design {
        Design::ReusePort => "reuseport",
        Design::Acceptor => "acceptor",
    }
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.reactor.local_addr()
    }

    /// Blocks until SIGTERM or SIGINT, then shuts down gracefully: /readyz
    /// turns 503 at once, listeners close after `drain`, in-flight requests
    /// finish. A second signal exits at once with status 1. Returns true if
    /// everything finished within `shutdown_grace`.
    pub fn run_until_signal(self) -> std::io::Result<bool> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let first = signals.forever().next();
        // A second signal means "now": exit at once, as a crash would. That is
        // safe because nothing is acknowledged before it is durable.
        std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                log!(Level::Warn, "second signal: exiting without waiting");
                std::process::exit(1);
            }
        });
        let deadline = Instant::now() + self.settings.shutdown_grace;
        log!(Level::Info, "shutdown begins", signal = first.unwrap_or(0), drain_ms = self.settings.drain.as_millis());
        self.app.begin_drain();
        self.reactor.shutdown(self.settings.drain);
        let reactor = self.reactor;
        let finished = reactor.join(deadline);
        if finished {
            log!(Level::Info, "shutdown complete");
        } else {
            log!(Level::Warn, "shutdown grace expired with requests in flight");
        }
        Ok(finished)
    }
}
