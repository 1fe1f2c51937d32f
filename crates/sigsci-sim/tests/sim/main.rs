//! Simulator tests (one binary, one module per area).

mod common;

mod api;
mod faults;
mod feed;
mod lists;
