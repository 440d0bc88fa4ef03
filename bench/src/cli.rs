//! The command line: `seckill-bench [run] [OPTIONS] URL`,
//! `seckill-bench idle [OPTIONS] URL`, `seckill-bench buy [OPTIONS]`,
//! `seckill-bench sale [OPTIONS]`, `seckill-bench compare [OPTIONS]`,
//! `seckill-bench overload [OPTIONS]` and `seckill-bench nemesis [OPTIONS]`.
//!
//! Parsed by hand (a few dozen lines) rather than with a framework: the bench
//! has few options and should build with the workspace's dependencies alone.
//! A subcommand is a variant of [`Command`] and a `parse_*` function.

use crate::buy::BuyConfig;
use crate::compare::{CompareConfig, Variant, default_variants, resolve_variants};
use crate::idle::IdleConfig;
use crate::nemesis::NemesisConfig;
use crate::overload::OverloadConfig;
use crate::run::RunConfig;
use crate::sale::SaleConfig;
use crate::target::Target;
use std::time::Duration;

pub const USAGE: &str = "\
seckill-bench: HTTP/1.1 load generator for seckill (and anything else speaking HTTP/1.1).

USAGE:
    seckill-bench [run] [OPTIONS] <URL>
    seckill-bench idle [--connections N] [--hold DUR] [--pid PID] [--json FILE] <URL>
    seckill-bench buy --target http://HOST:PORT --admin-token T [OPTIONS]
    seckill-bench sale [--target http://HOST:PORT --admin-token T] [OPTIONS]
    seckill-bench compare [--variant NAME:key=value,...]... [--rounds N] [SALE OPTIONS]
    seckill-bench overload [--factor X] [--overload-connections N] [SALE OPTIONS]
    seckill-bench nemesis [--faults N] [--seed S] [OPTIONS]

URL is http://host[:port]/path (no TLS), e.g. http://127.0.0.1:8080/healthz

RUN OPTIONS:
    -c, --connections N   keep-alive connections, spread over the threads [64]
    -t, --threads N       load threads, one mio event loop each [2, or 1 on one core]
    -d, --duration DUR    measured time, e.g. 10s, 500ms, 2m [10s]
        --warmup DUR      load applied before measuring starts [0s]
        --pipeline N      requests outstanding per connection, written in one write [1]
        --rate R          open loop: R requests/s in total on a fixed schedule
                          (e.g. 20000 or 20k); latency is measured from each
                          request's intended send time (coordinated omission
                          corrected) and the service time is shown apart.
                          Without --rate: closed loop, each connection keeps
                          --pipeline requests outstanding.
    -m, --method M        request method [GET]
    -H, --header 'N: v'   extra request header (repeatable)
        --body STRING     request body; @FILE reads it from FILE
        --json FILE       also write the figures as JSON to FILE (- for stdout,
                          the table then goes to stderr)

IDLE OPTIONS (measure what idle keep-alive connections cost the server):
    -c, --connections N   connections to open, one GET each, then held idle [10000]
        --hold DUR        how long to hold them [5s]
        --pid PID         the server's pid: report its RSS before and while holding
        --json FILE       as above
    Prints `holding N connections for Ds` when all are open and idle.

BUY OPTIONS (seckill's flash sale: set up, then load POST /api/seckill/{path}):
        --target URL      the server, http://HOST:PORT (required)
        --admin-token T   the admin bearer token; or --admin-token-file FILE
        --item ID         the item to (re)create, open from 1 s ago for an hour [1]
        --stock N         its stock [10000000]
        --per-user-limit N  its per-user limit [1000000]
        --users N         users created with sessions (bulk, chunks of 100,000),
                          each given a captcha-checked sale path [10000]
        --user-prefix P   user names P0_0, P0_1, … [b + the time in hex]
        --quantity N      send \"quantity\": N in each buy [left out: 1]
        --prebuy N|all    the first N users buy once before the runs (to sell an
                          item out, or bring users to their limit) [0]
        --setup-connections N  parallel connections for setup and pre-buys [16]
        --alternate-healthz K  K pairs of (buy run, GET /healthz run) of the same
                          shape; prints the median buy/healthz req/s ratio [0]
    -c, -t, -d, --warmup, --pipeline, --rate, --json: as for a run [-c 64, --warmup 1s]
    Each connection cycles over the users, one request per user in turn.
    The server's rate limits must be set non-binding (limits.per_user_* and
    limits.per_ip_*), and sale.path_ttl_ms longer than the whole run.

