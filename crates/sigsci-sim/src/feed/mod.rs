//! The request feed: synthetic traffic, cursors, concurrency limits and the HTTP handlers.

pub(crate) mod concurrency;
pub(crate) mod cursor;
pub(crate) mod generate;
pub(crate) mod handler;
mod record;
pub(crate) mod vocab;
