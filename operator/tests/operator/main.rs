//! Operator tests against the real kube-apiserver and the simulator (one binary, one module per area).

mod common;

mod admission;
mod config_plan;
mod conflict;
mod lists;
mod observe;
mod reconcile;
mod recovery;
mod sites;
