"""Versioning, delete markers, Object Lock and point-in-time restore through
real clients: boto3 (version ids, markers, ListObjectVersions paging with
encoding-type=url, Object Lock), aws cli (s3api versioning and retention
calls), rclone (--s3-versions, --s3-version-at) and the `dooz admin bucket
restore` / `ls --at` commands on the same deployment."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from botocore.exceptions import ClientError


def error(fn, **kwargs) -> tuple[str, int, dict]:
    """(S3 error code, HTTP status, response headers) of a call that must fail."""
    try:
        fn(**kwargs)
    except ClientError as e:
        meta = e.response["ResponseMetadata"]
        return e.response["Error"].get("Code", ""), meta["HTTPStatusCode"], meta.get("HTTPHeaders", {})
    pytest.fail(f"[boto3] {fn.__name__} succeeded; an error was expected")


def marked(evidence, rng, size: int = 20_000) -> bytes:
    """Random bytes with a fresh marker the backend must never hold in plaintext."""
    m = evidence.new_marker().encode()
    data = rng.randbytes(size)
    data = data[: size // 2] + m + data[size // 2 :]
    evidence.known(data)
    return data


def versions(s3, bucket: str, prefix: str = "", page: int = 1000) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) in listing order, paging
    with the key and version-id markers."""
    out = []
    kwargs = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page}
    while True:
        r = s3.list_object_versions(**kwargs)
        page_entries = [(v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"]) for v in r.get("Versions", [])]
        page_entries += [(m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"]) for m in r.get("DeleteMarkers", [])]
        assert len(page_entries) <= page, "[boto3] a page holds at most MaxKeys entries"
        # Two lists in the XML; one order: key, then newest first.
        page_entries.sort(key=lambda e: (e[0], -e[4].timestamp(), 0 if e[2] else 1))
        out += [e[:4] for e in page_entries]
        if not r["IsTruncated"]:
            return out
        kwargs["KeyMarker"] = r["NextKeyMarker"]
        kwargs["VersionIdMarker"] = r["NextVersionIdMarker"]


def test_boto3_versions_and_delete_markers(s3, bucket, evidence, rng):
    """versioning: version ids, delete markers (404/405), ListObjectVersions, suspend"""
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"null version")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    bodies = [marked(evidence, rng) for _ in range(3)]
    ids = [s3.put_object(Bucket=bucket, Key="doc", Body=b)["VersionId"] for b in bodies]
    assert len(set(ids)) == 3 and "null" not in ids
    for v, b in zip(ids, bodies):
        assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v)["Body"].read() == b, "[boto3] get by version"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId="null")["Body"].read() == b"null version"

    d = s3.delete_object(Bucket=bucket, Key="doc")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    code, status, headers = error(s3.get_object, Bucket=bucket, Key="doc")
    assert (code, status, headers.get("x-amz-delete-marker")) == ("NoSuchKey", 404, "true")
    _, status, headers = error(s3.get_object, Bucket=bucket, Key="doc", VersionId=marker)
    assert (status, headers.get("x-amz-delete-marker")) == (405, "true")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0, "[boto3] a deleted key is not listed"

    listed = versions(s3, bucket)
    assert listed == [
        ("doc", marker, True, True),
        ("doc", ids[2], False, False),
        ("doc", ids[1], False, False),
        ("doc", ids[0], False, False),
        ("doc", "null", False, False),
    ], f"[boto3] list_object_versions: {listed}"

    # Removing the marker by its version id brings the object back.
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == bodies[2]
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=ids[1])
    assert [e[1] for e in versions(s3, bucket)] == [ids[2], ids[0], "null"]

    # Paging with markers across many versions, keys with awkward names.
    keys = ["a b+c/é 1", "a b+c/é 2", "plain"]
    for k in keys:
        for n in range(7):
            s3.put_object(Bucket=bucket, Key=k, Body=f"{k}#{n}".encode())
    full = versions(s3, bucket, page=1000)
    assert len(full) == 3 + 21
    for page in (1, 4):
        assert versions(s3, bucket, page=page) == full, f"[boto3] paging by {page}"
    # boto3 asks for encoding-type=url and decodes the keys itself.
    r = s3.list_object_versions(Bucket=bucket, Prefix="a", Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["a b+c/"]
    assert "Versions" not in r, "[boto3] versions under a common prefix are rolled up"
    r = s3.list_object_versions(Bucket=bucket, Prefix="a b+c/", Delimiter="/")
    assert "CommonPrefixes" not in r and len(r["Versions"]) == 14, "[boto3] no delimiter after the prefix"
    r = s3.list_object_versions(Bucket=bucket, Prefix="a b+c/é")
    assert sorted({v["Key"] for v in r["Versions"]}) == ["a b+c/é 1", "a b+c/é 2"]

    # Suspended: the null version is replaced, older versions stay.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="doc", Body=b"suspended")["VersionId"] == "null"
    doc = [e for e in versions(s3, bucket) if e[0] == "doc"]
    assert [e[1] for e in doc] == ["null", ids[2], ids[0]], f"[boto3] suspended: {doc}"
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=ids[0])["Body"].read() == bodies[0]


