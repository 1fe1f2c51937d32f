//! The feed export Lambda (EventBridge Scheduler, every 15 minutes): environment, dependencies,
//! then the runtime loop.

mod lambda;

use feed_export::allocator::StreamingAllocator;
use feed_export::environment::{Deps, Env};
use tokio::sync::OnceCell;

#[global_allocator]
static GLOBAL: StreamingAllocator = StreamingAllocator;

fn main() -> Result<(), lambda_runtime::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), lambda_runtime::Error> {
    kit_lambda::init_logging();
    let env = Env::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    // The settings are checked above; the SDK clients (whose TLS roots cost milliseconds) are
    // made in the first invocation, so that init stays short.
    let deps = OnceCell::new();
    kit_lambda::run(|event| async {
        let deps = deps
            .get_or_try_init(|| async { Deps::new(env.clone()) })
            .await
            .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
        lambda::handle(event, deps).await
    })
    .await
}
