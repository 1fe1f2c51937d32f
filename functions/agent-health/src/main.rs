//! The agent-health Lambda (EventBridge Scheduler, every 5 minutes): environment, dependencies,
//! then the runtime loop.

mod lambda;

use agent_health::environment::{Deps, Env};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kit_lambda::init_logging();
    let env = Env::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let deps = Deps::new(env);
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            lambda::handle(event, deps)
                .await
                .map_err(|error| kit_lambda::diagnostic(&error))
        },
    ))
    .await
}
