//! The request fuzzer at length (scripts/soak): tens of thousands of random
//! requests per store. DOOZ_FUZZ_CASES overrides the count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::gateway::Meta;

#[test]
fn random_requests_on_sqlite_at_length() {
    support::fuzz::run(20_000, Meta::Sqlite);
}

#[test]
fn random_requests_on_postgres_at_length() {
    support::fuzz::run(5_000, Meta::Postgres);
}
