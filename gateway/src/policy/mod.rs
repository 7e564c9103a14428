//! Access policies: IAM JSON policy documents, their evaluation, the
//! built-in named policies and the S3 action each operation needs.
//!
//! Principals are named by ARN: `arn:dooz:iam::TENANT:user/NAME` is one
//! user (TENANT and NAME are the tenant's and the user's names),
//! `arn:dooz:iam::TENANT:root` (or the bare tenant name) is every user of
//! the tenant, and `*` is everyone, anonymous callers included. Resources
//! use S3's form: `arn:aws:s3:::bucket` and `arn:aws:s3:::bucket/key`.

pub mod actions;
pub mod builtin;
pub mod condition;
pub mod config;
pub mod context;
pub mod document;
pub mod eval;
mod wildcard;

#[cfg(test)]
mod tests;

pub use actions::{Level, action_for};
pub use builtin::{builtin, is_builtin, valid_policy_name};
pub use config::AccessConfig;
pub use context::Context;
pub use document::{
    Effect, Kind, MalformedPolicy, PolicyDocument, Statement, resource_arn, tenant_arn, user_arn,
};
pub use eval::{
    BucketPolicy, Caller, Decider, Decision, Named, Request, Source, evaluate, is_public,
};
