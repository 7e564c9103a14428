//! Staging files of a local backend. object_store writes a local pack to
//! `<pack>.dzp#<n>` and then links it into place; a process killed in
//! between leaves the staging file behind, and object_store's own listings
//! hide such files. The orphan sweep finds them here.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{PackStore, StoreError};

/// A leftover staging file of a local backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagingFile {
    pub path: PathBuf,
    pub size: u64,
    /// Last modification, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// object_store's staging name: the final name, `#`, and digits.
fn is_staging_name(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

fn walk(dir: &Path, out: &mut Vec<StagingFile>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() && entry.file_name().to_str().is_some_and(is_staging_name) {
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Finished (renamed away) while we looked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let modified_ms = meta
                .modified()?
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            out.push(StagingFile {
                path: entry.path(),
                size: meta.len(),
                modified_ms,
            });
        }
    }
    Ok(())
}

impl PackStore {
    /// Whether this backend is a local directory (and may hold staging files).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Every staging file under the pack directory of a local backend (none
    /// for other backends). Fails unless the whole directory could be read.
    pub async fn list_staging(&self) -> Result<Vec<StagingFile>, StoreError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(Vec::new());
        };
        let dir = root.join(format!("{}packs", self.prefix));
        let backend = self.name.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&dir, &mut out).map(|()| out)
        })
        .await
        .map_err(|e| StoreError::Unavailable {
            backend: backend.clone(),
            message: format!("listing staging files: {e}"),
        })?
        .map_err(|e| StoreError::Unavailable {
            backend,
            message: format!("listing staging files: {e}"),
        })
    }

    /// Removes a staging file this backend listed (gone already is fine).
    pub async fn delete_staging(&self, file: &StagingFile) -> Result<(), StoreError> {
        let inside = self
            .local_root
            .as_ref()
            .is_some_and(|root| file.path.starts_with(root));
        let named = file
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_staging_name);
        if !inside || !named {
            return Err(StoreError::Config {
                backend: self.name.clone(),
                message: format!(
                    "{} is not a staging file of this backend",
                    file.path.display()
                ),
            });
        }
        match tokio::fs::remove_file(&file.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Unavailable {
                backend: self.name.clone(),
                message: format!("removing {}: {e}", file.path.display()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_staging_name;

    #[test]
    fn staging_names_are_object_store_s() {
        assert!(is_staging_name("0a1b.dzp#1"));
        assert!(is_staging_name("0a1b.dzp#12"));
        assert!(!is_staging_name("0a1b.dzp"));
        assert!(!is_staging_name("0a1b.dzp#"));
        assert!(!is_staging_name("0a1b.dzp#x1"));
    }
}
