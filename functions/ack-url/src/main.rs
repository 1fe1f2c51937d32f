//! The acknowledgement Lambda behind a function URL (auth NONE: every link carries its own
//! signature): environment, dependencies, then the pages as an HTTP service.

mod lambda;

use agent_health::environment::{Deps, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    kit_lambda::init_logging();
    let deps = Env::from_lookup(|name| std::env::var(name).ok())
        .map(Deps::new)
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    lambda_http::run(lambda::service(deps).await?).await
}
