//! One phase's latencies (HdrHistogram, overall and per call), counts and errors.

use std::collections::BTreeMap;
use std::time::Instant;

use hdrhistogram::Histogram;

/// Latencies and counts of one phase.
#[derive(Default)]
pub(super) struct Stats {
    latency_us: Option<Histogram<u64>>,
    /// The same latencies per call.
    by_call: BTreeMap<&'static str, Histogram<u64>>,
    rpcs: u64,
    pub(super) trades: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    pub(super) fn new() -> Self {
        Stats {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).ok(),
            ..Stats::default()
        }
    }

    pub(super) fn record(
        &mut self,
        call: &'static str,
        started: Instant,
        result: Result<(), tonic::Code>,
    ) {
        self.rpcs += 1;
        let us = u64::try_from(started.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Some(h) = &mut self.latency_us {
            let _ = h.record(us);
        }
        if !self.by_call.contains_key(call)
            && let Ok(h) = Histogram::new_with_bounds(1, 60_000_000, 3)
        {
            self.by_call.insert(call, h);
        }
        if let Some(h) = self.by_call.get_mut(call) {
            let _ = h.record(us);
        }
        if let Err(code) = result {
            *self.errors.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    pub(super) fn merge(&mut self, other: &Stats) {
        self.rpcs += other.rpcs;
        self.trades += other.trades;
        if let (Some(a), Some(b)) = (&mut self.latency_us, &other.latency_us) {
            let _ = a.add(b);
        }
        for (call, h) in &other.by_call {
            match self.by_call.get_mut(call) {
                Some(mine) => {
                    let _ = mine.add(h);
                }
                None => {
                    self.by_call.insert(call, h.clone());
                }
            }
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    pub(super) fn report(&self, name: &str, secs: f64) -> f64 {
        let q = |p: f64| {
            self.latency_us
                .as_ref()
                .map_or(0, |h| h.value_at_quantile(p))
        };
        let max = self.latency_us.as_ref().map_or(0, Histogram::max);
        let rps = self.rpcs as f64 / secs;
        println!(
            "{name}: {rps:>9.0} RPC/s  {:>8.0} trades/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  errors {:?}",
            self.trades as f64 / secs,
            q(0.50) as f64 / 1000.0,
            q(0.99) as f64 / 1000.0,
            q(0.999) as f64 / 1000.0,
            max as f64 / 1000.0,
            self.errors
        );
        if self.by_call.len() > 1 {
            for (call, h) in &self.by_call {
                println!(
                    "    {call:<15} {:>8} calls  p50 {:.2} ms  p99 {:.2} ms",
                    h.len(),
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                );
            }
        }
        rps
    }
}
