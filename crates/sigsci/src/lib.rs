//! Signal Sciences (Fastly Next-Gen WAF) v0 API client.
//!
//! - [`Client`]: access-token or password (Bearer session) auth, one retried `send` path,
//!   typed [`Error`]s that keep the HTTP status.
//! - Typed models in [`models`]; feed records stay raw JSON ([`FeedRecord`]).
//! - [`Client::feed`] streams feed pages with pre-fetch, honouring the API's feed concurrency
//!   limits (2 per site, 5 per corp) across all clones of a client.

mod auth;
mod buffers;
mod client;
mod error;
mod feed;
mod limiter;
mod lists;
pub mod models;
mod names;
mod resources;
mod retry;

pub use auth::{CredentialSecret, Credentials};
pub use client::{Client, ClientBuilder};
pub use error::{Error, Result, with_causes};
pub use feed::{FeedPage, FeedPages, FeedQuery, FeedRecord, MAX_PAGE_SIZE};
pub use lists::{EntryChanges, ListBody, ListScope, ListUpdate, RuleList};
pub use models::{
    Agent, Alert, AlertBody, Corp, Integration, IntegrationBody, IntegrationUpdate, Site,
};
pub use names::{DEFAULT_API_URL, SHORT_NAME_CHARACTERS, SHORT_NAME_PATTERN, is_short_name};
pub use retry::{RetryPolicy, retry_delay};
