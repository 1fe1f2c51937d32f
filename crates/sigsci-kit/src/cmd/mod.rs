//! One module per subcommand; each is a thin shell over a library.

pub mod agents;
pub mod config;
pub mod demo;
pub mod feed;
pub mod health;
pub mod lists;
pub mod sim;
