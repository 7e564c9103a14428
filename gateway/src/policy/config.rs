//! `[access]`: gateway-wide access defaults.

use serde::{Deserialize, Serialize};

/// `[access]` in dooz.toml.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Block Public Access for every bucket that has no configuration of
    /// its own (PutPublicAccessBlock): all four settings on, as AWS does
    /// for new buckets. A bucket owner turns it off per bucket with
    /// PutPublicAccessBlock (all four false).
    pub block_public_access: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            block_public_access: true,
        }
    }
}
