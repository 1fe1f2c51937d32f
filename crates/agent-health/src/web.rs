//! The acknowledgement endpoint behind the links in every message (Lambda function URL or
//! `sigsci-kit health serve`). `GET /ack` verifies the link and shows a confirmation page (or
//! acknowledges at once for `one_click=true` links); `POST /ack` acknowledges, or with
//! `action=undo` withdraws what the link acknowledged. Tampered, expired and replayed links get 403
//! and change nothing. Acknowledgements reach PagerDuty and Opsgenie incidents before the page shows.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;

use crate::ack::{
    AckError, AckOutcome, AckRequest, acknowledge_with_site, firing_checks, silenced_channels,
    unacknowledge,
};
use crate::checks::{ConditionKey, Severity};
use crate::clock::Clock;
use crate::incidents::{IncidentOutcome, IncidentSync};
use crate::links::{ACK_PATH, AckLink, LinkError};
use crate::pages::{self, AlertView};
use crate::rules::Rules;
use crate::secrets::SigningKey;
use crate::state::{AckMethod, State, UsedLink};
use crate::store::{StateStore, UpdateError};

/// Longest name kept from the confirmation form.
const MAX_NAME_CHARS: usize = 100;

/// Remembers the name typed on the form for the next acknowledgement (a year; this site only).
const NAME_COOKIE: &str = "sigsci_kit_ack_by";

#[derive(Clone)]
pub struct AckService {
    pub corp: String,
    pub store: StateStore,
    pub rules: Arc<Rules>,
    pub key: SigningKey,
    pub clock: Arc<dyn Clock>,
    /// Passes acknowledgements on to the channels' incidents (PagerDuty, Opsgenie).
    pub incidents: IncidentSync,
}

pub fn router(service: AckService) -> Router {
    Router::new()
        .route(ACK_PATH, get(open_link).post(submit_form))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

struct Html {
    status: StatusCode,
    body: String,
    /// The acknowledger's name, to remember in a cookie.
    remember: Option<(String, bool)>,
}

fn html(status: StatusCode, body: String) -> Html {
    Html {
        status,
        body,
        remember: None,
    }
}

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // The URL is a credential: never leak it to other sites.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
        );
        if let Some((name, secure)) = self.remember {
            let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let cookie = format!(
                "{NAME_COOKIE}={encoded}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict{}",
                if secure { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.insert(header::SET_COOKIE, value);
            }
        }
        response
    }
}