def test_boto3_object_lock(s3, deployment, new_bucket, evidence, rng):
    """Object Lock: COMPLIANCE, GOVERNANCE with bypass, legal hold, default retention"""
    b = new_bucket(create=False)
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    assert s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    body = marked(evidence, rng)
    v = s3.put_object(Bucket=b, Key="ledger", Body=body, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)["VersionId"]
    head = s3.head_object(Bucket=b, Key="ledger")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    for bypass in (False, True):
        code, status, _ = error(s3.delete_object, Bucket=b, Key="ledger", VersionId=v, BypassGovernanceRetention=bypass)
        assert (code, status) == ("AccessDenied", 403), "[boto3] COMPLIANCE must stop the root admin"
    code, _, _ = error(
        s3.put_object_retention, Bucket=b, Key="ledger", VersionId=v, BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until - datetime.timedelta(minutes=30)},
    )
    assert code == "AccessDenied"

    g = s3.put_object(Bucket=b, Key="draft", Body=b"draft", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)["VersionId"]
    assert error(s3.delete_object, Bucket=b, Key="draft", VersionId=g)[0] == "AccessDenied"
    ro = deployment.boto3_client(deployment.readonly_user)
    assert error(ro.delete_object, Bucket=b, Key="draft", VersionId=g, BypassGovernanceRetention=True)[0] == "AccessDenied"
    s3.delete_object(Bucket=b, Key="draft", VersionId=g, BypassGovernanceRetention=True)

    s3.put_object_legal_hold(Bucket=b, Key="ledger", VersionId=v, LegalHold={"Status": "ON"})
    assert s3.get_object_legal_hold(Bucket=b, Key="ledger", VersionId=v)["LegalHold"]["Status"] == "ON"
    s3.put_object_lock_configuration(
        Bucket=b,
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Years": 1}}},
    )
    rule = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert rule == {"Mode": "GOVERNANCE", "Years": 1}
    s3.put_object(Bucket=b, Key="defaulted", Body=b"d")
    r = s3.get_object_retention(Bucket=b, Key="defaulted")["Retention"]
    assert r["Mode"] == "GOVERNANCE" and r["RetainUntilDate"] > until + datetime.timedelta(days=364)
    # Through every path, the data stays: S3 DeleteBucket and the admin CLI.
    assert error(s3.delete_bucket, Bucket=b)[0] == "BucketNotEmpty"
    p = deployment.dooz(["admin", "bucket", "delete", b, "--force"], step="admin bucket delete --force", expect_rc="nonzero")
    assert b"under Object Lock; nothing was deleted" in p.stderr, p.stderr
    assert s3.get_object(Bucket=b, Key="ledger", VersionId=v)["Body"].read() == body

    plain = new_bucket()
    code, _, _ = error(s3.put_object, Bucket=plain, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)
    assert code == "InvalidRequest", "[boto3] lock headers on a bucket without Object Lock"


def test_awscli_versioning_and_retention(aws, new_bucket, evidence, rng, tmp_path):
    """s3api put-bucket-versioning, list-object-versions, get-object --version-id, retention"""
    b = new_bucket(create=False)
    aws("s3api", "create-bucket", "--bucket", b, "--object-lock-enabled-for-bucket", step="create-bucket --object-lock-enabled-for-bucket")
    out = json.loads(aws("s3api", "get-bucket-versioning", "--bucket", b, step="get-bucket-versioning").stdout)
    assert out["Status"] == "Enabled"
    f1, f2 = tmp_path / "one", tmp_path / "two"
    f1.write_bytes(marked(evidence, rng))
    f2.write_bytes(marked(evidence, rng))
    v1 = json.loads(aws("s3api", "put-object", "--bucket", b, "--key", "f", "--body", str(f1), step="put-object v1").stdout)["VersionId"]
    v2 = json.loads(aws("s3api", "put-object", "--bucket", b, "--key", "f", "--body", str(f2), step="put-object v2").stdout)["VersionId"]
    listed = json.loads(aws("s3api", "list-object-versions", "--bucket", b, step="list-object-versions").stdout)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [(v2, True), (v1, False)]
    got = tmp_path / "got"
    aws("s3api", "get-object", "--bucket", b, "--key", "f", "--version-id", v1, str(got), step="get-object --version-id")
    assert got.read_bytes() == f1.read_bytes()

    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    aws(
        "s3api", "put-object-retention", "--bucket", b, "--key", "f", "--version-id", v1,
        "--retention", json.dumps({"Mode": "COMPLIANCE", "RetainUntilDate": until}),
        step="put-object-retention COMPLIANCE",
    )
    r = json.loads(aws("s3api", "get-object-retention", "--bucket", b, "--key", "f", "--version-id", v1, step="get-object-retention").stdout)
    assert r["Retention"]["Mode"] == "COMPLIANCE"
    p = aws("s3api", "delete-object", "--bucket", b, "--key", "f", "--version-id", v1, "--bypass-governance-retention",
            step="delete-object of a COMPLIANCE version", expect_rc="nonzero")
    assert b"AccessDenied" in p.stderr, p.stderr
    d = json.loads(aws("s3api", "delete-object", "--bucket", b, "--key", "f", step="delete-object (marker)").stdout)
    assert d["DeleteMarker"] is True
    p = aws("s3", "ls", f"s3://{b}/", step="s3 ls after the marker")
    assert b" f\n" not in p.stdout


