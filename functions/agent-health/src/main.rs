//! The agent-health Lambda (EventBridge Scheduler, every 5 minutes): environment, dependencies,
//! then the runtime loop.

mod lambda;

use agent_health::environment::{Deps, Env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kit_lambda::init_logging();
    let deps = Env::from_lookup(|name| std::env::var(name).ok())
        .map(Deps::new)
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    kit_lambda::run(|event| lambda::handle(event, &deps)).await
}
