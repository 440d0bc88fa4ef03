//! `seckill-bench compare`: the same sale on servers started with different
//! settings (reactor design, loop count, sync or async confirmation, store
//! and cache URLs…), in alternating rounds — A B C, A B C, … — so a machine
//! that slows down or speeds up during the comparison affects every variant
//! alike. Each run is a fresh server, item and user set; the table gives
//! each variant's medians and their ratio to the first variant's.
//!
//! A variant is `NAME` or `NAME:key=value,key=value`, the keys being the
//! server's configuration keys (`seckill --help`, config/seckill.example.toml),
//! passed as `--set` flags. The variant `nginx` (no settings) is the
//! reference: nginx answering `return 200` to the same buys over the same
//! connections ([`crate::nginx`]); it has no promises to check. The variant
//! `evalsha` is a seckill server with one EVALSHA per buy (issue 7's
//! conventional design, [`EVALSHA`]), by default on the backends of the
//! variant before it.

use crate::buy::median;
use crate::report::group;
use crate::sale::{SaleConfig, SaleError, run_sale};
use serde::Serialize;
use std::fmt::Write as _;

/// The most rounds one comparison runs (each is a whole sale per variant).
pub const ROUNDS_MAX: usize = 50;
/// The most variants one comparison runs.
pub const VARIANTS_MAX: usize = 16;

/// A server configuration to compare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub name: String,
    /// `key=value` settings, given to the server as `--set`.
    pub sets: Vec<String>,
}

impl Variant {
    /// `NAME` or `NAME:key=value,key=value`.
    pub fn parse(text: &str) -> Result<Variant, String> {
        let (name, sets) = text.split_once(':').unwrap_or((text, ""));
        if name.is_empty() {
            return Err(format!("--variant {text:?}: the name is missing (NAME:key=value,...)"));
        }
        let sets: Vec<String> = sets.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
        if let Some(bad) = sets.iter().find(|s| !s.contains('=')) {
            return Err(format!("--variant {text:?}: {bad:?} is not key=value"));
        }
        Ok(Variant { name: name.to_string(), sets })
    }
}

/// The comparison run when no `--variant` is given: the reactor designs,
/// one event loop against one per core, and asynchronous confirmation.
pub fn default_variants() -> Vec<Variant> {
    let v = |name: &str, set: &str| Variant { name: name.to_string(), sets: vec![set.to_string()] };
    vec![
        v("reuseport", "server.reactor=reuseport"),
        v("acceptor", "server.reactor=acceptor"),
        v("1 loop", "server.threads=1"),
        v("async confirm", "sale.confirm=async"),
    ]
}

/// Everything `seckill-bench compare` needs.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The sale each run performs (no `--target`: every run starts its server).
    pub sale: SaleConfig,
    pub variants: Vec<Variant>,
    pub rounds: usize,
}

impl CompareConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.sale.target.is_some() {
            return Err("compare starts its own servers: --target is not accepted".into());
        }
        if !(1..=VARIANTS_MAX).contains(&self.variants.len()) {
            return Err(format!("1 to {VARIANTS_MAX} variants"));
        }
        if !(1..=ROUNDS_MAX).contains(&self.rounds) {
            return Err(format!("rounds must be in 1..={ROUNDS_MAX}"));
        }
        self.sale.validate().map_err(|e| e.to_string())
    }
}

/// The name of the reference variant.
pub const NGINX: &str = "nginx";
/// The name of the variant with one EVALSHA per buy (issue 7's
/// conventional design): `sale.stock_strategy=evalsha` on top of its own
/// settings, or, given none, on top of the variant before it — so
/// `--variant "$R" --variant evalsha` compares leases with it on the same
/// Redis and MySQL.
pub const EVALSHA: &str = "evalsha";
/// The setting that makes a variant the evalsha one.
const EVALSHA_SET: &str = "sale.stock_strategy=evalsha";

/// Expands the `evalsha` variants (see [`EVALSHA`]); the others stay as given.
pub fn resolve_variants(variants: Vec<Variant>) -> Result<Vec<Variant>, String> {
    let mut resolved: Vec<Variant> = Vec::with_capacity(variants.len());
    for mut variant in variants {
        if variant.name == EVALSHA {
            if variant.sets.is_empty() {
                let before = resolved.last().filter(|v| !v.is_nginx()).ok_or(
                    "--variant evalsha without settings takes those of the variant before it (one with cache.url=redis://…)",
                )?;
                variant.sets.clone_from(&before.sets);
            }
            if !variant.sets.iter().any(|s| s.starts_with("cache.url=redis")) {
                return Err("--variant evalsha needs a Redis cache and a MySQL store (cache.url=redis://…, store.url=mysql://…)".into());
            }
            variant.sets.retain(|s| !s.starts_with("sale.stock_strategy="));
            variant.sets.push(EVALSHA_SET.to_string());
        }
        resolved.push(variant);
    }
    Ok(resolved)
}

