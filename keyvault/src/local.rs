//! The `local` KEK provider: a root keyring held by the gateway itself.
//!
//! The keyring is a small text file (or an environment variable, or a mounted
//! secret file) with one or more versions of a 32-byte root key:
//!
//! ```text
//! dooz-keyring v1
//! 1:<base64 of 32 bytes>
//! 2:<base64 of 32 bytes>
//! ```
//!
//! The newest version wraps; every listed version unwraps. A file (or variable)
//! holding a single bare base64 key is read as version 1. Entries may also be
//! separated by commas (`1:...,2:...`), which suits environment variables.
//!
//! A TMK is wrapped as a [`crate::secrets`] blob (XChaCha20-Poly1305, random
//! 24-byte nonce) under the root key; the associated data binds the provider
//! name, the `key_ref`, the key version and the record format, so none of them
//! can be changed in the stored record without failing authentication.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::keys::{SecretKey, Tmk};
use crate::provider::{KekProvider, check_record_owner};
use crate::record::{ProviderInfo, WRAPPED_TMK_FORMAT_V1, WrappedTmk};
use crate::secrets;

/// Provider name of [`LocalKek`].
pub const LOCAL_PROVIDER: &str = "local";
const KEYRING_HEADER: &str = "dooz-keyring v1";
const AAD_DOMAIN: &[u8] = b"dooz/keyvault/local-wrap/v1";

#[derive(Clone, Debug)]
enum Source {
    File(PathBuf),
    Env(String),
    Memory,
}

type Keyring = BTreeMap<u32, SecretKey>;

/// The `local` KEK provider (see the module documentation).
pub struct LocalKek {
    source: Source,
    keyring: RwLock<Keyring>,
    /// Serializes keyring file rewrites (rotate, retire).
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKek")
            .field("source", &self.source)
            .field("versions", &self.versions())
            .finish()
    }
}

