//! Feed export tests (one binary, one module per area).

mod common;

mod export;
mod lambda;
mod ocsf;
