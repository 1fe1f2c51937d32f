//! Target and credentials shared by every subcommand that talks to the API.
//! Flags win over the environment; the variable names are the ones pysigsci users already have.

use anyhow::{Context, bail};
use clap::Args;
use secrecy::SecretString;
use sigsci::{Client, CredentialSecret, Credentials};

#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    /// API base URL (without /api/v0).
    #[arg(long, env = "SIGSCI_API_URL", default_value = sigsci::DEFAULT_API_URL)]
    pub api_url: String,
    /// Corp short name.
    #[arg(long, env = "SIGSCI_CORP")]
    pub corp: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
}

// Who logs in; `config` takes only these, as its manifests name the corp and API URL. (A `///`
// comment here would become the `about` of every command that flattens this.)
#[derive(Args, Clone, Debug)]
pub struct CredentialArgs {
    /// User e-mail for the API.
    #[arg(long, env = "SIGSCI_EMAIL")]
    pub email: Option<String>,
    /// API access token (SIGSCI_TOKEN is accepted too).
    #[arg(long, env = "SIGSCI_API_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
    /// Password for the legacy session login, used when no token is given.
    #[arg(long, env = "SIGSCI_PASSWORD", hide_env_values = true)]
    pub password: Option<SecretString>,
}

impl CredentialArgs {
    pub fn to_credentials(&self) -> anyhow::Result<Credentials> {
        let email = self
            .email
            .clone()
            .context("no e-mail given: pass --email or set SIGSCI_EMAIL")?;
        let token = self
            .token
            .clone()
            .or_else(|| std::env::var("SIGSCI_TOKEN").ok().map(SecretString::from));
        let secret = match (token, self.password.clone()) {
            (Some(token), _) => CredentialSecret::Token(token),
            (None, Some(password)) => CredentialSecret::Password(password),
            (None, None) => bail!(
                "no credentials given: pass --token (SIGSCI_API_TOKEN) or --password (SIGSCI_PASSWORD)"
            ),
        };
        Ok(Credentials { email, secret })
    }
}

impl ApiArgs {
    pub fn corp(&self) -> anyhow::Result<&str> {
        self.corp
            .as_deref()
            .context("no corp given: pass --corp or set SIGSCI_CORP")
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        let url = url_checked(&self.api_url)?;
        Client::builder(url, self.corp()?, self.credentials.to_credentials()?)
            .build()
            .context("cannot build the API client")
    }
}

fn url_checked(raw: &str) -> anyhow::Result<String> {
    let parsed: url::Url = raw
        .parse()
        .with_context(|| format!("--api-url {raw:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--api-url {raw:?} must be http or https");
    }
    Ok(raw.trim_end_matches('/').to_string())
}