SALE OPTIONS (a whole flash sale, then the promise check of api.md §5):
        --target URL      the server; without it the bench starts `seckill` on the
                          embedded default in a temporary directory, port 0
        --admin-token T   with --target: the admin token; or --admin-token-file FILE
        --seckill PATH    the binary to start [$SECKILL, else the seckill next to
                          this executable]
        --server-set K=V  a setting for the started server, passed as --set
                          (repeatable; e.g. server.reactor=acceptor). The bench
                          always sets limits.per_ip_rps=0 (all load comes from one
                          address) and sale.path_ttl_ms=3600000; yours win.
        --item ID         the item to (re)create; it must have no orders [1 on a
                          server the bench starts, else one from the clock]
        --stock N         its stock [1000]
        --per-user-limit N  [1]
        --quantity N      units per buy [left out: 1]
        --users N         buyers: sessions in bulk, captchas answered before the
                          start, paths right after it [10000]
        --user-prefix P   user names P0_0, P0_1, … [b + the time in hex]
        --setup-connections N  parallel connections for the setup [16]
        --start-in DUR    from the end of the captchas to the sale's start [500ms]
        --bots B          fairness: B bot users join on their own connections [0]
        --bot-conns K     the bots' connections [64]
        --bot-rate-x X    each bot sends X times a human's request rate [50]
                          (needs --rate: the humans' total rate)
        --report FILE     a self-contained HTML report with SVG plots
        --no-progress     no live progress line on stderr
        --redis-stats URL the Redis commands the buy cost, from that Redis's
                          INFO commandstats before and after it (a Redis of the
                          benchmark's own: every client's commands count)
    -c, -t, -d, --warmup, --pipeline, --rate, --json: as for a run [-c 64, -d 5s]
    Each connection cycles over the users: a user who bought keeps clicking
    (409), the rest meet the sell-out (410). Exit status 3 when a promise broke.

COMPARE OPTIONS (the same sale on servers started with different settings):
        --variant NAME:K=V,K=V  a server configuration (repeatable) [reuseport:
                          server.reactor=reuseport, acceptor: server.reactor=acceptor,
                          1 loop: server.threads=1, async confirm: sale.confirm=async];
                          `--variant nginx`: nginx `return 200` gets the same buys;
                          `--variant evalsha`: one EVALSHA per buy (issue 7's
                          conventional stock), on the settings of the variant
                          before it (or its own) + sale.stock_strategy=evalsha
        --rounds N        rounds, each running every variant once, alternating [3]
    and every SALE OPTION except --target and --report (--server-set applies to
    all variants). Prints medians and ratios to the first variant.

OVERLOAD OPTIONS (issue 10: the durable-order capacity, then a multiple of it offered):
    Phase 1 measures the capacity: a closed loop (-c [--overload-connections],
    --pipeline [2], --warmup [2s], -d [3s]) of buys that can all succeed (--stock
    [10000000], --per-user-limit [1000000]), 200s per second. Phase 2 offers
    --factor × that in open loop, pipelined (requests due together leave in one
    write on one connection), and reports the rate actually sent (the bench
    shares the machine with the server), goodput
    (200s/s) and its ratio to the capacity, every answer by status and code,
    429/503 answers without Retry-After, latency, the server's RSS, and the
    promise check at rest (promise 6 too once the payment windows ran out).
        --factor X        phase 2's rate as a multiple of the capacity [3]
        --overload-connections N  phase 2's connections, and phase 1's without -c [2048]
        --overload-pipeline N     phase 2's requests outstanding per connection [16]
        --overload-warmup DUR     [1s]
        --overload-duration DUR   phase 2's measured time [6s]
        --rss-limit-mib N the server's RSS must stay under this [1024]
        --server-pid PID  with --target: the server whose RSS to sample
    and every SALE OPTION but --rate, --bots and --report. A server started here
    gets limits.per_user_rps=1000000, limits.per_user_burst=1000000 and
    sale.payment_window_ms=2000 before --server-set. Exit status 3 when a promise
    broke, a 429/503 lacked Retry-After, or the RSS went over the limit or kept
    growing through phase 2; goodput is reported, never a failure.

NEMESIS OPTIONS (sales on real processes under faults, issue 10; the bench
starts redis-server, mariadbd, nginx and the instances itself, on free ports):
        --seed S          the schedule's seed [random; always printed]
        --faults N        faults in the whole campaign [100]
        --faults-per-sale N  [8]
        --sales N         sales [faults / faults-per-sale, rounded up]
        --duration DUR    no sale starts after this [15m]
        --instances N     seckill instances behind nginx round robin [3]
        --users N         buyers per sale [1500]
        --stock N         each sale's stock [1000]
        --per-user-limit N  [1]
        --buys-per-user N   buys per user, each with its own request id [2]
        --buying DUR      the span each sale's buys are spread over; faults fall
                          in its first 80% [10s]
        --pause-ms MS     a long pause (SIGSTOP) lasts MS to 1.5 × MS [4000]
        --payment-window-ms MS  the instances' payment window: unpaid orders
                          expire, and their units return, during the sale [3000]
        -c N              buying connections through nginx [32]
        --request-timeout DUR  an answer later than this is unknown [20s]
        --attempts N      attempts of one buy while its outcome is unknown [20]
        --seckill PATH, --server-set K=V: as for a sale
        --json FILE       as above
    Faults: kill -9 an instance (restarted on its port), SIGSTOP/SIGCONT it,
    kill -9 redis-server or mariadbd (restarted), and through a TCP proxy
    between each instance and each backend: drop, reset, delay, blackhole.
    After each sale, at rest, promises 1-6 are checked; a violation prints
    the command that replays the seed, and the exit status is 3.

EXIT STATUS:
    0 on success; 1 when a connection could not be opened or no request
    completed; 2 on a usage error; 3 when a sale broke a promise.
";

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Help,
    Run { config: RunConfig, json: Option<String> },
    Idle { config: IdleConfig, json: Option<String> },
    Buy { config: Box<BuyConfig>, json: Option<String> },
    Sale { config: Box<SaleConfig>, json: Option<String>, report: Option<String> },
    Compare { config: Box<CompareConfig>, json: Option<String> },
    Overload { config: Box<OverloadConfig>, json: Option<String> },
    Nemesis { config: Box<NemesisConfig>, json: Option<String> },
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        None => Ok(Command::Help),
        Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("run") => parse_run(&args[1..]),
        Some("idle") => parse_idle(&args[1..]),
        Some("buy") => parse_buy(&args[1..]),
        Some("sale") => parse_sale(&args[1..]),
        Some("compare") => parse_compare(&args[1..]),
        Some("overload") => parse_overload(&args[1..]),
        Some("nemesis") => parse_nemesis(&args[1..]),
        Some(_) => parse_run(args),
    }
}

