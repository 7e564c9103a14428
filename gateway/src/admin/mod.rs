//! Operator surfaces: the admin HTTP endpoint and the `dooz` subcommands.

pub mod auth;
pub mod buckets;
pub mod cli;
pub mod health;
pub mod http;
pub mod lifecycle;
