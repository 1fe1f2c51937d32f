//! The function URL's service: the acknowledgement pages over the state and rules of the corp.

use std::sync::Arc;

use agent_health::environment::{self, Deps};
use agent_health::router;
use axum::Router;
use kit_lambda::Failure;
use lambda_http::lambda_runtime::Diagnostic;
use lambda_http::tower::ServiceExt;
use lambda_http::{Request, Service, service_fn};
use tokio::sync::OnceCell;

/// The library's error, marked retryable or not for the runtime (the trait and the type live in
/// different crates, so the shell carries the pairing).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Error(environment::Error);

impl Failure for Error {
    fn is_transient(&self) -> bool {
        self.0.is_transient()
    }
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Diagnostic {
        kit_lambda::diagnostic(&error)
    }
}

/// The pages, checked at start-up as far as the network is not needed (the environment, inline
/// rules and their `ack.secret`) and made on the first request: the signing key, the rules on S3,
/// the store and the channels' clients (whose TLS roots alone cost milliseconds of init). Until
/// they can be made, each request fails as an invocation error (so the function's error alarm
/// fires) and the next one tries again. Rules are read once per container (a rules change reaches
/// new containers); the signing key is read again when a link's signature does not match it (a
/// rotated secret).
pub async fn service(
    deps: Deps,
) -> Result<
    impl Service<Request, Response = axum::response::Response, Error = Error, Future: Send>,
    Error,
> {
    deps.check_ack_settings()
        .await
        .map_err(Error)
        .inspect_err(|e| tracing::error!(error = %e, "cannot serve acknowledgements"))?;
    let pages = Arc::new(Pages {
        deps,
        router: OnceCell::new(),
    });
    Ok(service_fn(move |request| {
        let pages = Arc::clone(&pages);
        async move { pages.serve(request).await }
    }))
}

struct Pages {
    deps: Deps,
    router: OnceCell<Router>,
}

impl Pages {
    async fn serve(&self, request: Request) -> Result<axum::response::Response, Error> {
        let router = self
            .router
            .get_or_try_init(|| async { self.deps.ack_service().await.map(router) })
            .await
            .map_err(Error)
            .inspect_err(|e| tracing::error!(error = %e, "cannot serve acknowledgements"))?;
        match router.clone().oneshot(request).await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use agent_health::environment::Env;
    use lambda_http::Body;
    use lambda_http::http::StatusCode;

    use super::*;

    fn deps(rules: &str) -> Deps {
        let state = std::env::temp_dir().join(format!("ack-url-test-{}", std::process::id()));
        let vars: HashMap<&str, String> = [
            ("SIGSCI_CORP", "c".to_string()),
            ("SIGSCI_KIT_STATE", state.to_string_lossy().into_owned()),
            ("SIGSCI_KIT_RULES", rules.to_string()),
        ]
        .into_iter()
        .collect();
        Deps::new(Env::from_lookup(|name| vars.get(name).cloned()).unwrap())
    }

    async fn get(
        pages: &mut impl Service<Request, Response = axum::response::Response, Error = Error>,
        path: &str,
    ) -> Result<StatusCode, Error> {
        let request = lambda_http::http::Request::builder()
            .uri(path)
            .body(Body::Empty)
            .unwrap();
        let ready = ServiceExt::<Request>::ready(pages).await?;
        Ok(ready.call(request).await?.status())
    }

    #[tokio::test]
    async fn a_signing_key_that_cannot_be_read_fails_each_request_and_not_the_start() {
        let error = service(deps("channels: []\n")).await.err().unwrap();
        assert!(error.to_string().contains("ack.secret"), "{error}");

        // Read on the first request, not at start; each request tries again.
        let mut pages = service(deps("ack: {secret: 'env:SIGSCI_KIT_ACK_URL_TEST_UNSET'}\n"))
            .await
            .unwrap();
        for _ in 0..2 {
            let error = get(&mut pages, "/healthz").await.unwrap_err();
            assert!(
                error.to_string().contains("SIGSCI_KIT_ACK_URL_TEST_UNSET"),
                "{error}"
            );
            assert_eq!(Diagnostic::from(error).error_type, "Fatal");
        }

        // A variable every process has stands in for a set key (set_var races other tests).
        let mut pages = service(deps("ack: {secret: 'env:PATH'}\n")).await.unwrap();
        assert_eq!(get(&mut pages, "/healthz").await.unwrap(), StatusCode::OK);
    }
}