/// Iterates over `--name value` and `--name=value` pairs and bare words.
struct Args<'a> {
    args: &'a [String],
    pos: usize,
}

enum Arg<'a> {
    Flag(&'a str, Option<&'a str>),
    Word(&'a str),
}

impl<'a> Args<'a> {
    fn next(&mut self) -> Option<Arg<'a>> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        if arg.starts_with('-') && arg.len() > 1 {
            return Some(match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => Arg::Flag(name, Some(value)),
                _ => Arg::Flag(arg, None),
            });
        }
        Some(Arg::Word(arg))
    }

    fn value(&mut self, flag: &str, inline: Option<&'a str>) -> Result<&'a str, String> {
        if let Some(v) = inline {
            return Ok(v);
        }
        let v = self.args.get(self.pos).ok_or_else(|| format!("{flag} needs a value"))?;
        self.pos += 1;
        Ok(v)
    }
}

fn parse_run(args: &[String]) -> Result<Command, String> {
    let mut url = None;
    let mut json = None;
    let mut c = RunConfig::new(Target::parse("http://127.0.0.1/").map_err(|e| e.to_string())?);
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) if url.is_none() => {
                url = Some(w);
                continue;
            }
            Arg::Word(w) => return Err(format!("unexpected argument {w:?}")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--connections" => c.connections = number(flag, it.value(flag, inline)?)?,
            "-t" | "--threads" => c.threads = number(flag, it.value(flag, inline)?)?,
            "-d" | "--duration" => c.duration = duration(flag, it.value(flag, inline)?)?,
            "--warmup" => c.warmup = duration(flag, it.value(flag, inline)?)?,
            "--pipeline" => c.pipeline = number(flag, it.value(flag, inline)?)?,
            "--rate" => c.rate_per_s = Some(rate(flag, it.value(flag, inline)?)?),
            "-m" | "--method" => c.method = it.value(flag, inline)?.to_ascii_uppercase(),
            "-H" | "--header" => c.headers.push(it.value(flag, inline)?.to_string()),
            "--body" => c.body = body(it.value(flag, inline)?)?,
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let url = url.ok_or("the target URL is missing")?;
    c.target = Target::parse(url).map_err(|e| format!("{url}: {e}"))?;
    c.validate().map_err(|e| e.to_string())?;
    Ok(Command::Run { config: c, json })
}

