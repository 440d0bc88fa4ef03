//! What `seckill-bench overload` measured: its `--json` document and table.

use super::memory::Memory;
use super::{GOODPUT_GOAL, Mark, difference};
use crate::buy::statuses_line;
use crate::report::{Summary, errors_line, group};
use crate::run::RunConfig;
use crate::sale::{PromiseReport, SetupTimes, latency_ms_row, meaning, round3};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One phase: the driver's summary of its measured window, and the whole
/// phase's answers (warm-up included) from the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub run: Summary,
    /// Seconds from the phase's start to its end, warm-up included.
    pub length_s: f64,
    /// Buys sent per second over the whole phase: what the bench actually
    /// offered (an open loop's schedule may run ahead of the connections).
    pub offered_per_s: f64,
    /// 200s per second in the measured window: orders made durable.
    pub goodput_per_s: f64,
    /// Goodput over the capacity measured in the first phase.
    pub goodput_ratio: f64,
    /// Every answer of the phase by status, and by status and code.
    pub statuses: BTreeMap<String, u64>,
    pub codes: BTreeMap<String, u64>,
}

impl Phase {
    pub(super) fn new(run: Summary, before: &Mark, after: &Mark, config: &RunConfig, capacity_per_s: f64) -> Phase {
        let length_s = (after.at - before.at).as_secs_f64().max(1e-9);
        let ok = run.status.get("200").copied().unwrap_or(0);
        let goodput_per_s = ok as f64 / config.duration.as_secs_f64();
        Phase {
            run,
            length_s: round3(length_s),
            offered_per_s: ((after.sent - before.sent) as f64 / length_s).round(),
            goodput_per_s: goodput_per_s.round(),
            goodput_ratio: if capacity_per_s > 0.0 { round3(goodput_per_s / capacity_per_s) } else { 0.0 },
            statuses: difference(&before.statuses, &after.statuses),
            codes: difference(&before.codes, &after.codes),
        }
    }
}

/// Everything `seckill-bench overload` measured.
#[derive(Debug, Clone, Serialize)]
pub struct OverloadReport {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    pub target: String,
    pub spawned: bool,
    pub server_settings: Vec<String>,
    pub durability: String,
    pub item_id: u64,
    pub stock: u64,
    pub per_user_limit: u32,
    pub users: usize,
    pub setup: SetupTimes,
    /// The overload phase's rate as a multiple of the capacity.
    pub factor: f64,
    pub capacity: Phase,
    pub overload: Phase,
    /// 429 and 503 answers over the whole run, and those without `Retry-After`.
    pub shed: u64,
    pub shed_without_retry_after: u64,
    /// `None` when the server's pid is not known (`--target` without `--server-pid`).
    pub memory: Option<Memory>,
    /// Whether the payment deadlines were waited for and promise 6 checked.
    pub expiry_checked: bool,
    pub promises: PromiseReport,
}

impl OverloadReport {
    /// A promise broke, a shed answer lacked `Retry-After`, or memory was
    /// not bounded: the exit status is then 3.
    pub fn violated(&self) -> bool {
        !self.promises.held || self.shed_without_retry_after > 0 || self.memory.as_ref().is_some_and(|m| !m.bounded())
    }

    /// Whether a phase failed as a whole (no connection, nothing answered).
    pub fn failed(&self) -> bool {
        self.capacity.run.failed() || self.overload.run.failed()
    }

