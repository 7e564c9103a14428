//! Dooz gateway: S3 front door, object engine, metadata stores and pack backends.

pub mod meta;
pub mod metrics;
pub mod store;