def test_rclone_versions_and_version_at(rclone, s3, bucket, evidence, rng, tmp_path):
    """rclone --s3-versions lists old versions; --s3-version-at reads them"""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    one, two = marked(evidence, rng), marked(evidence, rng)
    src = tmp_path / "f.bin"
    src.write_bytes(one)
    rclone("copyto", str(src), f"dooz:{bucket}/dir/f.bin", step="copyto v1")
    time.sleep(1.2)
    between = datetime.datetime.now()
    time.sleep(1.2)
    src.write_bytes(two)
    rclone("copyto", str(src), f"dooz:{bucket}/dir/f.bin", step="copyto v2")

    names = rclone("lsf", "-R", "--s3-versions", f"dooz:{bucket}", step="lsf --s3-versions").stdout.decode().split()
    old = [n for n in names if n.startswith("dir/f-v") and n.endswith(".bin")]
    assert "dir/f.bin" in names and len(old) == 1, f"[rclone] --s3-versions listing: {names}"
    assert rclone("cat", "--s3-versions", f"dooz:{bucket}/{old[0]}", step="cat an old version by name").stdout == one
    at = between.strftime("%Y-%m-%d %H:%M:%S")
    assert rclone("cat", "--s3-version-at", at, f"dooz:{bucket}/dir/f.bin", step="cat --s3-version-at").stdout == one
    assert rclone("cat", f"dooz:{bucket}/dir/f.bin", step="cat current").stdout == two
    # rclone lists directories and files in the order its walk finds them.
    listing = sorted(rclone("lsf", "-R", "--s3-version-at", at, f"dooz:{bucket}", step="lsf --s3-version-at").stdout.decode().split())
    assert listing == ["dir/", "dir/f.bin"], f"[rclone] --s3-version-at listing: {listing}"


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_point_in_time_restore_cli(deployment, s3, bucket, evidence, rng):
    """dooz admin bucket restore --at / ls --at, checked object by object"""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    then = {f"k{i}": marked(evidence, rng, 5000 + i) for i in range(6)}
    for k, body in then.items():
        s3.put_object(Bucket=bucket, Key=k, Body=body)
    time.sleep(0.05)
    t = rfc3339(datetime.datetime.now(datetime.timezone.utc))
    time.sleep(0.05)
    s3.put_object(Bucket=bucket, Key="k0", Body=b"overwritten")
    s3.delete_object(Bucket=bucket, Key="k1")
    s3.put_object(Bucket=bucket, Key="late", Body=b"created later")

    p = deployment.dooz(["admin", "bucket", "ls", bucket, "--at", t, "--json"], step="admin bucket ls --at")
    listed = {e["key"]: e["size"] for e in json.loads(p.stdout.decode().strip().splitlines()[-1])}
    assert listed == {k: len(v) for k, v in then.items()}, f"[dooz] ls --at: {listed}"

    p = deployment.dooz(["admin", "bucket", "restore", bucket, "--at", t, "--json"], step="admin bucket restore")
    report = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert (report["restored"], report["deleted"], report["unchanged"]) == (2, 1, 4), report
    for k, body in then.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == body, f"[dooz] restore: {k} differs"
    assert error(s3.get_object, Bucket=bucket, Key="late")[0] == "NoSuchKey"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == sorted(then), keys

    p = deployment.dooz(["admin", "bucket", "restore", bucket, "--at", t, "--json"], step="admin bucket restore again")
    again = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert (again["restored"], again["deleted"]) == (0, 0), "[dooz] a second restore changes nothing"

    early = rfc3339(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    p = deployment.dooz(["admin", "bucket", "restore", bucket, "--at", early], step="restore before the bucket existed", expect_rc="nonzero")
    assert b"cannot be shown or restored" in p.stderr, p.stderr
