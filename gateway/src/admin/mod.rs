//! Operator surfaces: the admin HTTP endpoint and the `dooz` subcommands.

pub mod buckets;
pub mod cli;
pub mod http;
