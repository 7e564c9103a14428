//! [`MetaStore`] for any SQL driver: each operation is one job, run in a
//! read or a write transaction. The semantics live in the job modules
//! (accounts, objects, multipart, refs, check); the drivers only run SQL.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::codec::now_millis;
use super::lock::{BucketLock, LockUpdate, ObjectLock};
use super::manifest::{Manifest, ManifestHead};
use super::model::*;
use super::sql::{Driver, Job, tx_job};
use super::{
    BucketAccess, ConfigKind, LifecycleState, LifecycleVersion, LimitRow, MetaResult, MetaStore,
    PublicAccessBlock, StoredPolicy, Tags, access, accounts, bucket_config, check, lifecycle,
    limits, multipart, objects, refs, tagging, versions,
};

/// The metadata store over one database; see `SqliteStore` and `PgStore`.
pub struct SqlStore<D> {
    pub(crate) db: D,
}

impl<D> SqlStore<D> {
    pub(crate) fn with_driver(db: D) -> Self {
        Self { db }
    }
}

/// A write transaction, timed under the operation's name.
pub(super) async fn write<D: Driver, T: Send + 'static>(
    db: &D,
    op: &'static str,
    job: Job<T>,
) -> MetaResult<T> {
    let started = Instant::now();
    let r = db.write(job).await;
    crate::metrics::meta_operation(db.kind(), op, started, r.is_ok());
    r
}

/// A read-only transaction, timed under the operation's name.
pub(super) async fn read<D: Driver, T: Send + 'static>(
    db: &D,
    op: &'static str,
    job: Job<T>,
) -> MetaResult<T> {
    let started = Instant::now();
    let r = db.read(job).await;
    crate::metrics::meta_operation(db.kind(), op, started, r.is_ok());
    r
}

