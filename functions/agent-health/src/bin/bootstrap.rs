//! The scheduled agent-health Lambda: one evaluation per EventBridge Scheduler event.

use agent_health::lambda::{LambdaDeps, handle_scheduled, init_logging};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let deps = LambdaDeps::from_process()?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        handle_scheduled(deps, event)
    }))
    .await
}
