"""Lifecycle rules through boto3 and `dooz lifecycle`: the configuration's
round trip and S3's errors, x-amz-expiration, and passes of the worker on
unversioned and versioned buckets where every rule and filter kind selects
exactly its objects; Object Lock keeps locked versions; aborted uploads'
bytes leave the backend after `dooz gc`. The deployments run with the
test-only `lifecycle.debug_day_secs = 1` (a lifecycle day is one second)
and without background passes."""

from __future__ import annotations

import datetime
import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from helpers import md5_b64

# Longer than any test: a rule with this many (one-second) days never fires here.
NEVER = 1_000_000


def error(fn, **kwargs) -> tuple[str, int]:
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"].get("Code", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    pytest.fail(f"[boto3] {fn.__name__} succeeded; an error was expected")


def marked(evidence, rng, size: int = 4_000) -> bytes:
    """Exactly `size` random bytes (filters compare sizes) around a fresh marker."""
    m = evidence.new_marker().encode()
    head = (size - len(m)) // 2
    data = rng.randbytes(head) + m + rng.randbytes(size - len(m) - head)
    assert len(data) == size
    evidence.known(data)
    return data


def put_rules(s3, bucket: str, rules: list[dict]) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def expire(rule_id: str, days: int = 1, **filt) -> dict:
    return {"ID": rule_id, "Status": "Enabled", "Filter": filt, "Expiration": {"Days": days}}


