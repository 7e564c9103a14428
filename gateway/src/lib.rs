//! Dooz gateway: S3 front door, object engine, metadata stores and pack backends.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod budget;
pub mod config;
pub mod engine;
pub mod fsck;
pub mod jobs;
pub mod keys;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod policy;
pub mod s3;
pub mod server;
pub mod store;
pub mod tenancy;
pub mod throttle;
pub mod tls;
