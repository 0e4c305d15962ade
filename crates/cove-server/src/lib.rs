//! The HTTP control plane: `app(state) -> Router`, the services behind it and
//! the background jobs. Handlers parse a request into one typed action and
//! call one service method; services hold the logic and reach the world only
//! through the `Store` and `Runtime` traits held in `AppState`.

pub mod activity;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod extract;
mod handlers;
pub mod jobs;
pub mod metrics;
pub mod mounts;
mod names;
pub mod openapi;
mod routes;
pub mod services;
pub mod state;
mod stream;

pub use routes::app;
pub use state::{AppConfig, AppState};
