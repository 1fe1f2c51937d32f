//! Complete / pending / lost hours per site, from the ledger and the manifests.

use kit_storage::ObjectStore;
use serde::Serialize;

use crate::error::Result;
use crate::ledger::{self, HourState};
use crate::window::{HOUR, Hour, keys};

#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteStatus {
    pub site: String,
    /// Complete hours still inside the API's retention window.
    pub complete: Vec<String>,
    /// Incomplete hours the API still serves: the next run exports them.
    pub pending: Vec<String>,
    /// Every hour recorded lost, plus hours out of retention without a manifest not yet recorded.
    pub lost: Vec<String>,
    pub ledger_found: bool,
}

pub async fn site_status(
    store: &dyn ObjectStore,
    corp: &str,
    site: &str,
    now: i64,
) -> Result<SiteStatus> {
    let mut status = SiteStatus {
        site: site.to_string(),
        ..SiteStatus::default()
    };
    let stored = ledger::load(store, corp, site).await?.map(|(l, _)| l);
    let oldest = Hour::oldest_retained(now);
    let newest = Hour::newest_ready(now);
    let start = match &stored {
        Some(ledger) => {
            status.ledger_found = true;
            status.lost = ledger.lost_hours().map(|h| h.to_string()).collect();
            ledger.resolved_before().min(oldest)
        }
        None => oldest,
    };
    let mut hour = start;
    while hour <= newest {
        let state = stored
            .as_ref()
            .map_or(HourState::Unknown, |l| l.state(hour));
        let complete = match state {
            HourState::Complete => true,
            HourState::Lost => false,
            HourState::Unknown => store
                .get(&keys::manifest(corp, site, hour))
                .await?
                .is_some(),
        };
        if complete {
            if hour >= oldest {
                status.complete.push(hour.to_string());
            }
        } else if state != HourState::Lost {
            if hour >= oldest {
                status.pending.push(hour.to_string())
            } else {
                status.lost.push(hour.to_string())
            }
        }
        hour = Hour(hour.start() + HOUR);
    }
    Ok(status)
}
