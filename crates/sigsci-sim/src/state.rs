//! Shared simulator state: configuration, clock, mutable stores, faults and counters.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::agents::{Fleet, FleetUpdate};
use crate::alerts::{Alert, seeded_alerts};
use crate::calllog::CallLog;
use crate::clock::{ClockStatus, ClockUpdate, SimClock, WallClock, system_wall_clock};
use crate::config::SimConfig;
use crate::error::SimError;
use crate::faults::{FaultState, Faults};
use crate::feed::concurrency::FeedSlots;
use crate::feed::generate::{SignalFilter, SiteTraffic};
use crate::integrations::Integration;
use crate::lists::RuleList;
use crate::rng::{SplitMix, mix};
use crate::util::lock;

/// One seeded site.
#[derive(Debug)]
pub(crate) struct SiteInfo {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) traffic: SiteTraffic,
}

/// `PUT /__sim/credentials`: rotate the accepted token and/or password.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsUpdate {
    /// New API access token.
    pub token: Option<String>,
    /// New password for `POST /auth`.
    pub password: Option<String>,
}

impl std::fmt::Debug for CredentialsUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsUpdate")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Everything the API can change.
pub(crate) struct Store {
    pub(crate) alerts: HashMap<String, Vec<Alert>>,
    pub(crate) site_integrations: HashMap<String, Vec<Integration>>,
    pub(crate) corp_integrations: Vec<Integration>,
    pub(crate) site_lists: HashMap<String, Vec<RuleList>>,
    pub(crate) corp_lists: Vec<RuleList>,
    pub(crate) fleets: HashMap<String, Fleet>,
    pub(crate) token: SecretString,
    pub(crate) password: SecretString,
    pub(crate) sessions: HashSet<String>,
    ids: SplitMix,
}

impl Store {
    /// A fresh 24-hex-digit object id (deterministic per seed and creation order).
    pub(crate) fn new_id(&mut self) -> String {
        let a = self.ids.next_u64();
        let b = self.ids.next_u64();
        format!("{:016x}{:08x}", a, b as u32)
    }

    /// A uuid-shaped session token.
    pub(crate) fn new_session_token(&mut self) -> String {
        let a = self.ids.next_u64();
        let b = self.ids.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

pub(crate) struct Inner {
    pub(crate) config: SimConfig,
    pub(crate) sites: Vec<SiteInfo>,
    pub(crate) clock: SimClock,
    /// Simulator time at start-up; agent uptimes count from shortly before it.
    pub(crate) started_at: i64,
    pub(crate) cursor_key: [u8; 32],
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) log: Mutex<CallLog>,
    pub(crate) feed_slots: Mutex<FeedSlots>,
    /// Sites the API acts as if they did not exist yet (see [`SimState::withhold_site`]).
    pub(crate) withheld: Mutex<HashSet<String>>,
}

/// The simulator: cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct SimState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl SimState {
    /// A simulator on the system clock.
    pub fn new(config: SimConfig) -> SimState {
        Self::with_wall_clock(config, system_wall_clock)
    }

    /// A simulator whose wall time comes from `wall` (the control API still offsets/freezes it).
    pub fn with_wall_clock(config: SimConfig, wall: WallClock) -> SimState {
        let rps = if config.rps.is_finite() && config.rps > 0.0 {
            config.rps
        } else {
            0.0
        };
        let sites: Vec<SiteInfo> = (1..=config.sites)
            .map(|i| {
                let name = format!("site-{i}");
                SiteInfo {
                    display_name: format!("Site {i}"),
                    traffic: SiteTraffic::new(config.seed, &name, rps),
                    name,
                }
            })
            .collect();
        let clock = SimClock::new(wall);
        let started_at = clock.now();
        let alerts = sites
            .iter()
            .map(|site| {
                (
                    site.name.clone(),
                    seeded_alerts(&config, &site.name, started_at),
                )
            })
            .collect();
        let fleets = sites
            .iter()
            .map(|site| (site.name.clone(), Fleet::new(&site.name, rps)))
            .collect();
        let site_integrations = sites
            .iter()
            .map(|site| (site.name.clone(), Vec::new()))
            .collect();
        let mut cursor_key = [0u8; 32];
        let mut key_stream = SplitMix::new(mix(config.seed ^ 0x6375_7273_6f72));
        for chunk in cursor_key.chunks_mut(8) {
            chunk.copy_from_slice(&key_stream.next_u64().to_le_bytes());
        }
        let store = Store {
            alerts,
            site_integrations,
            corp_integrations: Vec::new(),
            site_lists: HashMap::new(),
            corp_lists: Vec::new(),
            fleets,
            token: SecretString::from(config.token.clone()),
            password: SecretString::from(config.password.clone()),
            sessions: HashSet::new(),
            ids: SplitMix::new(mix(config.seed ^ 0x0069_6473)),
        };
        let faults = FaultState::new(config.seed);
        SimState {
            inner: Arc::new(Inner {
                sites,
                clock,
                started_at,
                cursor_key,
                store: Mutex::new(store),
                faults: Mutex::new(faults),
                log: Mutex::new(CallLog::default()),
                feed_slots: Mutex::new(FeedSlots::default()),
                withheld: Mutex::new(HashSet::new()),
                config,
            }),
        }
    }

