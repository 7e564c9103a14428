//! Operator surfaces: the admin HTTP endpoint and API, and the `dooz`
//! subcommands. `ops.rs` holds what admin actions do; `dooz admin`
//! (`commands.rs`) and the HTTP API (`api.rs`) are two transports for it.

pub mod api;
pub mod auth;
pub mod buckets;
pub mod cli;
pub mod commands;
pub mod health;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod policies;
pub mod remote;