impl LocalKek {
    /// Opens the keyring file at `path`, creating it (mode 0600, parent
    /// directories 0700) with a fresh random version-1 root key if it does not
    /// exist. This is the embedded default.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyError> {
        match Self::open(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent)?;
        }
        let mut ring = Keyring::new();
        ring.insert(1, SecretKey::random());
        match write_new_file(path, &render(&ring)) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created local root keyring (version 1)");
                Ok(Self::with(Source::File(path.to_path_buf()), ring))
            }
            // Another process created it first: use theirs.
            Err(KeyError::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                Self::open(path)
            }
            Err(e) => Err(e),
        }
    }

    /// Opens an existing keyring file (e.g. a mounted secret).
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let ring = read_keyring_file(path)?;
        Ok(Self::with(Source::File(path.to_path_buf()), ring))
    }

    /// Reads the keyring from environment variable `var` when it is set and not
    /// empty; otherwise [`LocalKek::open_or_create`] on `path`.
    ///
    /// The variable stays in the process environment; prefer a mounted secret
    /// file where the platform offers one.
    pub fn from_env_or_file(var: &str, path: &Path) -> Result<Self, KeyError> {
        match std::env::var(var) {
            Ok(v) => Self::from_value_or_file(var, Some(Zeroizing::new(v)), path),
            Err(std::env::VarError::NotPresent) => Self::from_value_or_file(var, None, path),
            Err(std::env::VarError::NotUnicode(_)) => Err(KeyError::config(format!(
                "environment variable {var} is not valid UTF-8"
            ))),
        }
    }

    /// As [`LocalKek::from_env_or_file`], with the variable's value already
    /// read (`source` names it in messages): a non-empty value is the keyring,
    /// otherwise the file is opened or created.
    pub fn from_value_or_file(
        source: &str,
        value: Option<Zeroizing<String>>,
        path: &Path,
    ) -> Result<Self, KeyError> {
        match value {
            Some(v) if !v.trim().is_empty() => {
                let ring = parse_keyring(&v)
                    .map_err(|e| KeyError::config(format!("environment variable {source}: {e}")))?;
                Ok(Self::with(Source::Env(source.to_string()), ring))
            }
            _ => Self::open_or_create(path),
        }
    }

    /// A provider over a single in-memory root key (version 1). Nothing is
    /// persisted; meant for tests and for embedding with an external key source.
    pub fn in_memory(root_key: SecretKey) -> Self {
        let mut ring = Keyring::new();
        ring.insert(1, root_key);
        Self::with(Source::Memory, ring)
    }

    fn with(source: Source, ring: Keyring) -> Self {
        LocalKek {
            source,
            keyring: RwLock::new(ring),
            write_lock: Mutex::new(()),
        }
    }

    /// The newest root key version (the one [`KekProvider::wrap`] uses).
    pub fn newest_version(&self) -> u32 {
        self.read_ring().keys().next_back().copied().unwrap_or(0)
    }

    /// All root key versions present.
    pub fn versions(&self) -> Vec<u32> {
        self.read_ring().keys().copied().collect()
    }

    /// Adds a new random root key version to the keyring file and makes it the
    /// one that wraps. Existing records keep unwrapping under their version;
    /// run [`crate::rotation::rewrap_all`] to move them, then [`LocalKek::retire`]
    /// the old version. Only for file-backed keyrings.
    pub fn rotate(&self) -> Result<u32, KeyError> {
        let path = self.file_path("rotate")?;
        let _w = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Start from the file, so a rotation by another process is not lost.
        let mut ring = read_keyring_file(&path)?;
        let next = ring
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| KeyError::config("root key version overflow"))?;
        ring.insert(next, SecretKey::random());
        replace_file(&path, &render(&ring))?;
        *self.write_ring() = ring;
        tracing::info!(path = %path.display(), version = next, "rotated local root key");
        Ok(next)
    }

    /// Removes root key `version` from the keyring file. Records still wrapped
    /// under it become permanently unreadable ([`KeyError::Revoked`]): rewrap
    /// them first. The newest version cannot be retired.
    pub fn retire(&self, version: u32) -> Result<(), KeyError> {
        let path = self.file_path("retire")?;
        let _w = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut ring = read_keyring_file(&path)?;
        let newest = ring.keys().next_back().copied().unwrap_or(0);
        if version == newest {
            return Err(KeyError::config(format!(
                "cannot retire root key version {version}: it is the newest"
            )));
        }
        if ring.remove(&version).is_none() {
            return Err(KeyError::NotFound {
                what: format!("local root key version {version}"),
            });
        }
        replace_file(&path, &render(&ring))?;
        *self.write_ring() = ring;
        tracing::info!(path = %path.display(), version, "retired local root key version");
        Ok(())
    }

    /// Re-reads a file-backed keyring (e.g. after another process rotated it).
    pub fn reload(&self) -> Result<(), KeyError> {
        if let Source::File(path) = &self.source {
            let ring = read_keyring_file(path)?;
            *self.write_ring() = ring;
        }
        Ok(())
    }

    fn file_path(&self, op: &str) -> Result<PathBuf, KeyError> {
        match &self.source {
            Source::File(p) => Ok(p.clone()),
            Source::Env(var) => Err(KeyError::config(format!(
                "cannot {op} a keyring supplied by environment variable {var}: change the variable instead"
            ))),
            Source::Memory => Err(KeyError::config(format!(
                "cannot {op} an in-memory keyring"
            ))),
        }
    }

    fn read_ring(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_ring(&self) -> std::sync::RwLockWriteGuard<'_, Keyring> {
        self.keyring.write().unwrap_or_else(|e| e.into_inner())
    }

    fn newest(&self) -> Result<(u32, SecretKey), KeyError> {
        self.read_ring()
            .iter()
            .next_back()
            .map(|(v, k)| (*v, k.clone()))
            .ok_or_else(|| KeyError::config("local keyring is empty"))
    }

    /// The root key of `version`, re-reading the file once if it is unknown.
    fn key_for(&self, wrapped: &WrappedTmk) -> Result<SecretKey, KeyError> {
        let version = wrapped.kek_version;
        if let Some(k) = self.read_ring().get(&version) {
            return Ok(k.clone());
        }
        if matches!(self.source, Source::File(_)) {
            self.reload()?;
            if let Some(k) = self.read_ring().get(&version) {
                return Ok(k.clone());
            }
        }
        Err(KeyError::Revoked {
            provider: LOCAL_PROVIDER.into(),
            key_ref: wrapped.key_ref.clone(),
            reason: format!(
                "root key version {version} is not in the keyring (retired, or another keyring)"
            ),
        })
    }

    fn seal_tmk(&self, key_ref: &str, tmk: &Tmk) -> Result<WrappedTmk, KeyError> {
        check_key_ref(key_ref)?;
        let (version, root) = self.newest()?;
        let ciphertext = secrets::seal(&root, &aad(key_ref, version), tmk.expose());
        Ok(WrappedTmk {
            provider: LOCAL_PROVIDER.into(),
            key_ref: key_ref.into(),
            kek_version: version,
            ciphertext,
            commitment: tmk.commitment(),
            format: WRAPPED_TMK_FORMAT_V1,
        })
    }

    fn open_tmk(&self, wrapped: &WrappedTmk) -> Result<Tmk, KeyError> {
        check_record_owner(LOCAL_PROVIDER, wrapped)?;
        let root = self.key_for(wrapped)?;
        let pt = secrets::open(
            &root,
            &aad(&wrapped.key_ref, wrapped.kek_version),
            &wrapped.ciphertext,
        )
        .map_err(|e| match e {
            KeyError::Tampered { .. } | KeyError::Malformed { .. } => KeyError::Tampered {
                what: format!("local wrapped TMK for `{}`", wrapped.key_ref),
                reason: "AEAD authentication failed under the root key of this version".into(),
            },
            other => other,
        })?;
        let tmk = Tmk::try_from_slice(&pt).map_err(|_| KeyError::Tampered {
            what: format!("local wrapped TMK for `{}`", wrapped.key_ref),
            reason: "unwrapped key is not 32 bytes".into(),
        })?;
        wrapped.verify(&tmk)?;
        Ok(tmk)
    }
}

