//! Tenants and users: provisioning (admin CLI, first start) and the
//! credential lookup behind request authentication. Secret keys are stored
//! only sealed with the tenant's K_secret, bound to the access key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dooz_keyvault::{KeyVault, WrappedTmk, secrets};
use rand::Rng;
use zeroize::Zeroizing;

use crate::engine::{Engine, EngineError, EngineResult, Principal, now_millis};
use crate::meta::{MetaStore, Policy, Tenant, TenantId, User};

/// Access keys look like AWS's: 20 upper-case characters, ours start "DZ".
pub fn generate_access_key() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let tail: String = (0..18)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("DZ{tail}")
}

/// 40 characters from a URL-safe alphabet (240 bits of entropy).
pub fn generate_secret_key() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    Zeroizing::new(
        (0..40)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect(),
    )
}

fn secret_aad(access_key: &str) -> Vec<u8> {
    format!("dooz/v1 user secret {access_key}").into_bytes()
}

pub struct NewTenant<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub key_ref: &'a str,
    pub cipher: &'a str,
}

/// Creates a tenant with a fresh TMK wrapped by the named KEK provider.
pub async fn create_tenant(
    meta: &dyn MetaStore,
    vault: &KeyVault,
    t: NewTenant<'_>,
) -> EngineResult<Tenant> {
    t.cipher
        .parse::<dooz_chunker::Cipher>()
        .map_err(|_| EngineError::InvalidArgument(format!("unknown cipher {}", t.cipher)))?;
    let (wrapped, _keys) = vault.create_tenant_key(t.provider, t.key_ref).await?;
    let tenant = Tenant {
        id: uuid::Uuid::new_v4(),
        name: t.name.to_owned(),
        cipher: t.cipher.to_owned(),
        current_epoch: 0,
        wrapped_tmk: wrapped.to_bytes(),
        created_at: now_millis(),
    };
    meta.create_tenant(&tenant).await?;
    tracing::info!(tenant = %tenant.name, id = %tenant.id, provider = t.provider, "tenant created");
    Ok(tenant)
}

/// Creates a user; returns it with the plaintext secret (shown once).
pub async fn create_user(
    meta: &dyn MetaStore,
    vault: &KeyVault,
    tenant: &Tenant,
    name: &str,
    policy: Policy,
    keys: Option<(String, Zeroizing<String>)>,
) -> EngineResult<(User, Zeroizing<String>)> {
    let (access_key, secret) =
        keys.unwrap_or_else(|| (generate_access_key(), generate_secret_key()));
    if !plausible_access_key(&access_key) {
        return Err(EngineError::InvalidArgument(
            "access keys are 3 to 128 ASCII letters and digits".into(),
        ));
    }
    if secret.len() < 8 {
        return Err(EngineError::InvalidArgument(
            "secret keys must be at least 8 characters".into(),
        ));
    }
    let wrapped = WrappedTmk::from_bytes(&tenant.wrapped_tmk)?;
    let keys = vault.tenant_keys(&tenant.id.to_string(), &wrapped).await?;
    let sealed = secrets::seal(
        keys.secret_key(),
        &secret_aad(&access_key),
        secret.as_bytes(),
    );
    let user = User {
        access_key,
        tenant_id: tenant.id,
        name: name.to_owned(),
        secret_sealed: sealed,
        policy,
        created_at: now_millis(),
    };
    meta.create_user(&user).await?;
    tracing::info!(tenant = %tenant.name, user = name, access_key = %user.access_key, "user created");
    Ok((user, secret))
}

/// A verified identity and its secret, as the signature check needs it.
#[derive(Clone)]
pub struct Credential {
    pub principal: Principal,
    pub secret: Arc<Zeroizing<String>>,
    /// The user's and its tenant's names (for policy ARNs).
    pub user_name: Arc<str>,
    pub tenant_name: Arc<str>,
    /// The policies attached to the user, parsed, by name.
    pub policies: Arc<Vec<(String, Arc<crate::policy::PolicyDocument>)>>,
}

/// Access key → credential, cached briefly so a revoked user stops working
/// within `ttl` without a database round trip on every request. Unknown
/// keys are remembered too (for `NEGATIVE_TTL`, at most `CACHE_LIMIT` of
/// them), so repeating a wrong key costs no database read; a key that
/// cannot exist (see [`plausible_access_key`]) never reaches the database.
pub struct CredentialCache {
    engine: Engine,
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Credential)>>,
    unknown: Mutex<HashMap<String, Instant>>,
}

