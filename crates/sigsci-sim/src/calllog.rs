//! Counters behind `GET /__sim/log`: API calls per method + path template, feed concurrency maxima.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /__sim/log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLog {
    /// `"GET /corps/{corp}/sites/{site}/alerts" -> 3`.
    pub calls: BTreeMap<String, u64>,
    /// Feed concurrency observations.
    pub feed: FeedStats,
    /// Requests refused for missing or wrong credentials (401), logins included.
    pub refused_credentials: u64,
}

/// Feed concurrency observations since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStats {
    /// Highest number of simultaneous feed requests seen per site.
    pub max_concurrent_per_site: BTreeMap<String, usize>,
    /// Highest number of simultaneous feed requests seen across the corp.
    pub max_concurrent_corp: usize,
    /// Feed requests refused with 429 for exceeding the limits.
    pub rejected_concurrency: u64,
}

impl CallLog {
    pub(crate) fn record_call(&mut self, method: &str, template: &str) {
        *self
            .calls
            .entry(format!("{method} {template}"))
            .or_default() += 1;
    }

    pub(crate) fn record_feed_concurrency(&mut self, site: &str, site_now: usize, corp_now: usize) {
        let site_max = self
            .feed
            .max_concurrent_per_site
            .entry(site.to_owned())
            .or_default();
        *site_max = (*site_max).max(site_now);
        self.feed.max_concurrent_corp = self.feed.max_concurrent_corp.max(corp_now);
    }
}