#[async_trait]
impl KekProvider for LocalKek {
    fn name(&self) -> &str {
        LOCAL_PROVIDER
    }

    async fn wrap(&self, key_ref: &str, tmk: &Tmk) -> Result<WrappedTmk, KeyError> {
        let w = self.seal_tmk(key_ref, tmk)?;
        tracing::debug!(key_ref, kek_version = w.kek_version, "wrapped TMK (local)");
        Ok(w)
    }

    async fn unwrap(&self, wrapped: &WrappedTmk) -> Result<Tmk, KeyError> {
        let tmk = self.open_tmk(wrapped)?;
        tracing::debug!(key_ref = %wrapped.key_ref, kek_version = wrapped.kek_version, "unwrapped TMK (local)");
        Ok(tmk)
    }

    async fn rewrap(&self, wrapped: &WrappedTmk) -> Result<WrappedTmk, KeyError> {
        let tmk = self.open_tmk(wrapped)?;
        if wrapped.kek_version >= self.newest_version() {
            return Ok(wrapped.clone());
        }
        let w = self.seal_tmk(&wrapped.key_ref, &tmk)?;
        tracing::debug!(
            key_ref = %wrapped.key_ref,
            from = wrapped.kek_version,
            to = w.kek_version,
            "rewrapped TMK (local)"
        );
        Ok(w)
    }

    async fn describe(&self) -> Result<ProviderInfo, KeyError> {
        let (backend, location) = match &self.source {
            Source::File(p) => ("local-keyring-file", p.display().to_string()),
            Source::Env(v) => ("local-keyring-env", format!("env:{v}")),
            Source::Memory => ("local-keyring-memory", "memory".to_string()),
        };
        let versions = self.versions();
        let mut details = BTreeMap::new();
        details.insert(
            "versions".to_string(),
            versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        Ok(ProviderInfo {
            name: LOCAL_PROVIDER.into(),
            backend: backend.into(),
            location,
            available: !versions.is_empty(),
            current_version: versions.last().copied(),
            details,
        })
    }

    async fn current_version(&self, _key_ref: &str) -> Result<Option<u32>, KeyError> {
        Ok(Some(self.newest_version()))
    }
}

fn check_key_ref(key_ref: &str) -> Result<(), KeyError> {
    if key_ref.is_empty() || key_ref.len() > 256 || key_ref.chars().any(char::is_control) {
        return Err(KeyError::config(
            "key_ref must be 1..=256 bytes without control characters",
        ));
    }
    Ok(())
}

/// Associated data of a local wrap: everything in the record except the
/// ciphertext and the commitment (the commitment is checked after opening).
fn aad(key_ref: &str, version: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_DOMAIN.len() + 16 + LOCAL_PROVIDER.len() + key_ref.len());
    a.extend_from_slice(AAD_DOMAIN);
    a.push(WRAPPED_TMK_FORMAT_V1);
    for part in [LOCAL_PROVIDER.as_bytes(), key_ref.as_bytes()] {
        a.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        a.extend_from_slice(part);
    }
    a.extend_from_slice(&version.to_be_bytes());
    a
}

