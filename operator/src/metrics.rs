//! Reconcile metrics: `sigsci_kit_reconcile_runs_total{kind}`,
//! `sigsci_kit_reconcile_failures_total{kind,error}` and
//! `sigsci_kit_reconcile_duration_seconds{kind}`, and `sigsci_kit_ready` (what `/readyz` answers).
//! `sigsci_kit_drifted_objects{kind}` counts the objects whose remote object differs from the spec.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    ready: Gauge,
    drifted: Family<KindLabels, Gauge>,
    /// Which objects the drifted gauge counts, so a repeated report counts once.
    drifted_objects: Mutex<HashMap<&'static str, BTreeSet<String>>>,
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
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 once the API server answered and every CRD is served (the operator's /readyz)",
            ready.clone(),
        );
        let drifted = Family::<KindLabels, Gauge>::default();
        registry.register(
            "drifted_objects",
            "Objects whose remote object differs from the spec (status.drift is not empty)",
            drifted.clone(),
        );
        Metrics {
            registry,
            runs,
            failures,
            duration,
            ready,
            drifted,
            drifted_objects: Mutex::default(),
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

    /// Set by `run` once its preflight reached the API; read by `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// Whether `object` (of `kind`) currently drifts; gone objects are reported as not drifting.
    pub fn set_drifted(&self, kind: &'static str, object: &str, drifted: bool) {
        let mut all = self
            .drifted_objects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let objects = all.entry(kind).or_default();
        let changed = if drifted {
            objects.insert(object.to_string())
        } else {
            objects.remove(object)
        };
        if changed {
            let count = i64::try_from(objects.len()).unwrap_or(i64::MAX);
            self.drifted.get_or_create(&KindLabels { kind }).set(count);
        }
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

    #[test]
    fn drifted_objects_are_counted_once_each() {
        let metrics = Metrics::default();
        metrics.set_drifted("Integration", "ns/a", true);
        metrics.set_drifted("Integration", "ns/a", true);
        metrics.set_drifted("Integration", "ns/b", true);
        metrics.set_drifted("AgentAlert", "ns/c", true);
        metrics.set_drifted("Integration", "ns/b", false);
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains(r#"sigsci_kit_drifted_objects{kind="Integration"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sigsci_kit_drifted_objects{kind="AgentAlert"} 1"#),
            "{text}"
        );
    }
}