#[async_trait]
impl<D: Driver> MetaStore for SqlStore<D> {
    fn kind(&self) -> &'static str {
        self.db.kind()
    }

    async fn ping(&self) -> MetaResult<()> {
        self.db.ping().await
    }

    fn pool_status(&self) -> PoolStatus {
        self.db.pool_status()
    }

    fn audit(&self) -> &dyn super::AuditStore {
        self
    }

    async fn create_tenant(&self, tenant: &Tenant) -> MetaResult<()> {
        let tenant = Arc::new(tenant.clone());
        write(
            &self.db,
            "create_tenant",
            tx_job!(tx, [tenant] => accounts::create_tenant(tx, &tenant).await),
        )
        .await
    }

    async fn get_tenant(&self, id: TenantId) -> MetaResult<Option<Tenant>> {
        read(
            &self.db,
            "get_tenant",
            tx_job!(tx, [] => accounts::get_tenant(tx, id).await),
        )
        .await
    }

    async fn get_tenant_by_name(&self, name: &str) -> MetaResult<Option<Tenant>> {
        let name = name.to_owned();
        read(
            &self.db,
            "get_tenant_by_name",
            tx_job!(tx, [name] => accounts::get_tenant_by_name(tx, &name).await),
        )
        .await
    }

    async fn list_tenants(&self) -> MetaResult<Vec<Tenant>> {
        read(
            &self.db,
            "list_tenants",
            tx_job!(tx, [] => accounts::list_tenants(tx).await),
        )
        .await
    }

    async fn set_tenant_epoch(&self, id: TenantId, epoch: u32) -> MetaResult<()> {
        write(
            &self.db,
            "set_tenant_epoch",
            tx_job!(tx, [] => accounts::set_tenant_epoch(tx, id, epoch).await),
        )
        .await
    }

    async fn replace_wrapped_tmk(&self, id: TenantId, old: &[u8], new: &[u8]) -> MetaResult<bool> {
        let (old, new) = (Arc::new(old.to_vec()), Arc::new(new.to_vec()));
        write(
            &self.db,
            "replace_wrapped_tmk",
            tx_job!(tx, [old, new] => accounts::replace_wrapped_tmk(tx, id, &old, &new).await),
        )
        .await
    }

    async fn list_tenants_after(
        &self,
        after: Option<TenantId>,
        limit: usize,
    ) -> MetaResult<Vec<Tenant>> {
        read(
            &self.db,
            "list_tenants_after",
            tx_job!(tx, [] => accounts::list_tenants_after(tx, after, limit).await),
        )
        .await
    }

    async fn create_user(&self, user: &User) -> MetaResult<()> {
        let user = Arc::new(user.clone());
        write(
            &self.db,
            "create_user",
            tx_job!(tx, [user] => accounts::create_user(tx, &user).await),
        )
        .await
    }

    async fn get_user(&self, access_key: &str) -> MetaResult<Option<User>> {
        let key = access_key.to_owned();
        read(
            &self.db,
            "get_user",
            tx_job!(tx, [key] => accounts::get_user(tx, &key).await),
        )
        .await
    }

    async fn list_users(&self, tenant: Option<TenantId>) -> MetaResult<Vec<User>> {
        read(
            &self.db,
            "list_users",
            tx_job!(tx, [] => accounts::list_users(tx, tenant).await),
        )
        .await
    }

    async fn delete_user(&self, access_key: &str) -> MetaResult<bool> {
        let key = access_key.to_owned();
        write(
            &self.db,
            "delete_user",
            tx_job!(tx, [key] => accounts::delete_user(tx, &key).await),
        )
        .await
    }

    async fn create_bucket(&self, bucket: &Bucket) -> MetaResult<()> {
        let bucket = Arc::new(bucket.clone());
        write(
            &self.db,
            "create_bucket",
            tx_job!(tx, [bucket] => accounts::create_bucket(tx, &bucket).await),
        )
        .await
    }

    async fn get_bucket(&self, name: &str) -> MetaResult<Option<Bucket>> {
        let name = name.to_owned();
        read(
            &self.db,
            "get_bucket",
            tx_job!(tx, [name] => accounts::get_bucket(tx, &name).await),
        )
        .await
    }

    async fn list_buckets(&self, tenant: TenantId) -> MetaResult<Vec<Bucket>> {
        read(
            &self.db,
            "list_buckets",
            tx_job!(tx, [] => accounts::list_buckets(tx, tenant).await),
        )
        .await
    }

    async fn list_buckets_page(
        &self,
        tenant: TenantId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<Bucket>> {
        let prefix = prefix.to_owned();
        let after = after.map(str::to_owned);
        read(
            &self.db,
            "list_buckets_page",
            tx_job!(tx, [prefix, after] => accounts::list_buckets_page(tx, tenant, &prefix, after.as_deref(), limit).await),
        )
        .await
    }

    async fn delete_bucket(&self, name: &str) -> MetaResult<()> {
        let name = name.to_owned();
        write(
            &self.db,
            "delete_bucket",
            tx_job!(tx, [name] => accounts::delete_bucket(tx, &name).await),
        )
        .await
    }

    async fn set_bucket_versioning(
        &self,
        bucket: &str,
        status: Versioning,
        at: Millis,
    ) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        write(
            &self.db,
            "set_bucket_versioning",
            tx_job!(tx, [bucket] => versions::set_versioning(tx, &bucket, status, at).await),
        )
        .await
    }

    async fn versioning_history(&self, bucket: &str) -> MetaResult<Vec<VersioningChange>> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "versioning_history",
            tx_job!(tx, [bucket] => versions::history(tx, &bucket).await),
        )
        .await
    }

    async fn set_bucket_object_lock(&self, bucket: &str, lock: BucketLock) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        write(
            &self.db,
            "set_bucket_object_lock",
            tx_job!(tx, [bucket] => versions::set_object_lock(tx, &bucket, lock).await),
        )
        .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, Option<&str>)>,
        limit: usize,
    ) -> MetaResult<Page<VersionSummary>> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let after = after.map(|(k, v)| (k.to_owned(), v.map(str::to_owned)));
        read(
            &self.db,
            "list_versions",
            tx_job!(tx, [bucket, prefix, after] => {
                let after = after.as_ref().map(|(k, v)| (k.as_str(), v.as_deref()));
                versions::list_versions(tx, &bucket, &prefix, after, limit).await
            }),
        )
        .await
    }

    async fn update_object_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        update: LockUpdate,
        now: Millis,
    ) -> MetaResult<ObjectLock> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let version = version_id.map(str::to_owned);
        write(
            &self.db,
            "update_object_lock",
            tx_job!(tx, [bucket, key, version] =>
                versions::update_lock(tx, &bucket, &key, version.as_deref(), update, now).await),
        )
        .await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> MetaResult<Option<ObjectVersion>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let version = version_id.map(str::to_owned);
        read(
            &self.db,
            "get_object",
            tx_job!(tx, [bucket, key, version] =>
                objects::get(tx, &bucket, &key, version.as_deref()).await),
        )
        .await
    }

    async fn get_object_bounded(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        inline_limit: usize,
    ) -> MetaResult<Option<(ObjectVersion, Option<ManifestHead>)>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let version = version_id.map(str::to_owned);
        read(
            &self.db,
            "get_object",
            tx_job!(tx, [bucket, key, version] =>
                objects::get_bounded(tx, &bucket, &key, version.as_deref(), inline_limit).await),
        )
        .await
    }

    async fn manifest_slice(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        offset: u64,
        len: usize,
    ) -> MetaResult<Vec<u8>> {
        let (bucket, key, version) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        read(
            &self.db,
            "manifest_slice",
            tx_job!(tx, [bucket, key, version] =>
                objects::slice(tx, &bucket, &key, &version, offset, len).await),
        )
        .await
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<ObjectSummary>> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let after = after.map(str::to_owned);
        read(
            &self.db,
            "list_objects",
            tx_job!(tx, [bucket, prefix, after] =>
                objects::list(tx, &bucket, &prefix, after.as_deref(), limit).await),
        )
        .await
    }

    async fn lookup_chunks(&self, tenant: TenantId, ids: &[ChunkKey]) -> MetaResult<Vec<ChunkKey>> {
        // Reading first keeps the common case (no zombies) off the writer.
        let request = Arc::new(ids.to_vec());
        let (live, zombies) = read(
            &self.db,
            "lookup_chunks",
            tx_job!(tx, [request] => refs::lookup(tx, tenant, &request).await),
        )
        .await?;
        let mut found: BTreeSet<ChunkKey> = live.into_iter().collect();
        if !zombies.is_empty() {
            let zombies = Arc::new(zombies);
            let touched = write(
                &self.db,
                "touch_zombies",
                tx_job!(tx, [zombies] =>
                    refs::touch_zombies(tx, tenant, &zombies, now_millis()).await),
            )
            .await?;
            found.extend(touched);
        }
        Ok(refs::in_request_order(ids, &found))
    }

    async fn chunk_locations(
        &self,
        tenant: TenantId,
        ids: &[ChunkKey],
    ) -> MetaResult<Vec<(ChunkKey, ChunkLocation)>> {
        let ids = Arc::new(ids.to_vec());
        read(
            &self.db,
            "chunk_locations",
            tx_job!(tx, [ids] => refs::locations(tx, tenant, &ids).await),
        )
        .await
    }

    async fn pack_backends(
        &self,
        tenant: TenantId,
        ids: &[PackKey],
    ) -> MetaResult<Vec<(PackKey, String)>> {
        let ids = Arc::new(ids.to_vec());
        read(
            &self.db,
            "pack_backends",
            tx_job!(tx, [ids] => refs::pack_backends(tx, tenant, &ids).await),
        )
        .await
    }

    async fn commit_object(&self, commit: ObjectCommit) -> MetaResult<CommitOutcome> {
        let commit = Arc::new(commit);
        write(
            &self.db,
            "commit_object",
            tx_job!(tx, [commit] => objects::commit(tx, &commit, now_millis()).await),
        )
        .await
    }

    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
    ) -> MetaResult<DeleteOutcome> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let version = version_id.map(str::to_owned);
        write(
            &self.db,
            "delete_object",
            tx_job!(tx, [bucket, key, version] =>
                objects::delete(tx, &bucket, &key, version.as_deref(), bypass_governance,
                                now_millis()).await),
        )
        .await
    }

    async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &Tags,
    ) -> MetaResult<String> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        let version = version_id.map(str::to_owned);
        let tags = Arc::new(tags.clone());
        write(
            &self.db,
            "set_object_tags",
            tx_job!(tx, [bucket, key, version, tags] =>
                tagging::set_object_tags(tx, &bucket, &key, version.as_deref(), &tags).await),
        )
        .await
    }

    async fn bucket_tags(&self, bucket: &str) -> MetaResult<Option<Tags>> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "bucket_tags",
            tx_job!(tx, [bucket] => tagging::bucket_tags(tx, &bucket).await),
        )
        .await
    }

    async fn set_bucket_tags(&self, bucket: &str, tags: Option<&Tags>) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        let tags = Arc::new(tags.cloned());
        write(
            &self.db,
            "set_bucket_tags",
            tx_job!(tx, [bucket, tags] =>
                tagging::set_bucket_tags(tx, &bucket, tags.as_ref().as_ref()).await),
        )
        .await
    }

    async fn put_policy(&self, policy: &StoredPolicy) -> MetaResult<()> {
        let policy = Arc::new(policy.clone());
        write(
            &self.db,
            "put_policy",
            tx_job!(tx, [policy] => access::put_policy(tx, &policy).await),
        )
        .await
    }

    async fn get_policy(&self, tenant: TenantId, name: &str) -> MetaResult<Option<StoredPolicy>> {
        let name = name.to_owned();
        read(
            &self.db,
            "get_policy",
            tx_job!(tx, [name] => access::get_policy(tx, tenant, &name).await),
        )
        .await
    }

    async fn list_policies(&self, tenant: TenantId) -> MetaResult<Vec<StoredPolicy>> {
        read(
            &self.db,
            "list_policies",
            tx_job!(tx, [] => access::list_policies(tx, tenant).await),
        )
        .await
    }

    async fn delete_policy(&self, tenant: TenantId, name: &str) -> MetaResult<bool> {
        let name = name.to_owned();
        write(
            &self.db,
            "delete_policy",
            tx_job!(tx, [name] => access::delete_policy(tx, tenant, &name).await),
        )
        .await
    }

    async fn attach_user_policy(&self, access_key: &str, policy: &str) -> MetaResult<()> {
        let (access_key, policy) = (access_key.to_owned(), policy.to_owned());
        write(
            &self.db,
            "attach_user_policy",
            tx_job!(tx, [access_key, policy] =>
                access::attach_user_policy(tx, &access_key, &policy).await),
        )
        .await
    }

    async fn detach_user_policy(&self, access_key: &str, policy: &str) -> MetaResult<bool> {
        let (access_key, policy) = (access_key.to_owned(), policy.to_owned());
        write(
            &self.db,
            "detach_user_policy",
            tx_job!(tx, [access_key, policy] =>
                access::detach_user_policy(tx, &access_key, &policy).await),
        )
        .await
    }

    async fn user_policies(&self, access_key: &str) -> MetaResult<Vec<String>> {
        let access_key = access_key.to_owned();
        read(
            &self.db,
            "user_policies",
            tx_job!(tx, [access_key] => access::user_policies(tx, &access_key).await),
        )
        .await
    }

    async fn bucket_access(&self, bucket: &str) -> MetaResult<BucketAccess> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "bucket_access",
            tx_job!(tx, [bucket] => access::bucket_access(tx, &bucket).await),
        )
        .await
    }

    async fn bucket_config(&self, bucket: &str, kind: ConfigKind) -> MetaResult<Option<String>> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "bucket_config",
            tx_job!(tx, [bucket] => bucket_config::get(tx, &bucket, kind).await),
        )
        .await
    }

    async fn set_bucket_policy(&self, bucket: &str, policy: Option<&str>) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        let policy = Arc::new(policy.map(str::to_owned));
        write(
            &self.db,
            "set_bucket_policy",
            tx_job!(tx, [bucket, policy] =>
                access::set_bucket_policy(tx, &bucket, policy.as_deref()).await),
        )
        .await
    }

    async fn set_public_access_block(
        &self,
        bucket: &str,
        pab: Option<&PublicAccessBlock>,
    ) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        let pab = pab.copied();
        write(
            &self.db,
            "set_public_access_block",
            tx_job!(tx, [bucket] =>
                access::set_public_access_block(tx, &bucket, pab.as_ref()).await),
        )
        .await
    }

    async fn set_bucket_config(
        &self,
        bucket: &str,
        kind: ConfigKind,
        body: Option<&str>,
    ) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        let body = body.map(str::to_owned);
        write(
            &self.db,
            "set_bucket_config",
            tx_job!(tx, [bucket, body] =>
                bucket_config::set(tx, &bucket, kind, body.as_deref()).await),
        )
        .await
    }

    async fn limit_overrides(&self) -> MetaResult<Vec<LimitRow>> {
        read(
            &self.db,
            "limit_overrides",
            tx_job!(tx, [] => limits::list(tx).await),
        )
        .await
    }

    async fn set_limit_override(
        &self,
        scope: &str,
        subject: &str,
        body: Option<&str>,
    ) -> MetaResult<bool> {
        let scope = scope.to_owned();
        let subject = subject.to_owned();
        let body = body.map(str::to_owned);
        write(
            &self.db,
            "set_limit_override",
            tx_job!(tx, [scope, subject, body] =>
                limits::set(tx, &scope, &subject, body.as_deref()).await),
        )
        .await
    }

    async fn bucket_lifecycle(&self, bucket: &str) -> MetaResult<Option<String>> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "bucket_lifecycle",
            tx_job!(tx, [bucket] => lifecycle::get(tx, &bucket).await),
        )
        .await
    }

    async fn set_bucket_lifecycle(&self, bucket: &str, config: Option<&str>) -> MetaResult<()> {
        let bucket = bucket.to_owned();
        let config = config.map(str::to_owned);
        write(
            &self.db,
            "set_bucket_lifecycle",
            tx_job!(tx, [bucket, config] => lifecycle::set(tx, &bucket, config.as_deref()).await),
        )
        .await
    }

    async fn buckets_with_lifecycle(&self) -> MetaResult<Vec<String>> {
        read(
            &self.db,
            "buckets_with_lifecycle",
            tx_job!(tx, [] => lifecycle::buckets_with(tx).await),
        )
        .await
    }

    async fn lifecycle_state(&self, bucket: &str) -> MetaResult<Option<LifecycleState>> {
        let bucket = bucket.to_owned();
        read(
            &self.db,
            "lifecycle_state",
            tx_job!(tx, [bucket] => lifecycle::state(tx, &bucket).await),
        )
        .await
    }

    async fn lifecycle_states(&self) -> MetaResult<Vec<LifecycleState>> {
        read(
            &self.db,
            "lifecycle_states",
            tx_job!(tx, [] => lifecycle::states(tx).await),
        )
        .await
    }

    async fn save_lifecycle_state(&self, state: &LifecycleState) -> MetaResult<()> {
        let state = Arc::new(state.clone());
        write(
            &self.db,
            "save_lifecycle_state",
            tx_job!(tx, [state] => lifecycle::save_state(tx, &state).await),
        )
        .await
    }

    async fn lifecycle_scan(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Page<LifecycleVersion>> {
        let bucket = bucket.to_owned();
        let after = after.map(str::to_owned);
        read(
            &self.db,
            "lifecycle_scan",
            tx_job!(tx, [bucket, after] =>
                lifecycle::scan(tx, &bucket, after.as_deref(), limit).await),
        )
        .await
    }

    async fn lifecycle_expire_current(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> MetaResult<Option<DeleteOutcome>> {
        let (bucket, key, version) = (bucket.to_owned(), key.to_owned(), version_id.to_owned());
        write(
            &self.db,
            "lifecycle_expire_current",
            tx_job!(tx, [bucket, key, version] =>
                lifecycle::expire_current(tx, &bucket, &key, &version, now_millis()).await),
        )
        .await
    }

    async fn create_multipart(&self, upload: &MultipartUpload) -> MetaResult<()> {
        let upload = Arc::new(upload.clone());
        write(
            &self.db,
            "create_multipart",
            tx_job!(tx, [upload] => multipart::create(tx, &upload).await),
        )
        .await
    }

    async fn get_multipart(&self, upload_id: &str) -> MetaResult<Option<MultipartUpload>> {
        let id = upload_id.to_owned();
        read(
            &self.db,
            "get_multipart",
            tx_job!(tx, [id] => multipart::get(tx, &id).await),
        )
        .await
    }

    async fn list_multipart(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> MetaResult<Page<MultipartUpload>> {
        let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
        let after = after.map(|(k, u)| (k.to_owned(), u.to_owned()));
        read(
            &self.db,
            "list_multipart",
            tx_job!(tx, [bucket, prefix, after] => {
                let after = after.as_ref().map(|(k, u)| (k.as_str(), u.as_str()));
                multipart::list(tx, &bucket, &prefix, after, limit).await
            }),
        )
        .await
    }

    async fn commit_part(&self, commit: PartCommit) -> MetaResult<()> {
        let commit = Arc::new(commit);
        write(
            &self.db,
            "commit_part",
            tx_job!(tx, [commit] => multipart::commit_part(tx, &commit, now_millis()).await),
        )
        .await
    }

    async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> MetaResult<Page<Part>> {
        let id = upload_id.to_owned();
        read(
            &self.db,
            "list_parts",
            tx_job!(tx, [id] => multipart::list_parts(tx, &id, after, limit).await),
        )
        .await
    }

    async fn complete_multipart_from(
        &self,
        upload_id: &str,
        commit: ObjectCommit,
        joined: Manifest,
    ) -> MetaResult<CommitOutcome> {
        let id = upload_id.to_owned();
        let commit = Arc::new(commit);
        let joined = Arc::new(joined);
        write(
            &self.db,
            "complete_multipart",
            tx_job!(tx, [id, commit, joined] =>
                multipart::complete(tx, &id, &commit, &joined, now_millis()).await),
        )
        .await
    }

    async fn abort_multipart(&self, upload_id: &str) -> MetaResult<()> {
        let id = upload_id.to_owned();
        write(
            &self.db,
            "abort_multipart",
            tx_job!(tx, [id] => multipart::abort(tx, &id, now_millis()).await),
        )
        .await
    }

    async fn list_packs(&self, tenant: Option<TenantId>) -> MetaResult<Vec<PackRecord>> {
        read(
            &self.db,
            "list_packs",
            tx_job!(tx, [] => check::list_packs(tx, tenant).await),
        )
        .await
    }

    async fn usage(&self, tenant: Option<TenantId>) -> MetaResult<UsageStats> {
        read(
            &self.db,
            "usage",
            tx_job!(tx, [] => check::usage(tx, tenant).await),
        )
        .await
    }

    async fn fsck(&self) -> MetaResult<FsckReport> {
        read(&self.db, "fsck", tx_job!(tx, [] => check::fsck(tx).await)).await
    }
}