fn parse_idle(args: &[String]) -> Result<Command, String> {
    let mut url = None;
    let mut json = None;
    let (mut connections, mut hold, mut server_pid) = (10_000, Duration::from_secs(5), None);
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) if url.is_none() => {
                url = Some(w);
                continue;
            }
            Arg::Word(w) => return Err(format!("unexpected argument {w:?}")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--connections" => connections = number(flag, it.value(flag, inline)?)?,
            "--hold" => hold = duration(flag, it.value(flag, inline)?)?,
            "--pid" => server_pid = Some(number::<u32>(flag, it.value(flag, inline)?)?),
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let url = url.ok_or("the target URL is missing")?;
    let target = Target::parse(url).map_err(|e| format!("{url}: {e}"))?;
    Ok(Command::Idle { config: IdleConfig { target, connections, hold, server_pid }, json })
}

fn parse_buy(args: &[String]) -> Result<Command, String> {
    let mut json = None;
    let mut target = None;
    let mut token = None;
    let mut c = BuyConfig::new(Target::parse("http://127.0.0.1/").map_err(|e| e.to_string())?, String::new());
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument {w:?} (the server is given by --target)")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        let r = &mut c.run;
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--target" => target = Some(it.value(flag, inline)?),
            "--admin-token" => token = Some(it.value(flag, inline)?.to_string()),
            "--admin-token-file" => {
                let path = it.value(flag, inline)?;
                let text = std::fs::read_to_string(path).map_err(|e| format!("{flag}: {path}: {e}"))?;
                token = Some(text.trim().to_string());
            }
            "--item" => c.item_id = number(flag, it.value(flag, inline)?)?,
            "--stock" => c.stock = number(flag, it.value(flag, inline)?)?,
            "--per-user-limit" => c.per_user_limit = number(flag, it.value(flag, inline)?)?,
            "--users" => c.users = number(flag, it.value(flag, inline)?)?,
            "--user-prefix" => c.user_prefix = Some(it.value(flag, inline)?.to_string()),
            "--quantity" => c.quantity = Some(number(flag, it.value(flag, inline)?)?),
            "--prebuy" => {
                c.prebuy = match it.value(flag, inline)? {
                    "all" => usize::MAX,
                    n => number(flag, n)?,
                }
            }
            "--setup-connections" => c.setup_connections = number(flag, it.value(flag, inline)?)?,
            "--alternate-healthz" => c.alternate_healthz = number(flag, it.value(flag, inline)?)?,
            "-c" | "--connections" => r.connections = number(flag, it.value(flag, inline)?)?,
            "-t" | "--threads" => r.threads = number(flag, it.value(flag, inline)?)?,
            "-d" | "--duration" => r.duration = duration(flag, it.value(flag, inline)?)?,
            "--warmup" => r.warmup = duration(flag, it.value(flag, inline)?)?,
            "--pipeline" => r.pipeline = number(flag, it.value(flag, inline)?)?,
            "--rate" => r.rate_per_s = Some(rate(flag, it.value(flag, inline)?)?),
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let url = target.ok_or("--target http://HOST:PORT is missing")?;
    c.run.target = Target::parse(url).map_err(|e| format!("{url}: {e}"))?;
    c.admin_token = token.ok_or("--admin-token or --admin-token-file is missing")?;
    c.validate().map_err(|e| e.to_string())?;
    Ok(Command::Buy { config: Box::new(c), json })
}