def lifecycle_run(deployment, bucket: str | None, *extra: str, env=None) -> dict:
    args = ["lifecycle", "run", "--json", *extra]
    if bucket:
        args += ["--bucket", bucket]
    p = deployment.dooz(args, step="lifecycle run " + " ".join(extra), env=env)
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def keys(s3, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def versions(s3, bucket: str) -> set[tuple[str, str, bool]]:
    """(key, version id, is delete marker) of every version."""
    r = s3.list_object_versions(Bucket=bucket)
    out = {(v["Key"], v["VersionId"], False) for v in r.get("Versions", [])}
    return out | {(m["Key"], m["VersionId"], True) for m in r.get("DeleteMarkers", [])}


def raw_put_lifecycle(deployment, bucket: str, body: bytes) -> tuple[int, str]:
    """PutBucketLifecycleConfiguration with an XML body boto3 would not build."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.httpsession import URLLib3Session

    req = AWSRequest(method="PUT", url=f"{deployment.endpoint}/{bucket}?lifecycle", data=body, headers={"Content-MD5": md5_b64(body)})
    u = deployment.root_user
    S3SigV4Auth(Credentials(u.access_key, u.secret_key), "s3", "us-east-1").add_auth(req)
    r = URLLib3Session().send(req.prepare())
    m = re.search(rb"<Code>([^<]*)</Code>", r.content)
    return r.status_code, m.group(1).decode() if m else ""


def test_boto3_lifecycle_configuration(s3, deployment, bucket, evidence, rng):
    """lifecycle: configuration round trip, S3's errors (nothing stored), x-amz-expiration on PUT/GET/HEAD"""
    assert error(s3.get_bucket_lifecycle_configuration, Bucket=bucket) == ("NoSuchLifecycleConfiguration", 404)
    midnight = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    rules = [
        expire("logs", 30, Prefix="logs/"),
        {"ID": "tagged", "Status": "Enabled", "Filter": {"Tag": {"Key": "class", "Value": "temp"}}, "Expiration": {"Days": 7}},
        {
            "ID": "and",
            "Status": "Disabled",
            "Filter": {"And": {"Prefix": "big/", "Tags": [{"Key": "a", "Value": "1"}], "ObjectSizeGreaterThan": 100, "ObjectSizeLessThan": 1000}},
            "Expiration": {"Date": midnight},
        },
        {"ID": "size", "Status": "Enabled", "Filter": {"ObjectSizeGreaterThan": 5}, "NoncurrentVersionExpiration": {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2}},
        {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": "up/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    ]
    put_rules(s3, bucket, rules)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == [r["ID"] for r in rules]
    by_id = {r["ID"]: r for r in got}
    assert by_id["logs"]["Filter"] == {"Prefix": "logs/"} and by_id["logs"]["Expiration"] == {"Days": 30}
    assert by_id["tagged"]["Filter"] == {"Tag": {"Key": "class", "Value": "temp"}}
    assert by_id["and"]["Status"] == "Disabled" and by_id["and"]["Expiration"]["Date"] == midnight
    assert by_id["and"]["Filter"]["And"]["ObjectSizeLessThan"] == 1000
    assert by_id["size"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2}
    assert by_id["markers"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert by_id["uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}

    # Refused configurations, each with S3's code; the stored one stays.
    bad = {
        "transition": ([{"ID": "t", "Status": "Enabled", "Filter": {}, "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}], ("NotImplemented", 501)),
        "zero days": ([expire("z", 0)], ("InvalidArgument", 400)),
        "negative days": ([expire("n", -1)], ("InvalidArgument", 400)),
        "duplicate ids": ([expire("d"), expire("d")], ("InvalidArgument", 400)),
        "no action": ([{"ID": "x", "Status": "Enabled", "Filter": {}}], ("InvalidRequest", 400)),
        "date not midnight": ([{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Date": midnight + datetime.timedelta(hours=1)}}], ("InvalidArgument", 400)),
        "days and date": ([{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1, "Date": midnight}}], ("MalformedXML", 400)),
        "marker and days": ([{"ID": "x", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1, "ExpiredObjectDeleteMarker": True}}], ("MalformedXML", 400)),
        "abort with tags": ([{"ID": "x", "Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}], ("InvalidRequest", 400)),
        "status": ([{"ID": "x", "Status": "Sometimes", "Filter": {}, "Expiration": {"Days": 1}}], ("MalformedXML", 400)),
        "long id": ([expire("i" * 256)], ("InvalidArgument", 400)),
        "newer 0": ([{"ID": "x", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 0}}], ("InvalidArgument", 400)),
        "sizes crossed": ([{"ID": "x", "Status": "Enabled", "Filter": {"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 5}}, "Expiration": {"Days": 1}}], ("InvalidArgument", 400)),
        "duplicate tag keys": ([{"ID": "x", "Status": "Enabled", "Filter": {"And": {"Tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}}, "Expiration": {"Days": 1}}], ("InvalidRequest", 400)),
        "1001 rules": ([expire(f"r{i}") for i in range(1001)], ("InvalidArgument", 400)),
    }
    for what, (rs, expected) in bad.items():
        got_err = error(s3.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration={"Rules": rs})
        assert got_err == expected, f"[boto3] {what}: {got_err}"
    two_conditions = b'<LifecycleConfiguration><Rule><ID>x</ID><Status>Enabled</Status><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>'
    assert raw_put_lifecycle(deployment, bucket, two_conditions) == (400, "MalformedXML")
    assert raw_put_lifecycle(deployment, bucket, b"<LifecycleConfiguration><Rule>") == (400, "MalformedXML")
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == [r["ID"] for r in rules]
    ro = deployment.boto3_client(deployment.readonly_user)
    assert error(ro.put_bucket_lifecycle_configuration, Bucket=bucket, LifecycleConfiguration={"Rules": [expire("ro")]})[0] == "AccessDenied"

    # 1,000 rules are allowed.
    put_rules(s3, bucket, [expire(f"r{i}", NEVER, Prefix=f"p{i}/") for i in range(1000)])
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 1000

    # x-amz-expiration names the rule and the date of objects a rule expires.
    put_rules(s3, bucket, [expire("logs-rule", NEVER, Prefix="logs/"), expire("never", NEVER * 2, Prefix="")])
    before = datetime.datetime.now(datetime.timezone.utc)
    r = s3.put_object(Bucket=bucket, Key="logs/a", Body=marked(evidence, rng))
    assert 'rule-id="logs-rule"' in r["Expiration"], r["Expiration"]
    when = re.search(r'expiry-date="([^"]+)"', r["Expiration"]).group(1)
    expiry = datetime.datetime.strptime(when, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=datetime.timezone.utc)
    assert expiry >= before + datetime.timedelta(seconds=NEVER - 2), f"one-second days: {when}"
    assert 'rule-id="logs-rule"' in s3.get_object(Bucket=bucket, Key="logs/a")["Expiration"]
    assert 'rule-id="logs-rule"' in s3.head_object(Bucket=bucket, Key="logs/a")["Expiration"]
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    assert 'rule-id="never"' in s3.head_object(Bucket=bucket, Key="other")["Expiration"]
    s3.delete_bucket_lifecycle(Bucket=bucket)
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="logs/a")
    assert error(s3.get_bucket_lifecycle_configuration, Bucket=bucket) == ("NoSuchLifecycleConfiguration", 404)


def test_lifecycle_unversioned_rules_select_exactly(s3, deployment, bucket, evidence, rng):
    """lifecycle run: prefix, tag, And/size, Date, disabled and not-yet-due rules on an unversioned bucket; dry run; no repeats; uploads aborted and their bytes gone after gc"""
    today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    put_rules(
        s3,
        bucket,
        [
            expire("prefix", Prefix="logs/"),
            expire("tag", Tag={"Key": "class", "Value": "temp"}),
            expire("and", And={"Prefix": "big/", "ObjectSizeGreaterThan": 1000, "ObjectSizeLessThan": 5000}),
            expire("and-tags", And={"Prefix": "t/", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}),
            expire("later", NEVER, Prefix="keep/"),
            {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "off/"}, "Expiration": {"Days": 1}},
            {"ID": "date", "Status": "Enabled", "Filter": {"Prefix": "date/"}, "Expiration": {"Date": today}},
            {"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": "up/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ],
    )
    objects = {
        "logs/a": ({}, 100, True),
        "logs/b/c": ({}, 100, True),
        "logsX": ({}, 100, False),
        "t1": ({"class": "temp"}, 100, True),
        "t2": ({"class": "keep"}, 100, False),
        "big/mid": ({}, 2000, True),
        "big/small": ({}, 1000, False),
        "big/huge": ({}, 5000, False),
        "t/both": ({"a": "1", "b": "2", "c": "3"}, 100, True),
        "t/one": ({"a": "1"}, 100, False),
        "keep/x": ({}, 100, False),
        "off/x": ({}, 100, False),
        "date/x": ({}, 100, True),
    }
    for key, (tags, size, _) in objects.items():
        tagging = "&".join(f"{k}={v}" for k, v in tags.items())
        s3.put_object(Bucket=bucket, Key=key, Body=marked(evidence, rng, size), Tagging=tagging)
    # Clear earlier scenarios' garbage first, so the space this test frees is its own.
    # (No grace for readers and no clock skew: this one process runs on one clock.)
    no_grace = dict(deployment.env, DOOZ_GC__GRACE="0", DOOZ_GC__CLOCK_SKEW="0")
    deployment.dooz(["gc"], env=no_grace, step="gc before")
    part = marked(evidence, rng, 3 << 20)
    up = s3.create_multipart_upload(Bucket=bucket, Key="up/abandoned")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="up/abandoned", UploadId=up, PartNumber=1, Body=part)
    kept_up = s3.create_multipart_upload(Bucket=bucket, Key="elsewhere/open")["UploadId"]
    time.sleep(1.5)  # older than one (one-second) day
    packs_before = deployment.pack_bytes()

    expected = {k for k, (_, _, gone) in objects.items() if gone}
    dry = lifecycle_run(deployment, bucket, "--dry-run")
    assert (dry["dry_run"], dry["objects_expired"], dry["uploads_aborted"]) == (True, len(expected), 1), dry
    assert keys(s3, bucket) == set(objects), "[dooz] a dry run changes nothing"

    r = lifecycle_run(deployment, bucket)
    assert r["error"] is None and r["objects_expired"] == len(expected), r
    assert r["delete_markers_added"] == 0 and r["uploads_aborted"] == 1, r
    assert r["bytes_released"] >= len(part), r
    assert keys(s3, bucket) == set(objects) - expected, f"[dooz] lifecycle run left {keys(s3, bucket)}"
    uploads = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert uploads == [kept_up]
    assert error(s3.list_parts, Bucket=bucket, Key="up/abandoned", UploadId=up)[0] == "NoSuchUpload"

    again = lifecycle_run(deployment, bucket)
    assert again["objects_expired"] == 0 and again["uploads_aborted"] == 0, f"[dooz] a second pass repeated actions: {again}"

    status = json.loads(deployment.dooz(["lifecycle", "status", "--json"], step="lifecycle status").stdout)
    mine = [s for s in status if s["bucket"] == bucket]
    assert len(mine) == 1 and mine[0]["rules"] == 8 and mine[0]["pass_in_progress"] is False, mine
    assert mine[0]["last_finished"] is not None and mine[0]["last_pass"]["objects_expired"] == 0

    # The aborted upload's part leaves the backend at the next collection
    # (once the gateway's upload lease, renewed every second, has published
    # a low-water mark past the abort).
    time.sleep(2)
    gc = deployment.dooz(["gc", "--json"], env=no_grace, step="gc after").stdout.decode()
    freed = packs_before - deployment.pack_bytes()
    assert freed >= len(part), f"[dooz gc] {freed} bytes freed, the aborted part alone had {len(part)}: {gc}"
    s3.abort_multipart_upload(Bucket=bucket, Key="elsewhere/open", UploadId=kept_up)


def test_lifecycle_versioned_rules_and_object_lock(s3, deployment, new_bucket, evidence, rng):
    """lifecycle run on versioned buckets: delete markers, NoncurrentDays with NewerNoncurrentVersions, ExpiredObjectDeleteMarker, locked versions kept, batches of two keys"""
    b = new_bucket()
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    put_rules(
        s3,
        b,
        [
            expire("current", Prefix="cur/"),
            {"ID": "keep-one", "Status": "Enabled", "Filter": {"Prefix": "nc/"}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
            {"ID": "all-old", "Status": "Enabled", "Filter": {"Prefix": "nca/"}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"ID": "late", "Status": "Enabled", "Filter": {"Prefix": "ncl/"}, "NoncurrentVersionExpiration": {"NoncurrentDays": NEVER}},
            {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "dm/"}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
        ],
    )
    put = lambda key: s3.put_object(Bucket=b, Key=key, Body=marked(evidence, rng, 500))["VersionId"]  # noqa: E731
    cur = put("cur/k")
    nc = [put("nc/k") for _ in range(4)]
    nca = [put("nca/k") for _ in range(2)]
    ncl = [put("ncl/k") for _ in range(2)]
    lone = put("dm/lone")
    lone_marker = s3.delete_object(Bucket=b, Key="dm/lone")["VersionId"]
    s3.delete_object(Bucket=b, Key="dm/lone", VersionId=lone)
    covered = put("dm/covered")
    covered_marker = s3.delete_object(Bucket=b, Key="dm/covered")["VersionId"]
    other = put("other")
    before = versions(s3, b)
    time.sleep(1.5)

    # Small batches: the cursor moves (and is saved) every two keys.
    small = dict(deployment.env, DOOZ_LIFECYCLE__BATCH_SIZE="2")
    r = lifecycle_run(deployment, b, env=small)
    assert r["error"] is None, r
    assert (r["delete_markers_added"], r["noncurrent_versions_removed"], r["delete_markers_removed"], r["objects_expired"]) == (1, 3, 1, 0), r
    after = versions(s3, b)
    added = after - before
    assert len(added) == 1 and next(iter(added))[0] == "cur/k" and next(iter(added))[2], f"[dooz] a delete marker on cur/k: {added}"
    removed = before - after
    assert removed == {("nc/k", nc[0], False), ("nc/k", nc[1], False), ("nca/k", nca[0], False), ("dm/lone", lone_marker, True)}, removed
    assert ("cur/k", cur, False) in after and ("dm/covered", covered_marker, True) in after and ("dm/covered", covered, False) in after
    assert {("ncl/k", v, False) for v in ncl} <= after and ("other", other, False) in after
    again = lifecycle_run(deployment, b)
    assert again["delete_markers_added"] + again["noncurrent_versions_removed"] + again["delete_markers_removed"] == 0, again

    # Object Lock: a locked noncurrent version is selected but kept.
    locked = new_bucket(create=False)
    s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
    v1 = s3.put_object(Bucket=locked, Key="k", Body=marked(evidence, rng, 500), ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until)["VersionId"]
    v2 = s3.put_object(Bucket=locked, Key="k", Body=b"newer")["VersionId"]
    put_rules(s3, locked, [{"ID": "old", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}])
    time.sleep(1.5)
    r = lifecycle_run(deployment, locked)
    assert r["skipped_locked"] == 1 and r["noncurrent_versions_removed"] == 0, r
    assert {v for (_, v, _) in versions(s3, locked)} == {v1, v2}, "[dooz] Object Lock keeps the version"
    s3.delete_object(Bucket=locked, Key="k", VersionId=v1, BypassGovernanceRetention=True)


def test_lifecycle_kill_9_resumes_without_repeats(s3, deployment, new_bucket, evidence, rng):
    """lifecycle run killed with SIGKILL mid-pass: the next pass resumes after the saved cursor, every selected key gets exactly one delete marker, nothing else is touched"""
    import signal
    import subprocess

    b = new_bucket()
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    put_rules(s3, b, [expire("exp", Prefix="exp/")])
    selected = [f"exp/{i:02}" for i in range(30)]
    others = [f"keep/{i:02}" for i in range(5)]
    for k in selected + others:
        s3.put_object(Bucket=b, Key=k, Body=marked(evidence, rng, 300))
    time.sleep(1.5)
    # Batches of two keys, ten actions a second: the pass takes three seconds
    # at least and saves its cursor every two keys. A one-second lease, so a
    # killed holder's lease runs out quickly.
    env = dict(
        deployment.env,
        DOOZ_LIFECYCLE__BATCH_SIZE="2",
        DOOZ_LIFECYCLE__MAX_ACTIONS_PER_SEC="10",
        DOOZ_GC__LEASE_TTL="1",
        DOOZ_GC__CLOCK_SKEW="0",
    )
    cmd = [deployment.dooz_bin, "lifecycle", "run", "--bucket", b, *deployment.location_args()]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, f"[dooz] the pass ended before the kill: {p.stderr.read().decode()[-2000:]}"
    status = json.loads(deployment.dooz(["lifecycle", "status", "--json"], step="status after kill").stdout)
    mine = next(s for s in status if s["bucket"] == b)
    assert mine["pass_in_progress"] is True and mine["cursor"], mine
    assert mine["cursor"] < selected[-1], mine

    time.sleep(1.5)  # the killed process's lease expires
    env.pop("DOOZ_LIFECYCLE__MAX_ACTIONS_PER_SEC")
    r = lifecycle_run(deployment, b, env=env)
    assert r["error"] is None and r["resumed"] == 1, r
    markers: dict[str, int] = {}
    for key, _, is_marker in versions(s3, b):
        if is_marker:
            markers[key] = markers.get(key, 0) + 1
    assert markers == {k: 1 for k in selected}, f"[dooz] one delete marker per selected key, none elsewhere: {markers}"
    assert keys(s3, b) == set(others)
    again = lifecycle_run(deployment, b, env=env)
    assert again["delete_markers_added"] == 0 and again["resumed"] == 0, again
