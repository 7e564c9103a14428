//! Operator surfaces: the admin HTTP endpoint and the `dooz` subcommands.

pub mod cli;
pub mod health;
pub mod http;
