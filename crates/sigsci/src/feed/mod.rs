//! Request feed paging: a stream of pages fetched ahead by a background task.

mod pager;
mod record;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use record::FeedRecord;

use crate::client::Client;
use crate::error::{Error, Result};
use pager::Pager;

/// Largest page the API serves.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Pages waiting for the consumer; together with the page in flight this bounds memory.
const PREFETCH_CAPACITY: usize = 1;
/// Page bodies a window holds at once: the consumer's latest page and one fetched ahead. Without
/// it, a window whose consumer was idle (its start, or a short catch-up) fetched a third page
/// ahead, and a long export met that moment on both windows at once: its peak memory grew with
/// the hour (6 pages in flight over a 2M-record hour, 4 to 5 over 100k).
const PAGES_PER_WINDOW: usize = 2;

/// A feed window: epoch seconds `[from, until)`, minute aligned, optional signal filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    pub from: i64,
    pub until: i64,
    pub tags: Vec<String>,
    /// Page size, 1..=1000.
    pub limit: u32,
}

impl FeedQuery {
    /// All requests in `[from, until)` in pages of the maximum size.
    pub fn new(from: i64, until: i64) -> FeedQuery {
        FeedQuery {
            from,
            until,
            tags: Vec::new(),
            limit: MAX_PAGE_SIZE,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(Error::config(format!(
                "feed limit {} must be between 1 and {MAX_PAGE_SIZE}",
                self.limit
            )));
        }
        if self.from >= self.until {
            return Err(Error::config(format!(
                "feed window from={} must be before until={}",
                self.from, self.until
            )));
        }
        Ok(())
    }
}

/// One page of the feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub records: Vec<FeedRecord>,
    /// HTTP attempts spent on this page (≥ 1; more after retries or a 414 fallback).
    pub attempts: u32,
}

/// The pages of one feed window, in order. A background task fetches page n+1 while the
/// caller works on page n. The stream ends after the last page or after the first error;
/// [`Error::CursorExpired`] means the window must be restarted. Dropping it stops the task.
pub struct FeedPages {
    receiver: mpsc::Receiver<Result<Delivery>>,
    task: Option<JoinHandle<()>>,
    /// The budget place of the page yielded last, given back when the next one is asked for
    /// (the consumer is then done with it, or keeps it at its own cost; never a deadlock).
    latest: Option<OwnedSemaphorePermit>,
}

/// A page and its place in the window's budget of pages in memory.
struct Delivery {
    page: FeedPage,
    place: OwnedSemaphorePermit,
}

impl Stream for FeedPages {
    type Item = Result<FeedPage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Asking for the next page means being done with the last one: its place can serve
        // the page after this one, fetched while this one is parsed.
        self.latest = None;
        let delivered = std::task::ready!(self.receiver.poll_recv(cx));
        Poll::Ready(delivered.map(|delivery| {
            delivery.map(|Delivery { page, place }| {
                self.latest = Some(place);
                page
            })
        }))
    }
}

impl Drop for FeedPages {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl FeedPages {
    /// A stream that yields `error` once and ends.
    fn failed(error: Error) -> FeedPages {
        let (sender, receiver) = mpsc::channel(1);
        // A fresh channel of capacity 1 always has room for one item.
        let _ = sender.try_send(Err(error));
        FeedPages {
            receiver,
            task: None,
            latest: None,
        }
    }
}

impl Client {
    /// Streams the feed of `site` for `query`; needs a tokio runtime.
    pub fn feed(&self, site: &str, query: FeedQuery) -> FeedPages {
        if let Err(e) = query.validate() {
            return FeedPages::failed(e);
        }
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => return FeedPages::failed(Error::config("feed paging needs a tokio runtime")),
        };
        let (sender, receiver) = mpsc::channel(PREFETCH_CAPACITY);
        let span =
            tracing::debug_span!("sigsci_feed", site, from = query.from, until = query.until);
        let pager = Pager::new(self.clone(), site, query, PAGES_PER_WINDOW);
        let task = runtime.spawn(pager.run(sender).instrument(span));
        FeedPages {
            receiver,
            task: Some(task),
            latest: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_queries_are_rejected_with_the_reason() {
        assert!(FeedQuery::new(60, 120).validate().is_ok());
        let zero = FeedQuery {
            limit: 0,
            ..FeedQuery::new(60, 120)
        };
        let err = zero.validate().expect_err("limit 0");
        assert!(err.to_string().contains("limit 0"), "{err}");
        let err = FeedQuery::new(120, 60).validate().expect_err("backwards");
        assert!(err.to_string().contains("before"), "{err}");
    }

    #[tokio::test]
    async fn invalid_query_comes_out_of_the_stream() {
        use futures::StreamExt;
        let client = Client::builder(
            "http://127.0.0.1:9",
            "corp",
            crate::Credentials::token("me@example.com", "t"),
        )
        .build()
        .expect("client");
        let mut pages = client.feed("site", FeedQuery::new(120, 60));
        assert!(matches!(
            pages.next().await,
            Some(Err(Error::Config { .. }))
        ));
        assert!(pages.next().await.is_none());
    }
}
