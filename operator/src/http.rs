//! The operator's HTTP endpoints: `/metrics` (Prometheus text) and `/health`.

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
        .route("/health", get(|| async { "ok\n" }))
        .with_state(metrics)
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
    async fn serves_health_and_metrics() {
        let metrics = Arc::new(Metrics::default());
        metrics.failure("Integration", "transient");
        assert_eq!(
            get(metrics.clone(), "/health").await,
            (StatusCode::OK, "ok\n".to_string())
        );
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
