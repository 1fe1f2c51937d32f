//! AWS SDK settings built synchronously (so `open` stays a plain function): region and endpoint
//! from the standard environment variables, credentials from the default chain, resolved on first use.

use aws_config::BehaviorVersion;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_s3::config::Region;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
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

/// The SDK's default chain (environment, profile, web identity, ECS/IMDS).
pub(crate) fn credentials() -> SharedCredentialsProvider {
    let region = region();
    SharedCredentialsProvider::new(Lazy::new("default chain", move || {
        let region = region.clone();
        Box::pin(async move {
            DefaultCredentialsChain::builder()
                .region(region)
                .build()
                .await
        })
    }))
}

/// The session name the lake's CloudTrail shows for the role's use.
const SESSION_NAME: &str = "sigsci-kit";

/// Credentials of `role_arn`, assumed through STS (endpoint: `AWS_ENDPOINT_URL_STS` or
/// `AWS_ENDPOINT_URL`) with the default chain's; the client's identity cache renews them.
pub(crate) fn assumed_role(role_arn: &str) -> SharedCredentialsProvider {
    let role_arn = role_arn.to_string();
    SharedCredentialsProvider::new(Lazy::new("assumed role", move || {
        let role_arn = role_arn.clone();
        Box::pin(async move {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(region())
                .credentials_provider(credentials());
            if let Some(url) = endpoint(None, "AWS_ENDPOINT_URL_STS") {
                loader = loader.endpoint_url(url);
            }
            AssumeRoleProvider::builder(role_arn)
                .session_name(SESSION_NAME)
                .configure(&loader.load().await)
                .build()
                .await
        })
    }))
}

type Build<P> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = P> + Send>> + Send + Sync>;

/// A provider the SDK builds asynchronously, built on the first request for credentials (so
/// `open` stays a plain function).
struct Lazy<P> {
    name: &'static str,
    build: Build<P>,
    provider: OnceCell<P>,
}

impl<P> Lazy<P> {
    fn new(
        name: &'static str,
        build: impl Fn() -> Pin<Box<dyn Future<Output = P> + Send>> + Send + Sync + 'static,
    ) -> Lazy<P> {
        Lazy {
            name,
            build: Box::new(build),
            provider: OnceCell::new(),
        }
    }
}

impl<P> fmt::Debug for Lazy<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy")
            .field("provider", &self.name)
            .finish_non_exhaustive()
    }
}

impl<P: ProvideCredentials> ProvideCredentials for Lazy<P> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let provider = self.provider.get_or_init(|| (self.build)()).await;
            let result: provider::Result = provider.provide_credentials().await;
            result
        })
    }
}