const CACHE_LIMIT: usize = 10_000;
/// How long an unknown access key stays unknown without asking again: a
/// user created meanwhile (by another process) works after at most this.
const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// Whether a string could be an access key `create_user` accepts.
pub fn plausible_access_key(k: &str) -> bool {
    (3..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Drops expired entries when a map is full; empties it if that was not
/// enough (a flood of fresh keys), which only costs lookups.
fn make_room<V>(map: &mut HashMap<String, V>, expired: impl Fn(&V) -> bool) {
    if map.len() >= CACHE_LIMIT {
        map.retain(|_, v| !expired(v));
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
    }
}

impl CredentialCache {
    pub fn new(engine: Engine, ttl: Duration) -> Self {
        Self {
            engine,
            ttl,
            entries: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// Ok(None) when the access key is unknown.
    pub async fn lookup(&self, access_key: &str) -> EngineResult<Option<Credential>> {
        let count = |outcome: &str| {
            crate::metrics::METRICS
                .credential_lookups
                .with_label_values(&[outcome])
                .inc();
        };
        if let Some((at, cred)) = self.lock().get(access_key)
            && at.elapsed() < self.ttl
        {
            count("hit");
            return Ok(Some(cred.clone()));
        }
        if !plausible_access_key(access_key) {
            count("unknown");
            return Ok(None);
        }
        if self
            .lock_unknown()
            .get(access_key)
            .is_some_and(|at| at.elapsed() < NEGATIVE_TTL)
        {
            count("negative_hit");
            return Ok(None);
        }
        count("miss");
        let Some(user) = self.engine.meta().get_user(access_key).await? else {
            let mut unknown = self.lock_unknown();
            make_room(&mut unknown, |at| at.elapsed() >= NEGATIVE_TTL);
            unknown.insert(access_key.to_owned(), Instant::now());
            return Ok(None);
        };
        let tenant = self
            .engine
            .meta()
            .get_tenant(user.tenant_id)
            .await?
            .ok_or_else(|| EngineError::Internal(format!("user {access_key} has no tenant")))?;
        let keys = self.engine.tenant_keys(&tenant).await?;
        let plain = secrets::open(
            keys.secret_key(),
            &secret_aad(access_key),
            &user.secret_sealed,
        )
        .map_err(|e| EngineError::Internal(format!("opening the secret of {access_key}: {e}")))?;
        let secret = String::from_utf8(plain.to_vec())
            .map_err(|_| EngineError::Internal(format!("secret of {access_key} is not UTF-8")))?;
        let policies = attached_policies(self.engine.meta().as_ref(), &user).await?;
        let cred = Credential {
            principal: Principal {
                access_key: access_key.to_owned(),
                tenant_id: tenant.id,
                policy: user.policy,
                grant: None,
            },
            secret: Arc::new(Zeroizing::new(secret)),
            user_name: Arc::from(user.name.as_str()),
            tenant_name: Arc::from(tenant.name.as_str()),
            policies: Arc::new(policies),
        };
        let mut entries = self.lock();
        let ttl = self.ttl;
        make_room(&mut entries, |(at, _)| at.elapsed() >= ttl);
        entries.insert(access_key.to_owned(), (Instant::now(), cred.clone()));
        Ok(Some(cred))
    }

    pub fn forget(&self, access_key: &str) {
        self.lock().remove(access_key);
        self.lock_unknown().remove(access_key);
    }

    /// Unknown keys remembered now (for tests and metrics).
    pub fn unknown_len(&self) -> usize {
        self.lock_unknown().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Credential)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_unknown(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.unknown.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The parsed policies attached to a user: built-in ones from the binary,
/// the tenant's from the store. A stored document that no longer parses
/// fails the lookup (ignoring it could drop a Deny).
pub async fn attached_policies(
    meta: &dyn MetaStore,
    user: &User,
) -> EngineResult<Vec<(String, Arc<crate::policy::PolicyDocument>)>> {
    use crate::policy::{Kind, PolicyDocument, builtin};
    let mut out = Vec::new();
    for name in meta.user_policies(&user.access_key).await? {
        let doc = match builtin(&name) {
            Some(d) => d.clone(),
            None => {
                let Some(p) = meta.get_policy(user.tenant_id, &name).await? else {
                    // Deleted meanwhile: it grants nothing.
                    continue;
                };
                PolicyDocument::parse(&p.document, Kind::Identity).map_err(|e| {
                    EngineError::Internal(format!("stored policy {name} does not parse: {e}"))
                })?
            }
        };
        out.push((name, Arc::new(doc)));
    }
    Ok(out)
}

/// Finds a tenant by name or id.
pub async fn find_tenant(meta: &dyn MetaStore, name_or_id: &str) -> EngineResult<Tenant> {
    if let Ok(id) = name_or_id.parse::<TenantId>()
        && let Some(t) = meta.get_tenant(id).await?
    {
        return Ok(t);
    }
    meta.get_tenant_by_name(name_or_id)
        .await?
        .ok_or_else(|| EngineError::InvalidArgument(format!("no tenant named {name_or_id}")))
}
