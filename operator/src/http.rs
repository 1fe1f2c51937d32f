//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! serves: liveness), `/readyz` (the API server answered and every CRD is served: readiness),
//! and `/health`, the same as `/healthz`, which the image and binary checks in tests/ call.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

pub fn app(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(alive))
        .route("/health", get(alive))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn alive() -> &'static str {
    "ok\n"
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if metrics.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cannot encode metrics\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(metrics: Arc<Metrics>, path: &str) -> (StatusCode, String) {
        let response = app(metrics)
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn alive_from_the_start_ready_only_once_run_says_so() {
        let metrics = Arc::new(Metrics::default());
        let ok = (StatusCode::OK, "ok\n".to_string());
        assert_eq!(get(metrics.clone(), "/healthz").await, ok);
        assert_eq!(get(metrics.clone(), "/health").await, ok);
        assert_eq!(
            get(metrics.clone(), "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
        );
        metrics.set_ready(true);
        assert_eq!(get(metrics.clone(), "/readyz").await, ok);
        assert_eq!(get(metrics.clone(), "/healthz").await, ok);
        let (_, text) = get(metrics.clone(), "/metrics").await;
        assert!(text.contains("sigsci_kit_ready 1"), "{text}");
        metrics.set_ready(false);
        assert_eq!(
            get(metrics, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn serves_metrics() {
        let metrics = Arc::new(Metrics::default());
        metrics.failure("Integration", "transient");
        let (status, text) = get(metrics.clone(), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains(
                r#"sigsci_kit_reconcile_failures_total{kind="Integration",error="transient"} 1"#
            ),
            "{text}"
        );
        assert_eq!(get(metrics, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
