//! The background producer behind [`super::FeedPages`].
//!
//! Per page: as soon as a body arrives, the next request is started from the `next.uri` at
//! the front of the body (in its own task), and only then is the body parsed and handed to the
//! consumer. Parsing thus overlaps the network and the server's work on the next page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use reqwest::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::record::{ParsedPage, Peek, parse_page, peek_next_uri};
use super::{Delivery, FeedPage, FeedQuery};
use crate::client::{Call, Client, Payload, Reply};
use crate::error::{Error, RequestKind, Result};

/// Longer follow-up URLs are sent as a POST with the cursor in a form body (servers and proxies
/// commonly reject URLs beyond a few KB with 414).
const MAX_GET_URL_LEN: usize = 2000;
const FEED_TEMPLATE: &str = "/corps/{corp}/sites/{site}/feed/requests";

#[derive(Clone)]
pub(super) struct Pager {
    client: Client,
    site: Arc<str>,
    query: Arc<FeedQuery>,
    /// Set after a 414: later cursors go straight to POST.
    post_cursors: Arc<AtomicBool>,
    /// Places for the window's page bodies: a request is sent only with one.
    budget: Arc<Semaphore>,
}

/// Where a page request starts.
enum Position {
    First,
    /// `next.uri` of the previous page: an absolute path holding the cursor.
    Next(String),
}

/// A page body as received, not parsed yet.
struct Fetched {
    position: Position,
    reply: Reply,
    attempts: u32,
    place: OwnedSemaphorePermit,
}

/// A request started ahead of time; aborted if dropped unused (stale cursor, page refetched,
/// stream dropped) so it never holds a concurrency permit for nothing.
struct Ahead {
    next_uri: String,
    task: JoinHandle<Result<Fetched>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Ahead {
    async fn join(mut self) -> Result<Fetched> {
        (&mut self.task)
            .await
            .map_err(|e| Error::config(format!("feed prefetch task failed: {e}")))?
    }
}

impl Pager {
    pub(super) fn new(client: Client, site: &str, query: FeedQuery, pages: usize) -> Pager {
        Pager {
            client,
            site: Arc::from(site),
            query: Arc::new(query),
            post_cursors: Arc::new(AtomicBool::new(false)),
            budget: Arc::new(Semaphore::new(pages)),
        }
    }

    /// Produces pages into `sender` until the window is done, an error occurs, or the
    /// consumer goes away. Every error is delivered and ends the stream.
    pub(super) async fn run(self, sender: mpsc::Sender<Result<Delivery>>) {
        if let Err(error) = self.produce(&sender).await {
            let _ = sender.send(Err(error)).await;
        }
    }

    async fn produce(&self, sender: &mpsc::Sender<Result<Delivery>>) -> Result<()> {
        let mut pending = self.fetch(Position::First).await;
        let mut reserved = None;
        loop {
            let fetched = pending?;
            // Room for this page first, then the next request: a consumer that is behind never
            // has a page waiting here and another one fetched ahead.
            let (slot, behind) = match reserved.take() {
                Some(reserved) => reserved,
                None => match consumer_slot(sender).await {
                    Some(reserved) => reserved,
                    None => return Ok(()), // The consumer is gone.
                },
            };
            // An idle consumer gets the next page fetched while this one is parsed; a busy one
            // only once it took this page (it has the one before to work on meanwhile), so no
            // page waits in the channel while the next is held here.
            let mut ahead = match peek_next_uri(&fetched.reply.body) {
                Peek::Next(uri) if !behind => Some(self.start_ahead(uri)),
                _ => None,
            };
            if ahead.is_some() {
                // A task spawned from a worker waits in that worker's LIFO slot, which no other
                // worker steals, until this task yields: without this the next request would only
                // be sent after the parse below, and nothing would overlap.
                tokio::task::yield_now().await;
            }
            let place = fetched.place;
            let ((records, next), attempts) = match parse_page(fetched.reply) {
                Ok(parsed) => (parsed, fetched.attempts),
                Err(error) => {
                    ahead = None;
                    self.refetch(fetched.position, &error, fetched.attempts)
                        .await?
                }
            };
            slot.send(Ok(Delivery {
                page: FeedPage { records, attempts },
                place,
            }));
            let Some(next) = next else {
                return Ok(());
            };
            pending = match ahead {
                Some(ahead) if ahead.next_uri == next => ahead.join().await,
                stale => {
                    drop(stale);
                    if behind {
                        reserved = consumer_slot(sender).await;
                        if reserved.is_none() {
                            return Ok(());
                        }
                    }
                    self.fetch(Position::Next(next)).await
                }
            };
        }
    }

    fn start_ahead(&self, next_uri: &str) -> Ahead {
        let pager = self.clone();
        let position = Position::Next(next_uri.to_string());
        let task = tokio::spawn(
            async move { pager.fetch(position).await }.instrument(tracing::Span::current()),
        );
        Ahead {
            next_uri: next_uri.to_string(),
            task,
        }
    }

