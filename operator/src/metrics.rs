//! Reconcile metrics: `sigsci_kit_reconcile_runs_total{kind}`,
//! `sigsci_kit_reconcile_failures_total{kind,error}` and
//! `sigsci_kit_reconcile_duration_seconds{kind}`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    error: &'static str,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    runs: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: HistogramFamily,
}

fn duration_histogram() -> Histogram {
    // 10 ms .. ~20 s: reconciles are one or two API round trips.
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sigsci_kit");
        let runs = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register("reconcile_runs", "Reconciliations started", runs.clone());
        registry.register(
            "reconcile_failures",
            "Reconciliations that failed, by error class",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent per reconciliation",
            duration.clone(),
        );
        Metrics {
            registry,
            runs,
            failures,
            duration,
        }
    }
}

impl Metrics {
    /// Count a run and time it until the returned guard drops.
    pub fn reconcile(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.runs.get_or_create(&KindLabels { kind }).inc();
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    pub fn failure(&self, kind: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { kind, error })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Observes the reconcile duration on drop, on every return path.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&KindLabels { kind: self.kind })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_runs_failures_and_durations_with_labels() {
        let metrics = Metrics::default();
        drop(metrics.reconcile("AgentAlert"));
        drop(metrics.reconcile("AgentAlert"));
        metrics.failure("AgentAlert", "auth");
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains(r#"sigsci_kit_reconcile_runs_total{kind="AgentAlert"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"sigsci_kit_reconcile_failures_total{kind="AgentAlert",error="auth"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"sigsci_kit_reconcile_duration_seconds_count{kind="AgentAlert"} 2"#),
            "{text}"
        );
    }
}