/// Parses keyring text: header and `#` comments ignored; entries `N:base64`
/// separated by newlines or commas; a single bare base64 key is version 1.
/// Error messages never contain key text.
pub(crate) fn parse_keyring(text: &str) -> Result<Keyring, KeyError> {
    let entries: Vec<&str> = text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != KEYRING_HEADER)
        .collect();
    let bad = |reason: String| KeyError::Malformed {
        what: "local keyring",
        reason,
    };
    let decode = |b64: &str, version: u32| -> Result<SecretKey, KeyError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| bad(format!("version {version}: key is not valid base64")))?,
        );
        SecretKey::try_from_slice(&bytes)
            .map_err(|_| bad(format!("version {version}: key is not 32 bytes")))
    };
    let mut ring = Keyring::new();
    if let [single] = entries.as_slice()
        && !single.contains(':')
    {
        ring.insert(1, decode(single, 1)?);
        return Ok(ring);
    }
    for (i, e) in entries.iter().enumerate() {
        let (v, k) = e
            .split_once(':')
            .ok_or_else(|| bad(format!("entry {} is not `version:base64`", i + 1)))?;
        let version: u32 = v.trim().parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
            bad(format!(
                "entry {}: version must be a positive integer",
                i + 1
            ))
        })?;
        if ring.insert(version, decode(k.trim(), version)?).is_some() {
            return Err(bad(format!("version {version} appears twice")));
        }
    }
    if ring.is_empty() {
        return Err(bad("no key".into()));
    }
    Ok(ring)
}

fn render(ring: &Keyring) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::new());
    s.push_str(KEYRING_HEADER);
    s.push_str(
        "\n# Dooz local root keyring. Secret: whoever reads it can unwrap every tenant key.\n",
    );
    s.push_str("# Losing it makes all data wrapped by the local provider unreadable.\n");
    for (v, k) in ring {
        s.push_str(&v.to_string());
        s.push(':');
        s.push_str(&Zeroizing::new(STANDARD.encode(k.expose())));
        s.push('\n');
    }
    s
}

fn read_keyring_file(path: &Path) -> Result<Keyring, KeyError> {
    let ctx = || format!("reading local keyring {}", path.display());
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| KeyError::io(ctx(), e))?);
    check_permissions(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::Malformed {
        what: "local keyring",
        reason: format!("{} is not UTF-8", path.display()),
    })?;
    parse_keyring(text).map_err(|e| match e {
        KeyError::Malformed { what, reason } => KeyError::Malformed {
            what,
            reason: format!("{}: {reason}", path.display()),
        },
        other => other,
    })
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| KeyError::io(format!("stat {}", path.display()), e))?
        .permissions()
        .mode();
    if mode & 0o002 != 0 {
        return Err(KeyError::config(format!(
            "local keyring {} is world-writable (mode {:o}); refusing to use it",
            path.display(),
            mode & 0o777
        )));
    }
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "local keyring is readable by group or others; use mode 0600"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

fn open_options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| KeyError::io(format!("creating directory {}", dir.display()), e))
}

/// Creates `path` exclusively (mode 0600) with `text`, durably.
fn write_new_file(path: &Path, text: &str) -> Result<(), KeyError> {
    let ctx = || format!("creating local keyring {}", path.display());
    let mut f = open_options()
        .open(path)
        .map_err(|e| KeyError::io(ctx(), e))?;
    let res = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| KeyError::io(ctx(), e));
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res?;
    sync_parent(path);
    Ok(())
}

/// Atomically replaces `path` with `text` (temp file 0600 + fsync + rename).
fn replace_file(path: &Path, text: &str) -> Result<(), KeyError> {
    let suffix: u64 = rand::random();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{suffix:016x}"));
    let tmp = PathBuf::from(tmp);
    write_new_file(&tmp, text)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        KeyError::io(format!("replacing local keyring {}", path.display()), e)
    })?;
    sync_parent(path);
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn parses_keyring_forms() {
        let one = parse_keyring(K1).unwrap();
        assert_eq!(one.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(one[&1].expose()[31], 31);
        let two = parse_keyring(&format!("{KEYRING_HEADER}\n# c\n1:{K1}\n3:{K1}\n")).unwrap();
        assert_eq!(two.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        let env = parse_keyring(&format!("1:{K1}, 2:{K1}")).unwrap();
        assert_eq!(env.len(), 2);
        for bad in [
            String::new(),
            "notbase64!".to_string(),
            "AAAA".to_string(),
            format!("0:{K1}"),
            format!("1:{K1}\n1:{K1}"),
            format!("x:{K1}"),
            format!("1:{K1}\n{K1}"),
        ] {
            let err = parse_keyring(&bad).unwrap_err();
            assert!(matches!(err, KeyError::Malformed { .. }), "{bad}: {err}");
            assert!(!err.to_string().contains(K1));
        }
    }

    #[test]
    fn render_round_trips() {
        let mut ring = Keyring::new();
        ring.insert(1, SecretKey::random());
        ring.insert(2, SecretKey::random());
        let back = parse_keyring(&render(&ring)).unwrap();
        assert_eq!(back, ring);
    }

    #[test]
    fn aad_binds_every_field() {
        assert_ne!(aad("a", 1), aad("a", 2));
        assert_ne!(aad("a", 1), aad("b", 1));
        assert_eq!(aad("a", 1), aad("a", 1));
    }
}
