//! Packs of an upload that certainly will not be committed (its body failed,
//! its checksum did not match, or its commit was refused inside the
//! transaction) are deleted at once rather than left for the orphan sweep.
//! Only the caller knows that nothing references them: a commit whose
//! outcome is unknown (the connection dropped during COMMIT) never gets here.

use super::Engine;
use crate::meta::PackKey;
use crate::store::PackStore;

impl Engine {
    /// Best effort: what fails here the orphan sweep removes later.
    pub(crate) async fn discard_packs(&self, store: &PackStore, packs: &[PackKey]) {
        for id in packs {
            match store.delete_pack(id).await {
                Ok(()) => {
                    tracing::debug!(pack = %hex::encode(id), "deleted a pack of a failed upload")
                }
                Err(e) => tracing::warn!(
                    pack = %hex::encode(id), error = %e,
                    "could not delete a pack of a failed upload; the orphan sweep will"
                ),
            }
        }
    }
}
