//! AWS SDK settings built synchronously (so `open` stays a plain function): region and endpoint
//! from the standard environment variables, credentials from the default chain, resolved on first use.

use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
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

/// Credentials of `role_arn`, assumed through STS (endpoint: `AWS_ENDPOINT_URL_STS` or
/// `AWS_ENDPOINT_URL`) with the default chain's; the client's identity cache renews them.
pub(crate) fn assumed_role(role_arn: &str) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(LazyAssumeRole {
        role_arn: role_arn.to_string(),
        provider: OnceCell::new(),
    })
}

/// The session name the lake's CloudTrail shows for the role's use.
const SESSION_NAME: &str = "sigsci-kit";

/// [`AssumeRoleProvider`] is built asynchronously too: on the first request for credentials.
#[derive(Debug)]
struct LazyAssumeRole {
    role_arn: String,
    provider: OnceCell<AssumeRoleProvider>,
}

impl ProvideCredentials for LazyAssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let provider = self
                .provider
                .get_or_init(|| async {
                    let mut loader = aws_config::defaults(BehaviorVersion::latest())
                        .region(region())
                        .credentials_provider(credentials());
                    if let Some(url) = endpoint(None, "AWS_ENDPOINT_URL_STS") {
                        loader = loader.endpoint_url(url);
                    }
                    AssumeRoleProvider::builder(self.role_arn.clone())
                        .session_name(SESSION_NAME)
                        .configure(&loader.load().await)
                        .build()
                        .await
                })
                .await;
            let result: provider::Result = provider.provide_credentials().await;
            result
        })
    }
}
