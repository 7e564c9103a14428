//! The OpenAPI 3 document of the admin API, served at
//! `/admin/v1/openapi.json`. gateway/tests/admin_api.rs calls every
//! operation it lists, so a route and its entry cannot drift apart.

use serde_json::{Value, json};

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema(name)}}})
}

fn answer(description: &str, s: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": s}}})
}

fn list(name: &str) -> Value {
    json!({"type": "array", "items": schema(name)})
}

/// The errors every operation may answer, plus its own.
fn responses(success: (&str, &str, Value), errors: &[(&str, &str)]) -> Value {
    let mut r = serde_json::Map::new();
    r.insert(success.0.into(), answer(success.1, success.2));
    let err = |d: &str| answer(d, schema("Error"));
    r.insert(
        "401".into(),
        err("no or wrong bearer token (WWW-Authenticate: Bearer)"),
    );
    for (code, d) in errors {
        r.insert((*code).into(), err(d));
    }
    r.insert(
        "503".into(),
        err("the metadata store or a backend does not answer"),
    );
    Value::Object(r)
}

fn tenant_param() -> Value {
    json!({"name": "tenant", "in": "query", "required": false,
        "description": "only this tenant (name or id)", "schema": {"type": "string"}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string"}})
}

fn flag(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
        "schema": {"type": "boolean", "default": false}})
}

fn op(id: &str, summary: &str, params: Value, responses: Value) -> Value {
    json!({"operationId": id, "summary": summary, "parameters": params, "responses": responses})
}

fn op_with_body(id: &str, summary: &str, request: &str, responses: Value) -> Value {
    json!({"operationId": id, "summary": summary, "requestBody": body(request), "responses": responses})
}

fn u64_props(names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| ((*n).to_owned(), json!({"type": "integer", "minimum": 0})))
            .collect(),
    )
}

fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    let mut usage_props = u64_props(&[
        "objects",
        "logical_bytes",
        "chunks",
        "chunk_plain_bytes",
        "chunk_stored_bytes",
        "packs",
        "pack_bytes",
    ]);
    usage_props["tenants"] = list("TenantUsage");
    let mut tenant_usage = u64_props(&[
        "chunk_rows",
        "live_bytes",
        "zombie_bytes",
        "packs",
        "pack_bytes",
        "dead_bytes",
        "reclaimable_bytes",
    ]);
    tenant_usage["tenant"] = json!({"type": "string", "format": "uuid"});
    tenant_usage["name"] = json!({"type": ["string", "null"]});
    let policy = json!({"type": "string", "enum": ["admin", "read-write", "read-only"]});
    let mut schemas = json!({
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "description": "Unauthorized, InvalidArgument, NotFound, Conflict, NoSuchRoute, MethodNotAllowed, ServiceUnavailable, InternalError"},
                "message": s("string")}}}},
        "Tenant": {"type": "object", "required": ["id", "name", "cipher", "epoch"], "properties": {
            "id": {"type": "string", "format": "uuid"}, "name": s("string"),
            "cipher": s("string"), "epoch": {"type": "integer", "minimum": 0}}},
        "NewTenant": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": s("string"),
            "kek_provider": {"type": "string", "description": "local or openbao [default: kms.default_provider]"},
            "key_ref": {"type": "string", "description": "key reference at the provider (OpenBao transit key name)"},
            "cipher": {"type": "string", "enum": ["aes-256-gcm-siv", "chacha20-poly1305"]}}},
        "User": {"type": "object", "required": ["access_key", "name", "tenant_id", "policy"], "properties": {
            "access_key": s("string"), "name": s("string"),
            "tenant_id": {"type": "string", "format": "uuid"}, "policy": policy}},
        "NewUserRequest": {"type": "object", "required": ["tenant", "name"], "additionalProperties": false, "properties": {
            "tenant": {"type": "string", "description": "tenant name or id"},
            "name": s("string"),
            "policy": {"type": "string", "enum": ["admin", "read-write", "read-only"], "default": "read-write"},
            "access_key": {"type": "string", "description": "instead of a generated one; needs secret_key"},
            "secret_key": {"type": "string", "minLength": 8}}},
        "NewUser": {"type": "object", "required": ["access_key", "secret_key", "name", "tenant", "policy"], "properties": {
            "access_key": s("string"),
            "secret_key": {"type": "string", "description": "shown this once; never again"},
            "name": s("string"), "tenant": s("string"), "policy": policy}},
        "Policy": {"type": "object", "required": ["name", "description"], "properties": {
            "name": s("string"), "description": s("string")}},
        "Bucket": {"type": "object", "required": ["name", "tenant", "backend", "versioning", "object_lock"], "properties": {
            "name": s("string"), "tenant": s("string"), "backend": s("string"),
            "versioning": {"type": "string", "enum": ["unversioned", "enabled", "suspended"]},
            "object_lock": s("boolean")}},
        "NewBucket": {"type": "object", "required": ["name", "tenant"], "additionalProperties": false, "properties": {
            "name": s("string"), "tenant": {"type": "string", "description": "tenant name or id"},
            "versioning": {"type": "boolean", "default": false},
            "object_lock": {"type": "boolean", "default": false, "description": "implies versioning; permanent"}}},
        "BucketDeleted": {"type": "object", "required": ["bucket", "versions_deleted", "uploads_aborted"], "properties": {
            "bucket": s("string"),
            "versions_deleted": {"type": "integer", "minimum": 0},
            "uploads_aborted": {"type": "integer", "minimum": 0}}},
        "Deleted": {"type": "object", "required": ["deleted"], "properties": {"deleted": s("string")}},
        "NamedPolicy": {"type": "object", "required": ["name", "builtin", "document"], "properties": {
            "name": s("string"), "builtin": s("boolean"),
            "document": {"type": "string", "description": "the IAM JSON document as text"}}},
        "PolicyDocument": {"type": "object", "description": "an IAM JSON policy document (Version 2012-10-17, no Principal)"},
        "PolicyShown": {"type": "object", "required": ["name", "document"], "properties": {
            "name": s("string"), "document": {"type": "object"}}},
        "Attachment": {"type": "object", "properties": {"attached": s("string"), "detached": s("string")}},
        "CanAnswer": {"type": "object", "required": ["access_key", "principal", "action", "resource", "allowed", "decision"], "properties": {
            "access_key": s("string"), "principal": s("string"), "action": s("string"), "resource": s("string"),
            "allowed": s("boolean"),
            "decision": {"type": "string", "enum": ["allow", "explicit-deny", "implicit-deny"]},
            "statement": {"type": ["string", "null"], "description": "the deciding statement"}}},
        "Usage": {"type": "object", "properties": usage_props},
        "TenantUsage": {"type": "object", "properties": tenant_usage},
        "Backend": {"type": "object", "required": ["name", "kind", "default", "up"], "properties": {
            "name": s("string"), "kind": {"type": "string", "enum": ["local", "s3", "memory"]},
            "default": s("boolean"), "up": s("boolean")}},
        "GcLease": {"type": "object", "properties": {
            "owner": s("string"), "acquired_at": s("integer"), "expires_at": s("integer")}},
        "GcStatus": {"type": "object", "properties": {
            "enabled": s("boolean"), "interval_secs": s("number"), "grace_secs": s("number"),
            "lease": {"oneOf": [schema("GcLease"), {"type": "null"}]},
            "last_success": {"type": ["integer", "null"], "description": "Unix seconds of this gateway's last successful run"},
            "runs_ok": s("integer"), "runs_error": s("integer"), "runs_busy": s("integer"),
            "running": {"type": "boolean", "description": "a run started through the API is going on here"},
            "last_run": {"oneOf": [schema("GcRun"), {"type": "null"}]}}},
        "GcRun": {"type": "object", "required": ["dry_run", "started_at", "result", "bytes_reclaimed", "summary", "report"], "properties": {
            "dry_run": s("boolean"), "started_at": {"type": "integer", "description": "Unix milliseconds"},
            "result": {"type": "string", "enum": ["ok", "error"]}, "error": {"type": ["string", "null"]},
            "bytes_reclaimed": s("integer"), "summary": s("string"),
            "report": {"type": "object", "description": "every counter of the run (dooz gc --json)"}}},
        "GcStarted": {"type": "object", "properties": {"started": s("boolean"), "dry_run": s("boolean")}},
    });
    // A second literal: one json! of them all passes the macro recursion limit.
    if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), history_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (schemas.as_object_mut(), limit_schemas()) {
        all.extend(more);
    }
    schemas
}