/// The name remembered from an earlier acknowledgement, if the browser sent it.
fn remembered_name(headers: &HeaderMap) -> String {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(name, _)| *name == NAME_COOKIE)
        .map(|(_, value)| {
            url::form_urlencoded::parse(format!("n={value}").as_bytes())
                .map(|(_, name)| clean_name(&name))
                .next()
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Where a verified link stands against the current state.
enum Standing {
    Ready,
    Already(Option<(String, DateTime<Utc>)>),
    Used,
    Gone,
}

fn standing(state: &State, link: &AckLink, now: DateTime<Utc>) -> Standing {
    let condition = state
        .conditions
        .get(&link.check)
        .filter(|c| c.firing && c.episode == link.episode);
    let covering = condition.and_then(|c| {
        let whole = c.acks.whole.as_ref().filter(|ack| ack.in_force(now));
        if link.channels.is_empty() {
            return whole;
        }
        let each: Option<Vec<_>> = link
            .channels
            .iter()
            .map(|name| whole.or_else(|| c.acks.channels.get(name).filter(|ack| ack.in_force(now))))
            .collect();
        each.and_then(|acks| acks.into_iter().next())
    });
    let who = covering.map(|ack| (ack.by.clone(), ack.at));
    if condition.is_none() {
        // Recovered (or a later episode): that is the news, whether or not the link was used.
        return Standing::Gone;
    }
    match (state.used_links.contains_key(&link.nonce), who) {
        // A second click on a link that did its job is not an error; any other reuse is a replay.
        (_, Some(who)) => Standing::Already(Some(who)),
        (true, None) => Standing::Used,
        (false, None) => Standing::Ready,
    }
}

fn refused(status: StatusCode, title: &str, reason: &str, alert: Option<&str>) -> Html {
    html(status, pages::refused(title, reason, alert))
}

/// The alert a link names, read from its parameters: verified for an expired link, only claimed
/// for a tampered or incomplete one (and said so).
fn claimed_alert(params: &HashMap<String, String>, error: &LinkError) -> Option<String> {
    if let LinkError::Expired(link) = error {
        return Some(pages::alert_title(&link.corp, &link.check));
    }
    let corp = params.get("corp")?;
    let check: ConditionKey = params.get("check")?.parse().ok()?;
    Some(format!(
        "{} (as the link claims)",
        pages::alert_title(corp, &check)
    ))
}

fn link_refused(error: &LinkError, params: &HashMap<String, String>) -> Html {
    tracing::info!(%error, "acknowledgement link refused");
    let reason = match error {
        LinkError::Expired(_) => {
            "This acknowledgement link has expired. Use the link in a newer message, or `sigsci-kit health ack`."
        }
        LinkError::BadSignature => {
            "This acknowledgement link is not valid: it was changed or was not issued by this service."
        }
        LinkError::Malformed(_) => {
            "This acknowledgement link is incomplete. Copy the whole link from the message."
        }
    };
    refused(
        StatusCode::FORBIDDEN,
        "Link refused",
        reason,
        claimed_alert(params, error).as_deref(),
    )
}

fn unavailable(error: &dyn std::fmt::Display) -> Html {
    tracing::error!(%error, "acknowledgement state unavailable");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again shortly",
        "The alert state cannot be read or written right now.",
        None,
    )
}

fn used(link: &AckLink) -> Html {
    refused(
        StatusCode::FORBIDDEN,
        "Link already used",
        "This acknowledgement link has already been used and the acknowledgement it made is no longer in force.",
        Some(&pages::alert_title(&link.corp, &link.check)),
    )
}

/// What the form asked for besides the name.
struct Choice {
    until: Option<DateTime<Utc>>,
    whole_site: bool,
}

fn choice(params: &HashMap<String, String>, now: DateTime<Utc>) -> Result<Choice, String> {
    let until = match params.get("for").map(String::as_str) {
        None | Some("recovery") => None,
        Some("1h") => Some(now + TimeDelta::hours(1)),
        Some("4h") => Some(now + TimeDelta::hours(4)),
        Some(other) => return Err(format!("{other:?} is not a duration this page offers")),
    };
    let whole_site = match params.get("scope").map(String::as_str) {
        None | Some("check") => false,
        Some("site") => true,
        Some(other) => return Err(format!("{other:?} is not a scope this page offers")),
    };
    Ok(Choice { until, whole_site })
}

impl AckService {
    /// The link and the key that signed it. A signature that matches no known key makes the key
    /// be read again once: it may have been rotated since this process read it.
    async fn verify(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<(AckLink, SecretString), Html> {
        let now = self.clock.now();
        let mut verified = self.verify_with_known_keys(params, now).await;
        if matches!(verified, Err(LinkError::BadSignature)) {
            match self.key.reread(now).await {
                Ok(true) => verified = self.verify_with_known_keys(params, now).await,
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "the link signing key could not be read again")
                }
            }
        }
        let (link, key) = verified.map_err(|e| link_refused(&e, params))?;
        if link.corp != self.corp {
            return Err(link_refused(&LinkError::BadSignature, params));
        }
        Ok((link, key))
    }

    async fn verify_with_known_keys(
        &self,
        params: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(AckLink, SecretString), LinkError> {
        let mut verified = Err(LinkError::BadSignature);
        for key in self.key.candidates().await {
            verified = AckLink::verify(params, &key, now).map(|link| (link, key));
            if !matches!(verified, Err(LinkError::BadSignature)) {
                break;
            }
        }
        verified
    }

    /// What the pages show about the link's alert, from the state as stored now.
    fn view<'a>(&self, state: &'a State, link: &'a AckLink) -> AlertView<'a> {
        let condition = state.conditions.get(&link.check);
        let severity = condition.map_or(Severity::Error, |c| c.severity);
        let silences = silenced_channels(&self.rules, &link.check, severity, &link.channels);
        let incident_channels = silences
            .iter()
            .filter(|name| {
                self.rules
                    .channel(name)
                    .is_some_and(|channel| channel.kind.has_incidents())
            })
            .cloned()
            .collect();
        AlertView {
            link,
            condition,
            silences,
            incident_channels,
            site_checks: firing_checks(state, &link.check.site),
            links: self.rules.links.for_check(&link.corp, &link.check),
        }
    }

    async fn load(&self) -> Result<State, Html> {
        self.store
            .load(&self.corp)
            .await
            .map(|(state, _)| state)
            .map_err(|error| unavailable(&error))
    }

    /// Passes the change on to incidents now; what could not be is retried by the evaluator.
    async fn update_incidents(&self) -> Vec<IncidentOutcome> {
        match self
            .incidents
            .send_owed(&self.store, &self.corp, &self.rules, self.clock.now())
            .await
        {
            Ok(outcomes) => outcomes,
            Err(error) => {
                tracing::warn!(%error, "incidents not updated; the next evaluation retries");
                Vec::new()
            }
        }
    }

    fn secure_cookie(&self) -> bool {
        self.rules
            .ack
            .base_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// Acknowledges in `name` (the form's) or, without one, as the one-click link itself.
    async fn apply(
        &self,
        link: &AckLink,
        key: &SecretString,
        name: Option<&str>,
        choice: Choice,
    ) -> Html {
        let now = self.clock.now();
        let (by, how) = match name {
            Some(name) => (format!("{name} (link from {})", link.via), AckMethod::Link),
            None => (
                format!("one-click link from {}", link.via),
                AckMethod::LinkOneClick,
            ),
        };
        let request = AckRequest {
            check: link.check.clone(),
            channels: link.channels.clone(),
            until: choice.until,
            by: by.clone(),
            how,
            via: Some(link.via.clone()),
            episode: Some(link.episode.clone()),
        };
        let result = self
            .store
            .update(&self.corp, |state| {
                match standing(state, link, now) {
                    Standing::Ready => {}
                    Standing::Already(_) => return Ok(Applied::Already),
                    Standing::Used => return Ok(Applied::Used),
                    Standing::Gone => return Ok(Applied::Gone),
                }
                let outcomes =
                    acknowledge_with_site(state, &self.rules, &request, choice.whole_site, now)?;
                let checks: Vec<ConditionKey> = outcomes
                    .iter()
                    .filter(|(_, outcome)| matches!(outcome, AckOutcome::Acknowledged { .. }))
                    .map(|(check, _)| check.clone())
                    .collect();
                if checks.is_empty() {
                    return Ok(Applied::Already);
                }
                state.used_links.insert(
                    link.nonce.clone(),
                    UsedLink {
                        check: link.check.clone(),
                        episode: link.episode.clone(),
                        used_at: now,
                        expires_at: link.expires,
                        also: checks
                            .iter()
                            .filter(|check| **check != link.check)
                            .cloned()
                            .collect(),
                    },
                );
                Ok(Applied::Done(checks))
            })
            .await;
        let applied = match result {
            Ok(applied) => applied,
            Err(UpdateError::Change(
                AckError::EpisodeOver { .. }
                | AckError::NotFiring { .. }
                | AckError::UnknownCheck { .. },
            )) => Applied::Gone,
            Err(UpdateError::Change(error)) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "Cannot acknowledge",
                    &error.to_string(),
                    Some(&pages::alert_title(&link.corp, &link.check)),
                );
            }
            Err(UpdateError::Store(error)) => return unavailable(&error),
        };
        let incidents = match applied {
            Applied::Done(_) => self.update_incidents().await,
            _ => Vec::new(),
        };
        // Show the page against what is stored now.
        let state = match self.load().await {
            Ok(state) => state,
            Err(page) => return page,
        };
        let view = self.view(&state, link);
        match applied {
            Applied::Done(checks) => {
                tracing::info!(check = %link.check, checks = checks.len(), by = %by, via = %link.via, "acknowledged via link");
                let page = pages::acknowledged(
                    &view,
                    &checks,
                    &by,
                    name.unwrap_or_default(),
                    choice.until,
                    &incidents,
                    &link.signed_params(key),
                );
                html(StatusCode::OK, page)
            }
            Applied::Already => {
                let who = match standing(&state, link, now) {
                    Standing::Already(who) => who,
                    _ => None,
                };
                let page = pages::already_acknowledged(
                    &view,
                    who.as_ref().map(|(by, at)| (by.as_str(), *at)),
                );
                html(StatusCode::OK, page)
            }
            Applied::Used => used(link),
            Applied::Gone => html(StatusCode::GONE, pages::gone(&view)),
        }
    }

    /// Withdraws what this link acknowledged (its check and any others of the site acknowledged
    /// with it); the link then works again.
    async fn undo(&self, link: &AckLink, key: &SecretString, name: String) -> Html {
        let now = self.clock.now();
        let by = if name.is_empty() {
            format!("a link from {}", link.via)
        } else {
            format!("{name} (link from {})", link.via)
        };
        let result = self
            .store
            .update(&self.corp, |state| {
                let Some(used) = state.used_links.get(&link.nonce).cloned() else {
                    return Ok(false);
                };
                let mut withdrew = false;
                for check in std::iter::once(&used.check).chain(&used.also) {
                    match unacknowledge(
                        state,
                        &self.rules,
                        check,
                        &link.channels,
                        &by,
                        AckMethod::Link,
                        now,
                    ) {
                        Ok(()) => withdrew = true,
                        // Already withdrawn, or cleared and forgotten: nothing to undo there.
                        Err(AckError::NotAcknowledged { .. } | AckError::UnknownCheck { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
                state.used_links.remove(&link.nonce);
                Ok(withdrew)
            })
            .await;
        match result {
            Ok(true) => {}
            Ok(false) => {
                return refused(
                    StatusCode::CONFLICT,
                    "Nothing to undo",
                    "This link has no acknowledgement in force to withdraw.",
                    Some(&pages::alert_title(&link.corp, &link.check)),
                );
            }
            Err(UpdateError::Change(error)) => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "Cannot undo",
                    &error.to_string(),
                    Some(&pages::alert_title(&link.corp, &link.check)),
                );
            }
            Err(UpdateError::Store(error)) => return unavailable(&error),
        }
        tracing::info!(check = %link.check, by = %by, "acknowledgement withdrawn via link");
        let incidents = self.update_incidents().await;
        let state = match self.load().await {
            Ok(state) => state,
            Err(page) => return page,
        };
        let view = self.view(&state, link);
        html(
            StatusCode::OK,
            pages::withdrawn(&view, &incidents, &link.signed_params(key), &name),
        )
    }
}

enum Applied {
    Done(Vec<ConditionKey>),
    Already,
    Used,
    Gone,
}

async fn open_link(
    AxumState(service): AxumState<AckService>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Html {
    let (link, key) = match service.verify(&params).await {
        Ok(verified) => verified,
        Err(page) => return page,
    };
    if link.one_click {
        let choice = Choice {
            until: None,
            whole_site: false,
        };
        return service.apply(&link, &key, None, choice).await;
    }
    let state = match service.load().await {
        Ok(state) => state,
        Err(page) => return page,
    };
    let view = service.view(&state, &link);
    match standing(&state, &link, service.clock.now()) {
        Standing::Ready => {
            let page = pages::confirm(
                &view,
                &link.signed_params(&key),
                &remembered_name(&headers),
                None,
            );
            html(StatusCode::OK, page)
        }
        Standing::Already(who) => html(
            StatusCode::OK,
            pages::already_acknowledged(&view, who.as_ref().map(|(by, at)| (by.as_str(), *at))),
        ),
        Standing::Used => used(&link),
        Standing::Gone => html(StatusCode::GONE, pages::gone(&view)),
    }
}

async fn submit_form(
    AxumState(service): AxumState<AckService>,
    Form(params): Form<HashMap<String, String>>,
) -> Html {
    let (link, key) = match service.verify(&params).await {
        Ok(verified) => verified,
        Err(page) => return page,
    };
    let name = params
        .get("by")
        .map(|name| clean_name(name))
        .unwrap_or_default();
    if params.get("action").map(String::as_str) == Some("undo") {
        return service.undo(&link, &key, name).await;
    }
    let choice = match choice(&params, service.clock.now()) {
        Ok(choice) => choice,
        Err(problem) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "Cannot acknowledge",
                &problem,
                Some(&pages::alert_title(&link.corp, &link.check)),
            );
        }
    };
    if name.is_empty() {
        // Whoever acknowledges is named: on-call people need to know whom to ask.
        let state = match service.load().await {
            Ok(state) => state,
            Err(page) => return page,
        };
        let view = service.view(&state, &link);
        let page = pages::confirm(
            &view,
            &link.signed_params(&key),
            "",
            Some(
                "Enter your name: it is recorded with the acknowledgement and shown to the others.",
            ),
        );
        return html(StatusCode::UNPROCESSABLE_ENTITY, page);
    }
    let mut page = service.apply(&link, &key, Some(&name), choice).await;
    if page.status == StatusCode::OK {
        page.remember = Some((name, service.secure_cookie()));
    }
    page
}

/// Serves the acknowledgement pages on `listener` until the process ends (`sigsci-kit health serve`, tests).
pub async fn serve(listener: tokio::net::TcpListener, service: AckService) -> std::io::Result<()> {
    axum::serve(listener, router(service)).await
}
