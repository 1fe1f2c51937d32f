//! The acknowledgement Lambda behind a function URL: serves the pages the links in messages open.

use agent_health::lambda::{LambdaDeps, init_logging};
use agent_health::web::router;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let deps = LambdaDeps::from_process()?;
    // Rules and the signing key are read once per container; a rules change reaches new containers.
    let service = deps.ack_service().await?;
    lambda_http::run(router(service)).await
}
