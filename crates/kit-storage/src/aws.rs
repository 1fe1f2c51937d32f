//! AWS SDK settings built synchronously (so `open` stays a plain function): region and endpoint
//! from the standard environment variables, credentials from the default chain, resolved on first use.

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::config::Region;
use tokio::sync::OnceCell;

const DEFAULT_REGION: &str = "us-east-1";

pub(crate) fn region() -> Region {
    let name = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    Region::new(name)
}

/// An explicit endpoint wins, then `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`.
pub(crate) fn endpoint(explicit: Option<&str>, service_env: &str) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var(service_env).ok())
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .filter(|url| !url.trim().is_empty())
}

pub(crate) fn credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(LazyDefaultChain {
        region: region(),
        chain: OnceCell::new(),
    })
}

/// The SDK's default chain (environment, profile, web identity, ECS/IMDS) is built asynchronously;
/// this builds it on the first request for credentials.
#[derive(Debug)]
struct LazyDefaultChain {
    region: Region,
    chain: OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| {
                    DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .build()
                })
                .await;
            let result: provider::Result = chain.provide_credentials().await;
            result
        })
    }
}
