//! The function URL's service: the acknowledgement pages over the state and rules of the corp.

use agent_health::environment::{Deps, Error};
use agent_health::router;

/// Rules are read once per container (a rules change reaches new containers); the signing key is read
/// again when a link's signature does not match it (a rotated secret).
pub async fn service(deps: &Deps) -> Result<axum::Router, Error> {
    let service = deps
        .ack_service()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "cannot serve acknowledgements"))?;
    Ok(router(service))
}
