//! The request fuzzer (tests/support/fuzz.rs), a bounded number of cases on
//! each metadata store. `soak_fuzz` runs many more; DOOZ_FUZZ_CASES
//! overrides the count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::gateway::Meta;

#[test]
fn random_requests_on_sqlite() {
    support::fuzz::run(300, Meta::Sqlite);
}

#[test]
fn random_requests_on_postgres() {
    support::fuzz::run(120, Meta::Postgres);
}