impl Variant {
    /// nginx `return 200`, not a seckill server.
    pub fn is_nginx(&self) -> bool {
        self.name == NGINX && self.sets.is_empty()
    }
}

/// One sale of one variant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Run {
    pub round: usize,
    pub requests_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub successes: u64,
    pub sold_out_after_ms: Option<u64>,
    pub promises_held: bool,
}

/// A variant's runs and medians, with ratios to the first variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub variant: Variant,
    pub runs: Vec<Run>,
    pub requests_per_s_median: f64,
    pub p99_us_median: f64,
    pub requests_per_s_ratio: f64,
    pub p99_ratio: f64,
    pub promises_held: bool,
    /// The nginx reference: no sale, no promises.
    pub reference: bool,
}

/// Everything `seckill-bench compare` measured; its `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub rounds: usize,
    pub users: usize,
    pub stock: u64,
    pub connections: usize,
    pub duration_s: f64,
    pub rate_per_s: Option<f64>,
    /// Settings given to every variant before its own.
    pub common_sets: Vec<String>,
    pub variants: Vec<VariantReport>,
}

/// Runs every variant `rounds` times, alternating.
pub fn run_compare(config: &CompareConfig) -> Result<CompareReport, SaleError> {
    config.validate().map_err(|e| SaleError::Config(crate::BenchError::Config(e)))?;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); config.variants.len()];
    for round in 0..config.rounds {
        for (i, variant) in config.variants.iter().enumerate() {
            if variant.is_nginx() {
                let run = nginx_run(config, round)?;
                eprintln!(
                    "seckill-bench compare: round {} nginx return 200: {} req/s, p99 {:.2} ms",
                    round + 1,
                    group(run.requests_per_s),
                    run.p99_us / 1000.0
                );
                runs[i].push(run);
                continue;
            }
            let mut sale = config.sale.clone();
            sale.server_sets.extend(variant.sets.iter().cloned());
            // A variant may keep its data between runs (a shared MySQL
            // store): every run sells its own item, never one with orders.
            if sale.item_id.is_none() {
                sale.item_id = Some(1 + (round * config.variants.len() + i) as u64);
            }
            sale.progress = false;
            let report = run_sale(&sale)?;
            let run = Run {
                round,
                requests_per_s: report.run.requests_per_s,
                p50_us: report.run.latency_us.p50,
                p99_us: report.run.latency_us.p99,
                successes: report.status_all.get("200").copied().unwrap_or(0),
                sold_out_after_ms: report.sold_out_after_ms,
                promises_held: report.promises.held,
            };
            eprintln!(
                "seckill-bench compare: round {} {}: {} req/s, p99 {:.2} ms, promises {}",
                round + 1,
                variant.name,
                group(run.requests_per_s),
                run.p99_us / 1000.0,
                if run.promises_held { "held" } else { "BROKEN" }
            );
            for v in &report.promises.violations {
                eprintln!("  VIOLATION {v}");
            }
            runs[i].push(run);
        }
    }
    let medians: Vec<(f64, f64)> = runs
        .iter()
        .map(|r| {
            let rate = median(r.iter().map(|x| x.requests_per_s)).unwrap_or(0.0);
            (rate, median(r.iter().map(|x| x.p99_us)).unwrap_or(0.0))
        })
        .collect();
    let (base_rate, base_p99) = medians[0];
    let ratio = |a: f64, b: f64| if b > 0.0 { (a / b * 1000.0).round() / 1000.0 } else { 0.0 };
    let variants = config
        .variants
        .iter()
        .zip(runs)
        .zip(&medians)
        .map(|((variant, runs), &(rate, p99))| VariantReport {
            variant: variant.clone(),
            promises_held: runs.iter().all(|r| r.promises_held),
            reference: variant.is_nginx(),
            runs,
            requests_per_s_median: rate,
            p99_us_median: p99,
            requests_per_s_ratio: ratio(rate, base_rate),
            p99_ratio: ratio(p99, base_p99),
        })
        .collect();
    let s = &config.sale;
    Ok(CompareReport {
        argv: Vec::new(),
        rounds: config.rounds,
        users: s.users,
        stock: s.stock,
        connections: s.run.connections,
        duration_s: s.run.duration.as_secs_f64(),
        rate_per_s: s.run.rate_per_s,
        common_sets: s.server_sets.clone(),
        variants,
    })
}