/// What a sale and a comparison share: the options of `sale` but `--json`,
/// `--report` and `--help`. Returns false for a flag that is not one of them.
fn sale_option<'a>(c: &mut SaleConfig, it: &mut Args<'a>, flag: &str, inline: Option<&'a str>) -> Result<bool, String> {
    let r = &mut c.run;
    match flag {
        "--target" => {
            let url = it.value(flag, inline)?;
            c.target = Some(Target::parse(url).map_err(|e| format!("{url}: {e}"))?);
        }
        "--admin-token" => c.admin_token = Some(it.value(flag, inline)?.to_string()),
        "--admin-token-file" => {
            let path = it.value(flag, inline)?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("{flag}: {path}: {e}"))?;
            c.admin_token = Some(text.trim().to_string());
        }
        "--seckill" => c.seckill = Some(it.value(flag, inline)?.into()),
        "--server-set" => {
            let set = it.value(flag, inline)?;
            if !set.contains('=') {
                return Err(format!("{flag}: {set:?} is not key=value"));
            }
            c.server_sets.push(set.to_string());
        }
        "--item" => c.item_id = Some(number(flag, it.value(flag, inline)?)?),
        "--stock" => c.stock = number(flag, it.value(flag, inline)?)?,
        "--per-user-limit" => c.per_user_limit = number(flag, it.value(flag, inline)?)?,
        "--quantity" => c.quantity = Some(number(flag, it.value(flag, inline)?)?),
        "--users" => c.users = number(flag, it.value(flag, inline)?)?,
        "--user-prefix" => c.user_prefix = Some(it.value(flag, inline)?.to_string()),
        "--setup-connections" => c.setup_connections = number(flag, it.value(flag, inline)?)?,
        "--start-in" => c.start_in = duration(flag, it.value(flag, inline)?)?,
        "--bots" => c.bots = number(flag, it.value(flag, inline)?)?,
        "--bot-conns" => c.bot_connections = number(flag, it.value(flag, inline)?)?,
        "--bot-rate-x" => c.bot_rate_x = number(flag, it.value(flag, inline)?)?,
        "--no-progress" => c.progress = false,
        "--redis-stats" => {
            let url = it.value(flag, inline)?;
            crate::redis_stats::address(url)?;
            c.redis_stats = Some(url.to_string());
        }
        "-c" | "--connections" => r.connections = number(flag, it.value(flag, inline)?)?,
        "-t" | "--threads" => r.threads = number(flag, it.value(flag, inline)?)?,
        "-d" | "--duration" => r.duration = duration(flag, it.value(flag, inline)?)?,
        "--warmup" => r.warmup = duration(flag, it.value(flag, inline)?)?,
        "--pipeline" => r.pipeline = number(flag, it.value(flag, inline)?)?,
        "--rate" => r.rate_per_s = Some(rate(flag, it.value(flag, inline)?)?),
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_sale(args: &[String]) -> Result<Command, String> {
    let (mut json, mut report) = (None, None);
    let mut c = SaleConfig::new();
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument {w:?} (the server is given by --target)")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            "--report" => report = Some(it.value(flag, inline)?.to_string()),
            _ if sale_option(&mut c, &mut it, flag, inline)? => {}
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(Command::Sale { config: Box::new(c), json, report })
}

fn parse_compare(args: &[String]) -> Result<Command, String> {
    let mut json = None;
    let mut sale = SaleConfig::new();
    let (mut variants, mut rounds) = (Vec::new(), 3);
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument {w:?}")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            "--variant" => variants.push(Variant::parse(it.value(flag, inline)?)?),
            "--rounds" => rounds = number(flag, it.value(flag, inline)?)?,
            _ if sale_option(&mut sale, &mut it, flag, inline)? => {}
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if variants.is_empty() {
        variants = default_variants();
    }
    let variants = resolve_variants(variants)?;
    let config = CompareConfig { sale, variants, rounds };
    config.validate()?;
    Ok(Command::Compare { config: Box::new(config), json })
}

