//! What the campaign reports: each sale's figures and faults, the broken
//! promises and where they were seen, the table and the JSON, and the
//! command that replays the seed.

use super::buyers::{BuyRecord, Outcome};
use super::faults::{Fault, FaultKind};
use crate::promises::{self, Violation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

/// A broken promise, where it was seen.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub sale: usize,
    /// `nginx`, `instance N` or `retries`.
    pub seen_via: String,
    pub violation: Violation,
}

/// One sale's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SaleFigures {
    pub faults: usize,
    /// The faults as drawn and carried out, in order (the JSON keeps them,
    /// and the table shows those of a sale that broke a promise).
    pub schedule: Vec<Fault>,
    pub buys: u64,
    pub acknowledged: u64,
    pub sold_out: u64,
    pub refused_other: u64,
    pub unknown: u64,
    pub retried: u64,
    /// Attempts answered 5xx (503 from an instance, 502/504 from nginx).
    pub answers_5xx: u64,
    /// Attempts that got no answer (connection lost, timeout).
    pub unanswered: u64,
    pub orders: u64,
    pub live_units: u64,
    pub took_s: f64,
}

/// The whole campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NemesisReport {
    pub seed: u64,
    pub argv: Vec<String>,
    pub system: String,
    pub sales_planned: usize,
    pub sales: Vec<SaleFigures>,
    pub faults_by_kind: BTreeMap<FaultKind, u64>,
    pub violations: Vec<Found>,
    pub took_s: f64,
    /// Set when the campaign stopped early (`--duration` or an error).
    pub stopped: Option<String>,
}

pub(super) fn figures(
    records: &[BuyRecord],
    schedule: &[Fault],
    store: &promises::StoreView,
    started: Instant,
) -> SaleFigures {
    let count = |f: &dyn Fn(&BuyRecord) -> bool| records.iter().filter(|r| f(r)).count() as u64;
    SaleFigures {
        faults: schedule.len(),
        schedule: schedule.to_vec(),
        buys: records.len() as u64,
        acknowledged: count(&|r| matches!(r.outcome, Outcome::Acknowledged(_))),
        sold_out: count(&|r| r.outcome == Outcome::Refused(410)),
        refused_other: count(&|r| matches!(r.outcome, Outcome::Refused(s) if s != 410)),
        unknown: count(&|r| r.outcome == Outcome::Unknown),
        retried: count(&|r| r.attempts > 1),
        answers_5xx: records.iter().map(|r| r.answers_5xx as u64).sum(),
        unanswered: records.iter().map(|r| r.unanswered as u64).sum(),
        orders: store.orders.len() as u64,
        live_units: store.orders.iter().filter(|o| o.is_live()).map(|o| o.quantity).sum(),
        took_s: started.elapsed().as_secs_f64(),
    }
}

impl NemesisReport {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    /// The command line that replays this schedule.
    pub fn replay_command(&self) -> String {
        let mut argv: Vec<String> = Vec::with_capacity(self.argv.len() + 2);
        let mut skip = false;
        for arg in &self.argv {
            if skip {
                skip = false;
            } else if arg == "--seed" {
                skip = true;
            } else if !arg.starts_with("--seed=") {
                argv.push(arg.clone());
            }
        }
        argv.push(format!("--seed={}", self.seed));
        argv.join(" ")
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let sum = |f: fn(&SaleFigures) -> u64| self.sales.iter().map(f).sum::<u64>();
        let _ = writeln!(out, "nemesis: {}", self.system);
        let _ = writeln!(out, "seed                 {}", self.seed);
        let _ = writeln!(out, "sales run            {} of {}", self.sales.len(), self.sales_planned);
        let total: u64 = self.faults_by_kind.values().sum();
        let _ = writeln!(out, "faults injected      {total}");
        for (kind, n) in &self.faults_by_kind {
            let _ = writeln!(out, "  {:<28} {n}", kind.name());
        }
        let _ = writeln!(out, "buys                 {} ({} retried)", sum(|s| s.buys), sum(|s| s.retried));
        let _ = writeln!(out, "  200 (acknowledged)  {}", sum(|s| s.acknowledged));
        let _ = writeln!(out, "  410 sold_out        {}", sum(|s| s.sold_out));
        let _ = writeln!(out, "  other refusals      {}", sum(|s| s.refused_other));
        let _ = writeln!(out, "  outcome unknown     {}", sum(|s| s.unknown));
        let _ = writeln!(out, "attempts answered 5xx {}, unanswered {}", sum(|s| s.answers_5xx), sum(|s| s.unanswered));
        let _ = writeln!(out, "orders stored        {} ({} live units)", sum(|s| s.orders), sum(|s| s.live_units));
        let _ = writeln!(out, "violations           {}", self.violations.len());
        for found in &self.violations {
            let _ = writeln!(out, "  sale {} via {}: {}", found.sale + 1, found.seen_via, found.violation);
        }
        if self.failed() {
            self.write_schedules(&mut out);
            let _ = writeln!(out, "replay with: {}", self.replay_command());
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(out, "stopped early: {why}");
        }
        let _ = writeln!(out, "took                 {:.1} s", self.took_s);
        out
    }

    /// The faults of every sale that broke a promise, moment by moment.
    fn write_schedules(&self, out: &mut String) {
        let mut broken: Vec<usize> = self.violations.iter().map(|v| v.sale).collect();
        broken.dedup();
        for sale in broken {
            let Some(figures) = self.sales.get(sale) else { continue };
            let _ = writeln!(out, "sale {}'s faults:", sale + 1);
            for f in &figures.schedule {
                let _ = writeln!(
                    out,
                    "  at {:>6} ms  {:<28} instance {} {:?} for {} ms (latency {} ms)",
                    f.at.as_millis(),
                    f.kind.name(),
                    f.instance,
                    f.backend,
                    f.hold.as_millis(),
                    f.latency.as_millis()
                );
            }
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("the report serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::faults::Backend;
    use std::time::Duration;

    #[test]
    fn the_replay_command_pins_the_seed() {
        let report = NemesisReport {
            seed: 42,
            argv: ["seckill-bench", "nemesis", "--seed", "7", "--faults", "100"].map(String::from).to_vec(),
            ..NemesisReport::default()
        };
        assert_eq!(report.replay_command(), "seckill-bench nemesis --faults 100 --seed=42");
    }

    #[test]
    fn a_violation_prints_its_sale_schedule_and_the_replay() {
        let fault = Fault {
            kind: FaultKind::CrashMariadb,
            at: Duration::from_millis(1234),
            instance: 2,
            backend: Backend::Mariadb,
            hold: Duration::from_millis(500),
            latency: Duration::ZERO,
        };
        let report = NemesisReport {
            seed: 9,
            argv: ["seckill-bench", "nemesis"].map(String::from).to_vec(),
            sales: vec![SaleFigures { faults: 1, schedule: vec![fault], ..SaleFigures::default() }],
            violations: vec![Found {
                sale: 0,
                seen_via: "nginx".into(),
                violation: Violation::Oversell { live_units: 4, stock: 3 },
            }],
            ..NemesisReport::default()
        };
        let table = report.table();
        assert!(table.contains("sale 1 via nginx: oversell: 4 live units of a stock of 3"), "{table}");
        assert!(table.contains("at   1234 ms  kill -9 mariadbd"), "{table}");
        assert!(table.contains("replay with: seckill-bench nemesis --seed=9"), "{table}");
        assert!(report.failed());
    }
}