    /// One page body, with transient failures retried on the same cursor.
    async fn fetch(&self, position: Position) -> Result<Fetched> {
        let place = Arc::clone(&self.budget)
            .acquire_owned()
            .await
            .map_err(|_| Error::config("feed page budget closed"))?;
        let attempts = AtomicU32::new(0);
        let reply = self.request(&position, Ok, &attempts).await?;
        Ok(Fetched {
            position,
            reply,
            attempts: attempts.load(Ordering::Relaxed),
            place,
        })
    }

    /// A page that arrived garbled (e.g. cut short) is requested again with the same cursor,
    /// now parsing inside the retry loop.
    async fn refetch(
        &self,
        position: Position,
        error: &Error,
        spent: u32,
    ) -> Result<(ParsedPage, u32)> {
        tracing::debug!(error = %error, "feed page unusable, fetching it again");
        let attempts = AtomicU32::new(spent);
        let parsed = self.request(&position, parse_page, &attempts).await?;
        Ok((parsed, attempts.load(Ordering::Relaxed)))
    }

    /// Sends one page request: GET for the first page and short cursors; POST with the cursor
    /// in a form body when the URL would be long or the server answered 414.
    async fn request<T>(
        &self,
        position: &Position,
        decode: impl Fn(Reply) -> Result<T>,
        attempts: &AtomicU32,
    ) -> Result<T> {
        let uri = match position {
            Position::First => {
                let call = self.first_call()?;
                return self.client.send_counted(&call, decode, attempts).await;
            }
            Position::Next(uri) => uri,
        };
        if !uri.starts_with('/') {
            return Err(Error::BadResponse {
                status: 200,
                snippet: "feed next.uri is not an absolute path".into(),
            });
        }
        let get_url = with_limit(
            &format!("{}{uri}", self.client.base_str()),
            self.query.limit,
        );
        if !self.post_cursors.load(Ordering::Relaxed) && get_url.len() <= MAX_GET_URL_LEN {
            let call = self.feed_call(Method::GET, get_url, RequestKind::FeedCursor);
            match self.client.send_counted(&call, &decode, attempts).await {
                Err(Error::UriTooLong) => {
                    tracing::debug!("feed cursor URL rejected with 414, sending cursors by POST");
                    self.post_cursors.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let call = self.cursor_post(uri)?;
        self.client.send_counted(&call, decode, attempts).await
    }

    fn first_call(&self) -> Result<Call> {
        let mut url = self
            .client
            .corp_url(&["sites", &self.site, "feed", "requests"])?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("from", &self.query.from.to_string())
                .append_pair("until", &self.query.until.to_string())
                .append_pair("limit", &self.query.limit.to_string());
            if !self.query.tags.is_empty() {
                query.append_pair("tags", &self.query.tags.join(","));
            }
        }
        Ok(self.feed_call(Method::GET, url.into(), RequestKind::Plain))
    }

    /// `POST <path>?limit=N` with form body `next=<cursor>`, as the official Splunk add-on does.
    fn cursor_post(&self, uri: &str) -> Result<Call> {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let cursor = url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "next")
            .map(|(_, value)| value)
            .ok_or_else(|| Error::BadResponse {
                status: 200,
                snippet: "feed next.uri carries no next= cursor".into(),
            })?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &cursor)
            .finish();
        let url = format!(
            "{}{path}?limit={}",
            self.client.base_str(),
            self.query.limit
        );
        let mut call = self.feed_call(Method::POST, url, RequestKind::FeedCursor);
        call.payload = Payload::Form(form);
        Ok(call)
    }

    fn feed_call(&self, method: Method, url: String, kind: RequestKind) -> Call {
        Call {
            method,
            template: FEED_TEMPLATE,
            url,
            payload: Payload::Empty,
            kind,
            feed_site: Some(self.site.to_string()),
            // Reading a page changes nothing, also when the cursor travels in a POST.
            idempotent: true,
        }
    }
}

/// A slot for the consumer's next page, and whether the consumer was behind (the slot had to be
/// waited for); `None` once the consumer is gone.
async fn consumer_slot(
    sender: &mpsc::Sender<Result<Delivery>>,
) -> Option<(mpsc::Permit<'_, Result<Delivery>>, bool)> {
    match sender.try_reserve() {
        Ok(slot) => Some((slot, false)),
        Err(mpsc::error::TrySendError::Full(())) => sender.reserve().await.ok().map(|s| (s, true)),
        Err(mpsc::error::TrySendError::Closed(())) => None,
    }
}

/// Adds `limit=N` to a follow-up URL unless the API already put one in.
fn with_limit(url: &str, limit: u32) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|pair| pair.starts_with("limit=")) {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&limit={limit}")
    } else {
        format!("{url}?limit={limit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_added_once() {
        assert_eq!(
            with_limit("http://h/p?next=a", 5),
            "http://h/p?next=a&limit=5"
        );
        assert_eq!(
            with_limit("http://h/p?next=a&limit=9", 5),
            "http://h/p?next=a&limit=9"
        );
        assert_eq!(with_limit("http://h/p", 5), "http://h/p?limit=5");
    }
}