/// Throttling: the defaults and the overrides of `dooz admin limits`.
fn limit_schemas() -> Value {
    let requests =
        json!({"type": "string", "description": "requests per period, e.g. 200/s or 6000/min"});
    let bytes = json!({"type": "string", "description": "bytes per second, e.g. 50MiB/s"});
    let setting = |rate: &Value| {
        let d = format!(
            "{}; or unlimited; or default (back to [limits])",
            rate["description"].as_str().unwrap_or_default()
        );
        json!({"type": "string", "description": d})
    };
    json!({
        "ScopeLimits": {"type": "object", "description": "a limit left out is no limit", "properties": {
            "requests": requests, "ingress": bytes, "egress": bytes}},
        "Limits": {"type": "object", "required": ["defaults", "overrides"], "properties": {
            "defaults": {"type": "object", "required": ["global", "tenant", "key", "bucket"], "properties": {
                "global": schema("ScopeLimits"), "tenant": schema("ScopeLimits"),
                "key": schema("ScopeLimits"), "bucket": schema("ScopeLimits")}},
            "overrides": list("LimitOverride")}},
        "LimitOverride": {"type": "object", "required": ["scope", "subject", "override"], "properties": {
            "scope": {"type": "string", "enum": ["tenant", "key", "bucket"]},
            "subject": {"type": "string", "description": "tenant id, access key or bucket name"},
            "name": {"type": "string", "description": "the tenant's name"},
            "override": {"type": "object", "description": "a field left out follows [limits]", "properties": {
                "requests": setting(&requests), "ingress": setting(&bytes), "egress": setting(&bytes)}}}},
        "LimitChange": {"type": "object", "additionalProperties": false, "description": "the fields given replace the stored ones", "properties": {
            "requests": setting(&requests), "ingress": setting(&bytes), "egress": setting(&bytes)}},
    })
}

/// Point-in-time listing and restore, lifecycle status.
fn history_schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    json!({
        "ListedObject": {"type": "object", "required": ["key", "size", "etag", "last_modified", "version_id"], "properties": {
            "key": s("string"), "size": {"type": "integer", "minimum": 0}, "etag": s("string"),
            "last_modified": {"type": "string", "format": "date-time"}, "version_id": s("string")}},
        "ObjectListing": {"type": "object", "required": ["bucket", "at", "objects"], "properties": {
            "bucket": s("string"), "at": {"type": "string", "description": "RFC 3339, or now"},
            "objects": list("ListedObject")}},
        "RestoreRequest": {"type": "object", "required": ["at"], "additionalProperties": false, "properties": {
            "at": {"type": "string", "format": "date-time"},
            "prefix": {"type": "string", "default": ""},
            "dry_run": {"type": "boolean", "default": false}}},
        "RestoreResult": {"type": "object", "required": ["bucket", "at", "prefix", "dry_run", "actions"], "properties": {
            "bucket": s("string"), "at": s("string"), "prefix": s("string"), "dry_run": s("boolean"),
            "keys_scanned": {"type": "integer", "minimum": 0}, "restored": {"type": "integer", "minimum": 0},
            "deleted": {"type": "integer", "minimum": 0}, "unchanged": {"type": "integer", "minimum": 0},
            "restored_bytes": {"type": "integer", "minimum": 0},
            "actions": {"type": "array", "items": {"type": "object", "required": ["action", "key"], "properties": {
                "action": {"type": "string", "enum": ["restore", "delete"]}, "key": s("string"),
                "from_version": s("string"), "size": s("integer"),
                "new_version": {"type": ["string", "null"]}, "marker_version": {"type": ["string", "null"]}}}}}},
        "LifecycleStatus": {"type": "object", "required": ["bucket", "rules", "pass_in_progress"], "properties": {
            "bucket": s("string"), "rules": {"type": "integer", "minimum": 0},
            "last_finished": {"type": ["string", "null"], "format": "date-time"},
            "last_pass": {"type": ["object", "null"], "description": "the last finished pass's counts (dooz lifecycle run --json)"},
            "pass_in_progress": s("boolean"),
            "pass_started": {"type": ["string", "null"], "format": "date-time"},
            "cursor": {"type": ["string", "null"], "description": "the last key the unfinished pass fully handled"}}},
    })
}