    /// The configuration this simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Simulator clock, epoch seconds.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Sorted ids of the feed records of `site` whose timestamp is in `[from, until)`.
    /// Unknown sites have no records.
    pub fn truth(&self, site: &str, from: i64, until: i64) -> Vec<String> {
        self.site(site)
            .map(|info| info.traffic.ids_in(from, until))
            .unwrap_or_default()
    }

    /// Like [`SimState::truth`], restricted to records carrying any of `tags` (the feed's `tags` filter).
    pub fn truth_tagged(&self, site: &str, from: i64, until: i64, tags: &[&str]) -> Vec<String> {
        let filter = SignalFilter::new(tags.iter().copied());
        self.site(site)
            .map(|info| info.traffic.ids_matching(from, until, Some(&filter)))
            .unwrap_or_default()
    }

    /// Site short names.
    pub fn site_names(&self) -> Vec<String> {
        self.sites().map(|s| s.name.clone()).collect()
    }

    /// Until `withheld` is set back to false, the API acts as if `name` did not exist: a site
    /// created later (tests of "every site, including sites created later").
    pub fn withhold_site(&self, name: &str, withheld: bool) {
        let mut all = lock(&self.inner.withheld);
        if withheld {
            all.insert(name.to_string());
        } else {
            all.remove(name);
        }
    }

    /// The sites the API shows.
    pub(crate) fn sites(&self) -> impl Iterator<Item = &SiteInfo> {
        let withheld = lock(&self.inner.withheld).clone();
        self.inner
            .sites
            .iter()
            .filter(move |s| !withheld.contains(&s.name))
    }

    /// The current fault set.
    pub fn faults(&self) -> Faults {
        lock(&self.inner.faults).faults.clone()
    }

    /// Replaces the whole fault set (and restarts the fault draw sequence).
    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults.validate()?;
        lock(&self.inner.faults).replace(faults, self.inner.config.seed);
        Ok(())
    }

    /// Changes a site's agent fleet (`PUT /__sim/sites/{site}/agents`).
    pub fn set_fleet(&self, site: &str, update: &FleetUpdate) -> Result<(), SimError> {
        self.require_site(site)?;
        let mut store = lock(&self.inner.store);
        let fleet = store
            .fleets
            .get_mut(site)
            .ok_or_else(|| SimError::not_found(format!("site {site} not found")))?;
        fleet.apply(site, update)
    }

    /// Adjusts the simulator clock; returns the new now.
    pub fn update_clock(&self, update: &ClockUpdate) -> Result<i64, SimError> {
        self.inner.clock.update(update)
    }

    /// The simulator clock setting.
    pub fn clock(&self) -> ClockStatus {
        self.inner.clock.status()
    }

    /// Rotates the accepted token and/or password. Issued sessions stay valid.
    pub fn set_credentials(&self, update: &CredentialsUpdate) -> Result<(), SimError> {
        if update.token.is_none() && update.password.is_none() {
            return Err(SimError::bad_request(
                "credentials update needs token and/or password",
            ));
        }
        if update.token.as_deref() == Some("") || update.password.as_deref() == Some("") {
            return Err(SimError::bad_request(
                "token and password must not be empty",
            ));
        }
        let mut store = lock(&self.inner.store);
        if let Some(token) = &update.token {
            store.token = SecretString::from(token.clone());
        }
        if let Some(password) = &update.password {
            store.password = SecretString::from(password.clone());
        }
        Ok(())
    }

    /// Call counters and feed concurrency maxima.
    pub fn call_log(&self) -> CallLog {
        lock(&self.inner.log).clone()
    }

    pub(crate) fn record_refused_credentials(&self) {
        lock(&self.inner.log).refused_credentials += 1;
    }

    /// Resets the call counters.
    pub fn reset_call_log(&self) {
        *lock(&self.inner.log) = CallLog::default();
    }

    /// One site by name, unless withheld; the lookup every site-scoped request makes, so it
    /// checks the withheld set in place rather than copying it as [`Self::sites`] does.
    pub(crate) fn site(&self, name: &str) -> Option<&SiteInfo> {
        let site = self.inner.sites.iter().find(|s| s.name == name)?;
        (!lock(&self.inner.withheld).contains(name)).then_some(site)
    }

    pub(crate) fn require_site(&self, name: &str) -> Result<&SiteInfo, SimError> {
        self.site(name)
            .ok_or_else(|| SimError::not_found(format!("site {name} not found")))
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    pub(crate) fn token_matches(&self, email: &str, token: &str) -> bool {
        email.eq_ignore_ascii_case(&self.inner.config.email)
            && self.store().token.expose_secret() == token
    }

    pub(crate) fn password_matches(&self, email: &str, password: &str) -> bool {
        email.eq_ignore_ascii_case(&self.inner.config.email)
            && self.store().password.expose_secret() == password
    }
}
