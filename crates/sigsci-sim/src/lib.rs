//! Signal Sciences v0 API simulator: the API under `/api/v0` (token or session auth, corps, sites,
//! agents, alerts, integrations, lists, the request feed, timeseries) backed by deterministic
//! synthetic traffic, plus a control API under `/__sim/` for ground truth, faults, fleets and the
//! clock.

mod agents;
mod alerts;
mod auth;
mod calllog;
pub mod child;
mod clock;
mod config;
mod control;
mod corps;
mod cpus;
mod error;
mod extract;
mod faults;
mod feed;
mod integrations;
mod lists;
mod rng;
mod server;
mod state;
mod timeseries;
mod util;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};

pub use agents::{AgentUpdate, FleetUpdate};
pub use calllog::{CallLog, FeedStats};
pub use clock::{ClockStatus, ClockUpdate, WallClock, system_wall_clock};
pub use config::SimConfig;
pub use cpus::{CpuList, Placement};
pub use error::SimError;
pub use faults::{Faults, ResetConnection};
pub use server::{RunningSim, start};
pub use state::{CredentialsUpdate, SimState};

const SITE: &str = "/api/v0/corps/{corp}/sites/{site}";

/// The whole HTTP surface (API + control API) over `state`.
pub fn app(state: SimState) -> Router {
    let authenticated = Router::new()
        .route("/api/v0/corps", get(corps::list_corps))
        .route("/api/v0/corps/{corp}", get(corps::get_corp))
        .route("/api/v0/corps/{corp}/sites", get(corps::list_sites))
        .route(SITE, get(corps::get_site))
        .route(&format!("{SITE}/agents"), get(agents::list))
        .route(&format!("{SITE}/agents/{{name}}"), get(agents::get_one))
        .route(&format!("{SITE}/agents/{{name}}/logs"), get(agents::logs))
        .route(
            &format!("{SITE}/alerts"),
            get(alerts::list).post(alerts::create),
        )
        .route(
            &format!("{SITE}/alerts/{{id}}"),
            get(alerts::get_one)
                .patch(alerts::update)
                .delete(alerts::delete),
        )
        .route(
            &format!("{SITE}/integrations"),
            get(integrations::list_site).post(integrations::create_site),
        )
        .route(
            &format!("{SITE}/integrations/{{id}}"),
            get(integrations::get_site)
                .patch(integrations::update_site)
                .delete(integrations::delete_site),
        )
        .route(
            "/api/v0/corps/{corp}/integrations",
            get(integrations::list_corp).post(integrations::create_corp),
        )
        .route(
            "/api/v0/corps/{corp}/integrations/{id}",
            get(integrations::get_corp)
                .patch(integrations::update_corp)
                .delete(integrations::delete_corp),
        )
        .route(
            &format!("{SITE}/lists"),
            get(lists::list_site).post(lists::create_site),
        )
        .route(
            &format!("{SITE}/lists/{{id}}"),
            get(lists::get_site)
                .patch(lists::update_site)
                .put(lists::replace_site)
                .delete(lists::delete_site),
        )
        .route(
            "/api/v0/corps/{corp}/lists",
            get(lists::list_corp).post(lists::create_corp),
        )
        .route(
            "/api/v0/corps/{corp}/lists/{id}",
            get(lists::get_corp)
                .patch(lists::update_corp)
                .put(lists::replace_corp)
                .delete(lists::delete_corp),
        )
        .route(
            &format!("{SITE}/feed/requests"),
            get(feed::handler::get_page).post(feed::handler::post_page),
        )
        .route(
            &format!("{SITE}/timeseries/requests"),
            get(timeseries::requests),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::require_auth));
    let api = Router::new()
        .route("/api/v0/auth", post(auth::login))
        .route("/api/v0/auth/logout", get(auth::logout))
        .merge(authenticated)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), faults::api_middleware));
    let control = Router::new()
        .route("/__sim/truth", get(control::truth))
        .route(
            "/__sim/faults",
            get(control::get_faults).put(control::put_faults),
        )
        .route("/__sim/sites/{site}/agents", put(control::put_agents))
        .route(
            "/__sim/log",
            get(control::get_log).delete(control::delete_log),
        )
        .route(
            "/__sim/clock",
            get(control::get_clock).put(control::put_clock),
        )
        .route("/__sim/credentials", put(control::put_credentials))
        .method_not_allowed_fallback(error::method_not_allowed);
    api.merge(control)
        .fallback(error::not_found)
        .with_state(state)
}
