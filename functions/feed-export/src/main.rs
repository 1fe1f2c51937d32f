//! The feed export Lambda (EventBridge Scheduler, every 15 minutes): environment, dependencies,
//! then the runtime loop.

mod lambda;

use feed_export::allocator::StreamingAllocator;
use feed_export::environment::{Deps, Env};

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
    let deps = Env::from_lookup(|name| std::env::var(name).ok())
        .and_then(Deps::new)
        .inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    kit_lambda::run(|event| lambda::handle(event, &deps)).await
}