fn parse_overload(args: &[String]) -> Result<Command, String> {
    let mut json = None;
    let mut c = OverloadConfig::new();
    // Without -c the capacity phase has the overload phase's connections.
    let mut connections_given = false;
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument {w:?} (the server is given by --target)")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = Some(it.value(flag, inline)?.to_string()),
            "--factor" => c.factor = number(flag, it.value(flag, inline)?)?,
            "--overload-connections" => c.overload_connections = number(flag, it.value(flag, inline)?)?,
            "--overload-pipeline" => c.overload_pipeline = number(flag, it.value(flag, inline)?)?,
            "-c" | "--connections" => {
                c.sale.run.connections = number(flag, it.value(flag, inline)?)?;
                connections_given = true;
            }
            "--overload-warmup" => c.overload_warmup = duration(flag, it.value(flag, inline)?)?,
            "--overload-duration" => c.overload_duration = duration(flag, it.value(flag, inline)?)?,
            "--rss-limit-mib" => c.rss_limit_mib = number(flag, it.value(flag, inline)?)?,
            "--server-pid" => c.server_pid = Some(number(flag, it.value(flag, inline)?)?),
            _ if sale_option(&mut c.sale, &mut it, flag, inline)? => {}
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !connections_given {
        c.sale.run.connections = c.overload_connections;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(Command::Overload { config: Box::new(c), json })
}

fn parse_nemesis(args: &[String]) -> Result<Command, String> {
    let mut json = None;
    let mut c = NemesisConfig::default();
    let mut it = Args { args, pos: 0 };
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg {
            Arg::Word(w) => return Err(format!("unexpected argument {w:?}")),
            Arg::Flag(flag, inline) => (flag, inline),
        };
        let mut value = || it.value(flag, inline);
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => json = Some(value()?.to_string()),
            "--seed" => c.seed = Some(number(flag, value()?)?),
            "--faults" => c.faults = number(flag, value()?)?,
            "--faults-per-sale" => c.faults_per_sale = number(flag, value()?)?,
            "--sales" => c.sales = Some(number(flag, value()?)?),
            "--duration" => c.duration = duration(flag, value()?)?,
            "--instances" => c.instances = number(flag, value()?)?,
            "--users" => c.users = number(flag, value()?)?,
            "--stock" => c.stock = number(flag, value()?)?,
            "--per-user-limit" => c.per_user_limit = number(flag, value()?)?,
            "--buys-per-user" => c.buys_per_user = number(flag, value()?)?,
            "--buying" => c.buying = duration(flag, value()?)?,
            "--pause-ms" => c.pause_ms = number(flag, value()?)?,
            "--payment-window-ms" => c.payment_window_ms = number(flag, value()?)?,
            "-c" | "--connections" => c.connections = number(flag, value()?)?,
            "--request-timeout" => c.request_timeout = duration(flag, value()?)?,
            "--attempts" => c.attempts_max = number(flag, value()?)?,
            "--seckill" => c.seckill = Some(value()?.into()),
            "--server-set" => {
                let set = value()?;
                if !set.contains('=') {
                    return Err(format!("{flag}: {set:?} is not key=value"));
                }
                c.server_sets.push(set.to_string());
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    c.validate()?;
    Ok(Command::Nemesis { config: Box::new(c), json })
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

/// `10s`, `500ms`, `250us`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().map_err(|_| format!("{flag}: {v:?} is not a duration like 10s or 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{flag}: unknown unit {unit:?} in {v:?} (use us, ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{flag}: {v:?} is out of range"))
}

/// `20000`, `20k`, `1.5M`.
pub fn rate(flag: &str, v: &str) -> Result<f64, String> {
    let (n, scale) = match v.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => v.strip_suffix('M').map_or((v, 1.0), |n| (n, 1e6)),
    };
    let r = n.parse::<f64>().map_err(|_| format!("{flag}: {v:?} is not a rate like 20000 or 20k"))? * scale;
    if r.is_finite() && r > 0.0 { Ok(r) } else { Err(format!("{flag}: the rate must be positive")) }
}

fn body(v: &str) -> Result<Vec<u8>, String> {
    match v.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|e| format!("--body @{path}: {e}")),
        None => Ok(v.as_bytes().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn run(s: &str) -> (RunConfig, Option<String>) {
        match parse(&args(s)) {
            Ok(Command::Run { config, json }) => (config, json),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let (c, json) = run("http://127.0.0.1:8080/healthz");
        assert_eq!((c.connections, c.pipeline, c.duration, c.warmup), (64, 1, Duration::from_secs(10), Duration::ZERO));
        assert_eq!((c.method.as_str(), c.rate_per_s, json), ("GET", None, None));
        assert_eq!(c.target.path, "/healthz");
    }

    #[test]
    fn every_run_option() {
        let (c, json) = run(
            "run -c 8 -t 1 -d 2s --warmup=500ms --pipeline 16 --rate 20k -m post -H X-A:1 --header=X-B:2 --body {} --json - http://h:1/p",
        );
        assert_eq!((c.connections, c.threads, c.pipeline), (8, 1, 16));
        assert_eq!((c.duration, c.warmup), (Duration::from_secs(2), Duration::from_millis(500)));
        assert_eq!(c.rate_per_s, Some(20_000.0));
        assert_eq!(c.method, "POST");
        assert_eq!(c.headers, vec!["X-A:1", "X-B:2"]);
        assert_eq!(c.body, b"{}");
        assert_eq!(json.as_deref(), Some("-"));
    }

    #[test]
    fn idle_options() {
        match parse(&args("idle --connections 100 --hold 1s --pid 42 http://h:1/")) {
            Ok(Command::Idle { config, .. }) => {
                assert_eq!(
                    (config.connections, config.hold, config.server_pid),
                    (100, Duration::from_secs(1), Some(42))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn buy_options() {
        let dir = std::env::temp_dir().join(format!("seckill-bench-cli-{}", std::process::id()));
        std::fs::write(&dir, "tok-from-file\n").unwrap();
        let line = format!(
            "buy --target http://h:9 --admin-token-file {} --item 5 --stock 1 --per-user-limit 2 --users 300 \
             --user-prefix u --quantity 3 --prebuy all --setup-connections 4 --alternate-healthz 3 \
             -c 8 -d 5s --warmup 2s --rate 1k --json out.json",
            dir.display()
        );
        let parsed = parse(&args(&line));
        let _ = std::fs::remove_file(&dir);
        let Ok(Command::Buy { config: c, json }) = parsed else { panic!("{parsed:?}") };
        assert_eq!((c.item_id, c.stock, c.per_user_limit, c.users), (5, 1, 2, 300));
        assert_eq!((c.user_prefix.as_deref(), c.quantity, c.prebuy), (Some("u"), Some(3), usize::MAX));
        assert_eq!((c.setup_connections, c.alternate_healthz), (4, 3));
        assert_eq!(c.admin_token, "tok-from-file");
        assert_eq!((c.run.target.authority.as_str(), c.run.connections), ("h:9", 8));
        assert_eq!((c.run.duration, c.run.warmup), (Duration::from_secs(5), Duration::from_secs(2)));
        assert_eq!(c.run.rate_per_s, Some(1000.0));
        assert_eq!(json.as_deref(), Some("out.json"));
        let err = |s: &str| parse(&args(s)).unwrap_err();
        assert!(err("buy --admin-token t").contains("--target"));
        assert!(err("buy --target http://h:1").contains("--admin-token"));
        assert!(err("buy --target http://h:1 --admin-token t --users 0").contains("users"));
        assert!(err("buy --target http://h:1 --admin-token t http://h/").contains("unexpected"));
    }

    #[test]
    fn sale_options() {
        let line = "sale --server-set server.reactor=acceptor --stock 5 --per-user-limit 2 --users 300 \
                    --start-in 1s --bots 3 --bot-conns 8 --bot-rate-x 10 --rate 1k -c 8 -d 2s \
                    --no-progress --json o.json --report r.html --seckill /x/seckill";
        let Ok(Command::Sale { config: c, json, report }) = parse(&args(line)) else { panic!("{line}") };
        assert_eq!(c.server_sets, vec!["server.reactor=acceptor"]);
        assert_eq!((c.stock, c.per_user_limit, c.users, c.start_in), (5, 2, 300, Duration::from_secs(1)));
        assert_eq!((c.bots, c.bot_connections, c.bot_rate_x), (3, 8, 10.0));
        assert_eq!((c.run.rate_per_s, c.run.connections, c.progress), (Some(1000.0), 8, false));
        assert_eq!((json.as_deref(), report.as_deref()), (Some("o.json"), Some("r.html")));
        assert_eq!(c.seckill.as_deref(), Some(std::path::Path::new("/x/seckill")));
        let err = |s: &str| parse(&args(s)).unwrap_err();
        assert!(err("sale --bots 2").contains("--rate"));
        assert!(err("sale --target http://h:1").contains("admin-token"));
        assert!(err("sale --server-set nope").contains("key=value"));
        assert!(err("sale --target http://h:1 --admin-token t --server-set a=b").contains("--server-set"));
    }

    #[test]
    fn overload_options() {
        let line = "overload --factor 2.5 --overload-connections 256 --overload-warmup 500ms --overload-duration 2s \
                    --rss-limit-mib 300 --users 500 -c 16 -d 1s --warmup 1s --server-set sale.batch_wait_ms=1 --json o.json";
        let Ok(Command::Overload { config: c, json }) = parse(&args(line)) else { panic!("{line}") };
        assert_eq!((c.factor, c.overload_connections, c.rss_limit_mib), (2.5, 256, 300));
        assert_eq!((c.overload_warmup, c.overload_duration), (Duration::from_millis(500), Duration::from_secs(2)));
        assert_eq!((c.sale.users, c.sale.run.connections, c.sale.run.duration), (500, 16, Duration::from_secs(1)));
        assert_eq!((c.sale.stock, c.sale.server_sets.len(), json.as_deref()), (10_000_000, 1, Some("o.json")));
        // Without -c the capacity phase has the overload phase's connections;
        // each phase has its own pipeline depth.
        let Ok(Command::Overload { config: c, .. }) =
            parse(&args("overload --overload-connections 300 --overload-pipeline 4"))
        else {
            panic!("overload --overload-connections 300 --overload-pipeline 4")
        };
        assert_eq!((c.sale.run.connections, c.sale.run.pipeline), (300, 2));
        assert_eq!((c.overload_connections, c.overload_pipeline), (300, 4));
        let err = |s: &str| parse(&args(s)).unwrap_err();
        assert!(err("overload --overload-pipeline 0").contains("pipeline"));
        assert!(err("overload --rate 1k").contains("closed loop"));
        assert!(err("overload --factor 0").contains("factor"));
        assert!(err("overload --target http://h:1 --admin-token t --server-pid x").contains("--server-pid"));
    }

    #[test]
    fn compare_options() {
        let line = "compare --variant a:server.threads=1 --variant b --rounds 2 --users 100 -d 1s";
        let Ok(Command::Compare { config: c, .. }) = parse(&args(line)) else { panic!("{line}") };
        assert_eq!(c.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!((c.rounds, c.sale.users), (2, 100));
        let Ok(Command::Compare { config: c, .. }) = parse(&args("compare")) else { panic!() };
        assert_eq!(c.variants.len(), 4);
        assert!(parse(&args("compare --target http://h:1 --admin-token t")).unwrap_err().contains("--target"));
        assert!(parse(&args("compare --rounds 0")).unwrap_err().contains("rounds"));
    }

    #[test]
    fn usage_errors() {
        let err = |s: &str| parse(&args(s)).unwrap_err();
        assert!(err("-c").contains("needs a value"));
        assert!(err("--bogus http://h/").contains("unknown option"));
        assert!(err("-c 10").contains("URL is missing"));
        assert!(err("http://h/ http://i/").contains("unexpected"));
        assert!(err("-d 10x http://h/").contains("unit"));
        assert!(err("--pipeline 0 http://h/").contains("pipeline"));
        assert!(err("https://h/").contains("http://"));
        assert!(matches!(parse(&args("--help")), Ok(Command::Help)));
        assert!(matches!(parse(&[]), Ok(Command::Help)));
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(duration("-d", "10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("-d", "1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("-d", "250us"), Ok(Duration::from_micros(250)));
        assert_eq!(duration("-d", "2m"), Ok(Duration::from_secs(120)));
        assert!(duration("-d", "s").is_err());
        assert_eq!(rate("--rate", "1.5M"), Ok(1_500_000.0));
        assert_eq!(rate("--rate", "250"), Ok(250.0));
        assert!(rate("--rate", "0").is_err());
        assert!(rate("--rate", "-5").is_err());
    }
}