/// The document.
pub fn document() -> Value {
    let no_params = json!([]);
    let mut gc_run_responses = responses(
        ("200", "the run's report (wait=true)", schema("GcRun")),
        &[(
            "409",
            "another collector holds the lease, or an API run is going on",
        )],
    );
    gc_run_responses["202"] = answer("started in the background", schema("GcStarted"));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Dooz admin API",
            "version": "1",
            "description": "Tenants, users, buckets (point-in-time listing and restore), usage, backends, lifecycle passes and the collector of a Dooz gateway. Every call needs `Authorization: Bearer <[admin] token>` and is recorded in the audit log. `dooz admin --endpoint URL --token T` uses it."
        },
        "servers": [{"url": "/admin/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/openapi.json": {"get": op("openapi", "This document", no_params.clone(),
                responses(("200", "the OpenAPI document", json!({"type": "object"})), &[]))},
            "/tenants": {
                "get": op("listTenants", "List tenants", no_params.clone(),
                    responses(("200", "tenants", list("Tenant")), &[])),
                "post": op_with_body("createTenant", "Create a tenant with a fresh master key", "NewTenant",
                    responses(("201", "the tenant", schema("Tenant")), &[("400", "bad name, provider or cipher"), ("409", "a tenant of that name exists")])),
            },
            "/users": {
                "get": op("listUsers", "List users (never their secrets)", json!([tenant_param()]),
                    responses(("200", "users", list("User")), &[("404", "no such tenant")])),
                "post": op_with_body("createUser", "Create an access key; the answer carries its secret, once", "NewUserRequest",
                    responses(("201", "the user and its secret", schema("NewUser")), &[("400", "bad policy or keys"), ("404", "no such tenant"), ("409", "access key taken")])),
            },
            "/users/{access_key}": {
                "delete": op("deleteUser", "Delete an access key (gateways stop accepting it within 30 s)",
                    json!([path_param("access_key", "the access key")]),
                    responses(("200", "deleted", schema("Deleted")), &[("404", "no such user")])),
            },
            "/policies": {
                "get": op("listPolicies", "The policies a user can hold (fixed roles)", no_params.clone(),
                    responses(("200", "policies", list("Policy")), &[])),
            },
            "/tenants/{tenant}/policies": {
                "get": op("listTenantPolicies", "A tenant's named policies, and the built-in ones",
                    json!([path_param("tenant", "tenant name or id")]),
                    responses(("200", "policies", list("NamedPolicy")), &[("404", "no such tenant")])),
            },
            "/tenants/{tenant}/policies/{policy}": {
                "get": op("getTenantPolicy", "A policy's document",
                    json!([path_param("tenant", "tenant name or id"), path_param("policy", "policy name")]),
                    responses(("200", "the policy", schema("PolicyShown")), &[("404", "no such tenant or policy")])),
                "put": {"operationId": "putTenantPolicy", "summary": "Create or replace a tenant's named policy (checked first: 400 says where it is malformed)",
                    "parameters": [path_param("tenant", "tenant name or id"), path_param("policy", "policy name")],
                    "requestBody": body("PolicyDocument"),
                    "responses": responses(("200", "stored", schema("PolicyShown")), &[("400", "malformed policy or bad name"), ("404", "no such tenant")])},
                "delete": op("deleteTenantPolicy", "Delete a tenant's policy (409-free: refused with 400 while attached)",
                    json!([path_param("tenant", "tenant name or id"), path_param("policy", "policy name")]),
                    responses(("200", "deleted", schema("Deleted")), &[("400", "built-in, or still attached"), ("404", "no such tenant or policy")])),
            },
            "/users/{access_key}/policies": {
                "get": op("listUserPolicies", "The policies attached to a user",
                    json!([path_param("access_key", "the access key")]),
                    responses(("200", "policy names", json!({"type": "array", "items": {"type": "string"}})), &[("404", "no such user")])),
            },
            "/users/{access_key}/policies/{policy}": {
                "put": op("attachUserPolicy", "Attach a built-in or tenant policy to a user",
                    json!([path_param("access_key", "the access key"), path_param("policy", "policy name")]),
                    responses(("200", "attached", schema("Attachment")), &[("404", "no such user or policy")])),
                "delete": op("detachUserPolicy", "Detach a policy from a user",
                    json!([path_param("access_key", "the access key"), path_param("policy", "policy name")]),
                    responses(("200", "detached", schema("Attachment")), &[("404", "no such user, or not attached")])),
            },
            "/users/{access_key}/can": {
                "get": op("userCan", "Whether a key may do an action on a resource, and the deciding statement",
                    json!([path_param("access_key", "the access key"),
                           {"name": "action", "in": "query", "required": true, "description": "e.g. s3:GetObject", "schema": {"type": "string"}},
                           {"name": "resource", "in": "query", "required": true, "description": "arn:aws:s3:::bucket/key", "schema": {"type": "string"}},
                           {"name": "context", "in": "query", "required": false, "description": "an extra condition key as KEY=VALUE, e.g. aws:SourceIp=10.0.0.7 (repeatable)", "schema": {"type": "array", "items": {"type": "string"}}, "explode": true}]),
                    responses(("200", "the decision", schema("CanAnswer")), &[("400", "action or resource missing, or a context pair malformed"), ("404", "no such user")])),
            },
            "/buckets": {
                "get": op("listBuckets", "List buckets", json!([tenant_param()]),
                    responses(("200", "buckets", list("Bucket")), &[("404", "no such tenant")])),
                "post": op_with_body("createBucket", "Create a bucket owned by a tenant", "NewBucket",
                    responses(("201", "the bucket", schema("Bucket")), &[("400", "invalid bucket name"), ("404", "no such tenant"), ("409", "the bucket exists")])),
            },
            "/buckets/{name}": {
                "delete": op("deleteBucket", "Delete a bucket: empty, or with force every version, delete marker and upload first; Object Lock stops it before anything is deleted",
                    json!([path_param("name", "the bucket"), flag("force", "delete the bucket's contents first")]),
                    responses(("200", "deleted", schema("BucketDeleted")), &[("404", "no such bucket"), ("409", "not empty, or holds locked versions")])),
            },
            "/buckets/{name}/objects": {
                "get": op("listObjects", "The bucket's current objects, or (versioned buckets) those it held at an instant",
                    json!([path_param("name", "the bucket"),
                           {"name": "at", "in": "query", "required": false, "description": "RFC 3339 instant [default: now]", "schema": {"type": "string", "format": "date-time"}},
                           {"name": "prefix", "in": "query", "required": false, "description": "only keys starting with it", "schema": {"type": "string"}}]),
                    responses(("200", "the listing", schema("ObjectListing")), &[("400", "not an RFC 3339 instant, or the history cannot tell (unversioned bucket, versions expired since)"), ("404", "no such bucket")])),
            },
            "/buckets/{name}/restore": {
                "post": op_with_body("restoreBucket", "Make the bucket's state at an instant current again (new versions that reference the old data; nothing copied)", "RestoreRequest",
                    responses(("200", "what changed (or, dry, would)", schema("RestoreResult")), &[("400", "not an RFC 3339 instant, or the history cannot tell"), ("404", "no such bucket"), ("409", "Object Lock or the bucket's state stops it")])),
            },
            "/lifecycle": {
                "get": op("lifecycleStatus", "Each bucket with lifecycle rules: its last finished pass and backlog", no_params.clone(),
                    responses(("200", "buckets", list("LifecycleStatus")), &[])),
            },
            "/usage": {
                "get": op("usage", "Logical vs stored bytes, and space per tenant", json!([tenant_param()]),
                    responses(("200", "usage", schema("Usage")), &[("404", "no such tenant")])),
            },
            "/backends": {
                "get": op("listBackends", "Configured backends and whether each answers", no_params.clone(),
                    responses(("200", "backends", list("Backend")), &[])),
            },
            "/limits": {
                "get": op("listLimits", "The [limits] defaults of this gateway and every tenant's, key's and bucket's own limits", no_params.clone(),
                    responses(("200", "limits", schema("Limits")), &[])),
            },
            "/limits/{scope}/{subject}": {
                "put": {"operationId": "setLimit", "summary": "Give a tenant, access key or bucket limits of its own (fields given replace the stored ones; gateways take it up within limits.refresh_secs)",
                    "parameters": [path_param("scope", "tenant, key or bucket"), path_param("subject", "tenant name or id, access key, or bucket name")],
                    "requestBody": body("LimitChange"),
                    "responses": responses(("200", "the override now", schema("LimitOverride")), &[("400", "bad scope, rate, or nothing to change"), ("404", "no such tenant, key or bucket")])},
                "delete": op("unsetLimit", "Remove a tenant's, key's or bucket's own limits",
                    json!([path_param("scope", "tenant, key or bucket"), path_param("subject", "tenant name or id, access key, or bucket name")]),
                    responses(("200", "removed", schema("Deleted")), &[("400", "bad scope"), ("404", "it has no limits of its own")])),
            },
            "/gc": {
                "get": op("gcStatus", "The collector: settings, lease holder, last success, runs", no_params,
                    responses(("200", "status", schema("GcStatus")), &[])),
            },
            "/gc/run": {
                "post": op("gcRun", "Run the collector once in this gateway",
                    json!([flag("dry_run", "report what a run would reclaim; change nothing"),
                           flag("wait", "answer when the run ends, with its report (else 202 at once)")]),
                    gc_run_responses),
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}
