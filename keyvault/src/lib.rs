//! Dooz key management.
//!
//! - A random 32-byte **tenant master key** ([`Tmk`]) per tenant, stored only
//!   wrapped by the tenant's KEK ([`WrappedTmk`]), with a key commitment that
//!   detects a wrong or substituted key before use.
//! - Subkeys derived with BLAKE3 `derive_key` ([`TenantKeys`]): `K_id`, `K_cdc`,
//!   `K_meta`, `K_secret`, and per encryption epoch `K_enc[e]`, `K_nonce[e]`.
//! - **KEK providers** behind [`KekProvider`]: [`LocalKek`] (root keyring file,
//!   env var or mounted secret) and [`OpenBaoKek`] (OpenBao / Vault transit).
//! - [`KeyVault`]: providers by name and a TTL- and size-bounded cache of
//!   unwrapped tenant keys.
//! - [`rotation`]: batched, resumable re-wrapping after a KEK rotation.
//! - [`secrets`]: XChaCha20-Poly1305 sealing of stored credentials.
//! - [`sse_c`]: customer-key verifiers and per-object key wrapping.
//!
//! Key types zeroize on drop and print as `<redacted>`. Nothing in this crate
//! logs key material or tokens. See `docs/SECURITY.md` for the threat model.

pub mod error;
pub mod keys;
pub mod local;
pub mod openbao;
pub mod provider;
pub mod record;
pub mod retry;
pub mod rotation;
pub mod secrets;
mod serde_util;
pub mod sse_c;
pub mod vault;

pub use error::KeyError;
pub use keys::{SecretKey, TenantKeys, Tmk, next_epoch};
pub use local::LocalKek;
pub use openbao::{OpenBaoConfig, OpenBaoKek, TransitKeyInfo};
pub use provider::KekProvider;
pub use record::{ProviderInfo, WRAPPED_TMK_FORMAT_V1, WrappedTmk};
pub use retry::RetryPolicy;
pub use rotation::{RotationFilter, RotationReport, WrappedKeyStore};
pub use vault::KeyVault;