/// The same load as a sale's buys (connections, threads, duration, warm-up,
/// pipeline, rate, request shape) against nginx `return 200`.
fn nginx_run(config: &CompareConfig, round: usize) -> Result<Run, SaleError> {
    let nginx = crate::nginx::Nginx::return_200()
        .map_err(|e| SaleError::Config(crate::BenchError::Config(format!("the nginx variant: {e}"))))?;
    let mut run = config.sale.run.clone();
    let url = format!("http://{}/api/seckill/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nginx.addr);
    run.target = crate::target::Target::parse(&url)
        .map_err(|e| SaleError::Config(crate::BenchError::Config(format!("{url}: {e}"))))?;
    run.method = "POST".into();
    run.headers = vec![
        "Content-Type: application/json".into(),
        // A bearer token as long as a session's.
        format!("Authorization: Bearer {}", "A".repeat(43)),
    ];
    run.body = crate::setup::buy_body(1, config.sale.quantity);
    let summary = crate::run::run(&run).map_err(SaleError::Run)?;
    let successes = summary.status.get("200").copied().unwrap_or(0);
    Ok(Run {
        round,
        requests_per_s: summary.requests_per_s,
        p50_us: summary.latency_us.p50,
        p99_us: summary.latency_us.p99,
        successes,
        sold_out_after_ms: None,
        promises_held: true,
    })
}

impl CompareReport {
    /// Whether a promise broke in any run.
    pub fn promises_failed(&self) -> bool {
        self.variants.iter().any(|v| !v.promises_held)
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let mode = self.rate_per_s.map_or("closed loop".to_string(), |r| format!("open loop at {} req/s", group(r)));
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "seckill-bench compare  {} rounds, alternating; each run: {} users, stock {}, {} connections, {mode}, {}s",
            self.rounds,
            group(self.users as f64),
            group(self.stock as f64),
            self.connections,
            self.duration_s
        );
        let _ = writeln!(
            out,
            "\n  {:<16}{:>12}{:>8}{:>12}{:>8}  {:<9}  runs (req/s)",
            "variant", "req/s", "ratio", "p99 ms", "ratio", "promises"
        );
        for v in &self.variants {
            let runs: Vec<String> = v.runs.iter().map(|r| group(r.requests_per_s)).collect();
            let _ = writeln!(
                out,
                "  {:<16}{:>12}{:>8.3}{:>12.2}{:>8.3}  {:<9}  {}",
                v.variant.name,
                group(v.requests_per_s_median),
                v.requests_per_s_ratio,
                v.p99_us_median / 1000.0,
                v.p99_ratio,
                if v.reference {
                    "n/a"
                } else if v.promises_held {
                    "held"
                } else {
                    "BROKEN"
                },
                runs.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\n  medians over the rounds; ratios to the first variant ({})",
            self.variants[0].variant.name
        );
        for v in &self.variants {
            if v.reference {
                let _ =
                    writeln!(out, "  {:<16}nginx `return 200` (2 workers, reuseport), the same buys", v.variant.name);
            } else {
                let _ = writeln!(out, "  {:<16}--set {}", v.variant.name, v.variant.sets.join(" --set "));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse() {
        let v = Variant::parse("acc:server.reactor=acceptor,server.threads=2").unwrap();
        assert_eq!(v.name, "acc");
        assert_eq!(v.sets, vec!["server.reactor=acceptor", "server.threads=2"]);
        assert_eq!(Variant::parse("default").unwrap().sets, Vec::<String>::new());
        assert!(Variant::parse(":a=b").is_err());
        assert!(Variant::parse("x:novalue").is_err());
        assert_eq!(default_variants().len(), 4);
        assert!(Variant::parse("nginx").unwrap().is_nginx());
        assert!(!Variant::parse("nginx:server.threads=1").unwrap().is_nginx());
    }

    #[test]
    fn evalsha_takes_the_backends_of_the_variant_before_it() {
        let parse = |texts: &[&str]| resolve_variants(texts.iter().map(|t| Variant::parse(t).unwrap()).collect());
        let r = "redis-mysql:store.url=mysql://h/db,cache.url=redis://h:6390/0,cache.key_prefix=b:";
        let v = parse(&["embedded", r, "evalsha"]).unwrap();
        assert_eq!(v[1].sets.len(), 3, "the leased variant is unchanged");
        assert_eq!(v[2].name, "evalsha");
        assert_eq!(&v[2].sets[..3], &v[1].sets[..]);
        assert_eq!(v[2].sets[3], "sale.stock_strategy=evalsha");
        let own = parse(&["evalsha:cache.url=redis://x/0,sale.stock_strategy=lease"]).unwrap();
        assert_eq!(own[0].sets, vec!["cache.url=redis://x/0", "sale.stock_strategy=evalsha"]);
        assert!(parse(&["evalsha"]).is_err(), "nothing before it");
        assert!(parse(&["embedded", "evalsha"]).is_err(), "no Redis before it");
        assert!(parse(&[r, "nginx", "evalsha"]).is_err(), "nginx has no backends");
    }
}
