//! The acknowledgement endpoint behind the links in every message (Lambda function URL or
//! `sigsci-kit health serve`). `GET /ack` verifies the link and shows a confirmation page (or
//! acknowledges at once for `one_click=true` links); `POST /ack` acknowledges. Tampered, expired and
//! replayed links get 403 and change nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::ack::{AckError, AckOutcome, AckRequest, acknowledge};
use crate::clock::Clock;
use crate::links::{ACK_PATH, AckLink, LinkError};
use crate::pages;
use crate::rules::Rules;
use crate::secrets::SigningKey;
use crate::state::{AckMethod, Condition, State, UsedLink};
use crate::store::{StateStore, UpdateError};

/// Longest name kept from the confirmation form.
const MAX_NAME_CHARS: usize = 100;

#[derive(Clone)]
pub struct AckService {
    pub corp: String,
    pub store: StateStore,
    pub rules: Arc<Rules>,
    pub key: SigningKey,
    pub clock: Arc<dyn Clock>,
}

pub fn router(service: AckService) -> Router {
    Router::new()
        .route(ACK_PATH, get(open_link).post(confirm_link))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

struct Html(StatusCode, String);

impl IntoResponse for Html {
    fn into_response(self) -> Response {
        let mut response = (self.0, self.1).into_response();
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
        response
    }
}

/// Where a verified link stands against the current state.
enum Standing<'a> {
    Ready(Option<&'a Condition>),
    Already(
        Option<&'a Condition>,
        Option<(String, chrono::DateTime<chrono::Utc>)>,
    ),
    Used,
    Gone,
}

fn standing<'a>(
    state: &'a State,
    link: &AckLink,
    now: chrono::DateTime<chrono::Utc>,
) -> Standing<'a> {
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
    if state.used_links.contains_key(&link.nonce) {
        // A second click on a link that did its job is not an error; any other reuse is a replay.
        return match who {
            Some(who) => Standing::Already(condition, Some(who)),
            None => Standing::Used,
        };
    }
    match (condition, who) {
        (None, _) => Standing::Gone,
        (Some(condition), Some(who)) => Standing::Already(Some(condition), Some(who)),
        (Some(condition), None) => Standing::Ready(Some(condition)),
    }
}

fn refused(status: StatusCode, title: &str, reason: &str) -> Html {
    Html(status, pages::refused(title, reason))
}

fn link_refused(error: &LinkError) -> Html {
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
    refused(StatusCode::FORBIDDEN, "Link refused", reason)
}

fn unavailable(error: &dyn std::fmt::Display) -> Html {
    tracing::error!(%error, "acknowledgement state unavailable");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again shortly",
        "The alert state cannot be read or written right now.",
    )
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
        let (link, key) = verified.map_err(|e| link_refused(&e))?;
        if link.corp != self.corp {
            return Err(link_refused(&LinkError::BadSignature));
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

    async fn apply(&self, link: &AckLink, by: String, how: AckMethod) -> Html {
        let now = self.clock.now();
        let request = AckRequest {
            check: link.check.clone(),
            channels: link.channels.clone(),
            until: None,
            by: by.clone(),
            how,
            via: Some(link.via.clone()),
            episode: Some(link.episode.clone()),
        };
        let result = self
            .store
            .update(&self.corp, |state| {
                match standing(state, link, now) {
                    Standing::Ready(_) => {}
                    Standing::Already(..) => return Ok(Applied::Already),
                    Standing::Used => return Ok(Applied::Used),
                    Standing::Gone => return Ok(Applied::Gone),
                }
                let outcome = acknowledge(state, &self.rules, &request, now)?;
                state.used_links.insert(
                    link.nonce.clone(),
                    UsedLink {
                        check: link.check.clone(),
                        episode: link.episode.clone(),
                        used_at: now,
                        expires_at: link.expires,
                    },
                );
                Ok(match outcome {
                    AckOutcome::Acknowledged { .. } => Applied::Done,
                    AckOutcome::AlreadyAcknowledged => Applied::Already,
                })
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
                );
            }
            Err(UpdateError::Store(error)) => return unavailable(&error),
        };
        // Show the page against what is stored now.
        let state = match self.store.load(&self.corp).await {
            Ok((state, _)) => state,
            Err(error) => return unavailable(&error),
        };
        let condition = state.conditions.get(&link.check);
        match applied {
            Applied::Done => {
                tracing::info!(check = %link.check, by = %by, via = %link.via, "acknowledged via link");
                Html(StatusCode::OK, pages::acknowledged(link, condition, &by))
            }
            Applied::Already => {
                let who = match standing(&state, link, now) {
                    Standing::Already(_, who) => who,
                    _ => None,
                };
                Html(
                    StatusCode::OK,
                    pages::already_acknowledged(
                        link,
                        condition,
                        who.as_ref().map(|(by, at)| (by.as_str(), *at)),
                    ),
                )
            }
            Applied::Used => used(),
            Applied::Gone => Html(StatusCode::GONE, pages::gone(link)),
        }
    }
}

enum Applied {
    Done,
    Already,
    Used,
    Gone,
}

fn used() -> Html {
    refused(
        StatusCode::FORBIDDEN,
        "Link already used",
        "This acknowledgement link has already been used and the acknowledgement it made is no longer in force.",
    )
}

async fn open_link(
    AxumState(service): AxumState<AckService>,
    Query(params): Query<HashMap<String, String>>,
) -> Html {
    let (link, key) = match service.verify(&params).await {
        Ok(verified) => verified,
        Err(page) => return page,
    };
    if link.one_click {
        return service
            .apply(
                &link,
                format!("one-click link from {}", link.via),
                AckMethod::LinkOneClick,
            )
            .await;
    }
    let state = match service.store.load(&service.corp).await {
        Ok((state, _)) => state,
        Err(error) => return unavailable(&error),
    };
    match standing(&state, &link, service.clock.now()) {
        Standing::Ready(condition) => Html(
            StatusCode::OK,
            pages::confirm(&link, &link.signed_params(&key), condition),
        ),
        Standing::Already(condition, who) => Html(
            StatusCode::OK,
            pages::already_acknowledged(
                &link,
                condition,
                who.as_ref().map(|(by, at)| (by.as_str(), *at)),
            ),
        ),
        Standing::Used => used(),
        Standing::Gone => Html(StatusCode::GONE, pages::gone(&link)),
    }
}

async fn confirm_link(
    AxumState(service): AxumState<AckService>,
    Form(params): Form<HashMap<String, String>>,
) -> Html {
    let (link, _) = match service.verify(&params).await {
        Ok(verified) => verified,
        Err(page) => return page,
    };
    let name: String = params
        .get("by")
        .map(|name| {
            name.chars()
                .filter(|c| !c.is_control())
                .take(MAX_NAME_CHARS)
                .collect::<String>()
        })
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "someone".to_string());
    service
        .apply(
            &link,
            format!("{name} (link from {})", link.via),
            AckMethod::Link,
        )
        .await
}

/// Serves the acknowledgement pages on `listener` until the process ends (`sigsci-kit health serve`, tests).
pub async fn serve(listener: tokio::net::TcpListener, service: AckService) -> std::io::Result<()> {
    axum::serve(listener, router(service)).await
}