    /// Whether goodput under overload met the goal (reported, not asserted).
    pub fn goal_met(&self) -> bool {
        self.overload.goodput_ratio >= GOODPUT_GOAL
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "seckill-bench overload  {}{}\n  item {}: stock {}, per-user limit {}; {} users\n  durability: {}",
            self.target,
            if self.spawned { " (started by the bench)" } else { "" },
            self.item_id,
            group(self.stock as f64),
            group(f64::from(self.per_user_limit)),
            group(self.users as f64),
            self.durability
        );
        if !self.server_settings.is_empty() {
            let _ = writeln!(out, "  server settings: {}", self.server_settings.join(" "));
        }
        let c = &self.capacity;
        let _ = writeln!(
            out,
            "\n  capacity: closed loop, {} connections × {} outstanding each, {}s measured after {}s \
             warm-up\n    {} orders/s durable (200s); offered {} buys/s",
            c.run.params.connections,
            c.run.params.pipeline,
            c.run.params.duration_s,
            c.run.params.warmup_s,
            group(c.goodput_per_s),
            group(c.offered_per_s)
        );
        phase_lines(c, &mut out);
        let o = &self.overload;
        let rate = o.run.params.rate_per_s.unwrap_or(0.0);
        let _ = writeln!(
            out,
            "\n  overload: open loop at {} req/s ({} × capacity), {} connections × up to {} outstanding each, \
             {}s measured after {}s warm-up\n    achieved offered rate {} buys/s = {:.2} × capacity{}",
            group(rate),
            self.factor,
            o.run.params.connections,
            o.run.params.pipeline,
            o.run.params.duration_s,
            o.run.params.warmup_s,
            group(o.offered_per_s),
            o.offered_per_s / c.goodput_per_s.max(1.0),
            if o.run.unsent > 0 {
                format!(" ({} due but unsent at the end)", group(o.run.unsent as f64))
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "    goodput {} orders/s = {:.3} × capacity (goal ≥ {GOODPUT_GOAL}: {})",
            group(o.goodput_per_s),
            o.goodput_ratio,
            if self.goal_met() { "met" } else { "NOT met" }
        );
        phase_lines(o, &mut out);
        let _ = writeln!(
            out,
            "\n  429/503 answers: {}, without Retry-After: {}{}",
            group(self.shed as f64),
            self.shed_without_retry_after,
            if self.shed_without_retry_after > 0 { " (VIOLATION)" } else { "" }
        );
        match &self.memory {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "  server RSS (pid {}, every 100 ms): {:.1} MiB before, {:.1} after the capacity phase; overload \
                     halves' maxima {:.1} then {:.1}; peak {:.1} (limit {:.0}){}; end {:.1} MiB: {}",
                    m.pid,
                    m.before_mib,
                    m.after_capacity_mib,
                    m.overload_first_half_max_mib,
                    m.overload_second_half_max_mib,
                    m.peak_mib,
                    m.limit_mib,
                    m.hwm_mib.map_or(String::new(), |h| format!(", VmHWM since start {h:.1}")),
                    m.end_mib,
                    match (m.over_limit, m.growing) {
                        (false, false) => "bounded",
                        (true, _) => "OVER THE LIMIT",
                        (false, true) => "STILL GROWING",
                    }
                );
            }
            None => {
                let _ = writeln!(out, "  server RSS: not sampled (give --server-pid with --target)");
            }
        }
        self.promises.write_lines(self.stock, &mut out);
        if !self.expiry_checked {
            let _ = writeln!(out, "    promise 6 (expiry) not checked: the payment deadlines were too far away");
        }
        out
    }
}

/// A phase's answers by status and code, errors, and latency.
fn phase_lines(p: &Phase, out: &mut String) {
    let total: u64 = p.statuses.values().sum();
    let _ = writeln!(out, "    answers ({} in the phase): {}", group(total as f64), statuses_line(&p.statuses, total));
    for (code, n) in &p.codes {
        let status = code.split(' ').next().unwrap_or("");
        let _ = writeln!(out, "      {code:<28}{:>12}  {}", group(*n as f64), meaning(status));
    }
    let r = &p.run;
    if r.errors.total() > 0 {
        let _ = writeln!(out, "    transport errors: {}", errors_line(&r.errors));
    }
    let _ = writeln!(
        out,
        "    {:<18}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "latency (ms)", "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
    let first = if r.service_time_us.is_some() { "corrected" } else { "service time" };
    let _ = writeln!(out, "  {}", latency_ms_row(first, &r.latency_us));
    if let Some(service) = &r.service_time_us {
        let _ = writeln!(out, "  {}", latency_ms_row("service time", service));
    }
}
