//! Client tests against the in-process simulator (one binary, one module per area).

mod common;

mod auth;
mod errors;
mod faults;
mod feed;
mod resources;
mod retry_after;
