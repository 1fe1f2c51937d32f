//! Simulator configuration (the CLI defaults live in `Default`).

use std::fmt;

/// What the simulator serves: one corp with `sites` sites of synthetic traffic.
#[derive(Clone, PartialEq)]
pub struct SimConfig {
    /// Corp short name.
    pub corp: String,
    /// Number of sites, named `site-1`..`site-N`.
    pub sites: usize,
    /// Mean feed records per second per site.
    pub rps: f64,
    /// Seed of all synthetic data (feed records, ids, fault draws).
    pub seed: u64,
    /// The one accepted user.
    pub email: String,
    /// Accepted API access token (`x-api-token`).
    pub token: String,
    /// Accepted password for `POST /auth`.
    pub password: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            corp: "testcorp".to_owned(),
            sites: 3,
            rps: 50.0,
            seed: 1,
            email: "sim@example.com".to_owned(),
            token: "sim-token".to_owned(),
            password: "sim-password".to_owned(),
        }
    }
}

// Token and password must never reach logs.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("corp", &self.corp)
            .field("sites", &self.sites)
            .field("rps", &self.rps)
            .field("seed", &self.seed)
            .field("email", &self.email)
            .field("token", &"[REDACTED]")
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl SimConfig {
    /// Site short names: `site-1`..`site-N`.
    pub fn site_names(&self) -> Vec<String> {
        (1..=self.sites).map(|i| format!("site-{i}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let text = format!("{:?}", SimConfig::default());
        assert!(!text.contains("sim-token"));
        assert!(!text.contains("sim-password"));
        assert!(text.contains("testcorp"));
    }

    #[test]
    fn default_matches_cli_defaults() {
        let config = SimConfig::default();
        assert_eq!(config.site_names(), ["site-1", "site-2", "site-3"]);
        assert_eq!((config.rps, config.seed), (50.0, 1));
    }
}
