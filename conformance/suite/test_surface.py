"""The S3 surface beyond object I/O through boto3 (and raw HTTP for the
unauthenticated CORS preflight): Put/Get/DeleteBucketCors with S3's
validation errors, preflights answered from the rules, CORS headers on
actual responses; x-amz-server-side-encryption on writes and reads and
Put/Get/DeleteBucketEncryption; GetObjectAttributes with part paging."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError


def error(fn, **kwargs) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a call that must fail."""
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"].get("Code", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    pytest.fail(f"[boto3] {fn.__name__}({kwargs}) succeeded; an error was expected")


def http(method: str, url: str, headers: dict[str, str], data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def marked(evidence, rng, size: int = 4_000) -> bytes:
    m = evidence.new_marker().encode()
    data = rng.randbytes(size // 2) + m + rng.randbytes(size // 2)
    evidence.known(data)
    return data


def test_boto3_bucket_cors(deployment, s3, bucket, evidence, rng):
    """CORS: Put/Get/DeleteBucketCors, S3's validation errors, preflight (raw OPTIONS), headers on presigned GET"""
    assert error(s3.get_bucket_cors, Bucket=bucket) == ("NoSuchCORSConfiguration", 404)
    for rule, what in [
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "unsupported method"),
        ({"AllowedOrigins": ["http://*.*.test"], "AllowedMethods": ["GET"]}, "two wildcards in an origin"),
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["a*b*"]}, "two wildcards in a header"),
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]}, "wildcard ExposeHeader"),
    ]:
        got = error(s3.put_bucket_cors, Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
        assert got == ("InvalidRequest", 400), f"[boto3] {what}: {got}"
    assert error(s3.get_bucket_cors, Bucket=bucket)[0] == "NoSuchCORSConfiguration", "refused rules are not stored"

    rules = [
        {
            "ID": "app",
            "AllowedOrigins": ["https://*.example.test"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3000,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules

    url = f"{deployment.endpoint}/{bucket}/doc"
    status, h, _ = http(
        "OPTIONS",
        url,
        {
            "Origin": "https://app.example.test",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "Content-Type, X-Amz-Meta-Owner",
        },
    )
    assert status == 200, "[raw] preflight the first rule allows"
    assert h["access-control-allow-origin"] == "https://app.example.test"
    assert h["access-control-allow-methods"] == "GET, PUT"
    assert h["access-control-allow-headers"] == "Content-Type, X-Amz-Meta-Owner"
    assert h["access-control-max-age"] == "3000"
    assert h["access-control-expose-headers"] == "ETag"
    status, h, body = http("OPTIONS", url, {"Origin": "https://evil.test", "Access-Control-Request-Method": "PUT"})
    assert status == 403 and b"<Code>CORSResponse</Code>" in body, "[raw] no rule allows PUT from another origin"
    assert "access-control-allow-origin" not in h

    data = marked(evidence, rng)
    s3.put_object(Bucket=bucket, Key="doc", Body=data)
    signed = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "doc"}, ExpiresIn=300)
    status, h, got = http("GET", signed, {"Origin": "https://any.test"})
    assert status == 200 and got == data
    assert h["access-control-allow-origin"] == "*", "[raw] the wildcard rule answers a GET from anywhere"
    status, h, got = http("GET", signed, {})
    assert status == 200 and "access-control-allow-origin" not in h, "no Origin, no CORS headers"

    s3.delete_bucket_cors(Bucket=bucket)
    assert error(s3.get_bucket_cors, Bucket=bucket)[0] == "NoSuchCORSConfiguration"
    status, _, _ = http("OPTIONS", url, {"Origin": "https://any.test", "Access-Control-Request-Method": "GET"})
    assert status == 403


def test_boto3_server_side_encryption(s3, bucket, evidence, rng):
    """SSE: AES256 on PUT/GET/HEAD/copy/multipart, Put/Get/DeleteBucketEncryption, SSE-KMS refused"""
    data = marked(evidence, rng)
    assert s3.put_object(Bucket=bucket, Key="a", Body=data)["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    copied = s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    assert copied["ServerSideEncryption"] == "AES256"
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", ServerSideEncryption="AES256")
    assert up["ServerSideEncryption"] == "AES256"
    part = s3.upload_part(Bucket=bucket, Key="m", UploadId=up["UploadId"], PartNumber=1, Body=data)
    assert part["ServerSideEncryption"] == "AES256"
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=up["UploadId"], MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    assert done["ServerSideEncryption"] == "AES256"
    assert error(s3.put_object, Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms") == ("NotImplemented", 501)
    assert error(s3.head_object, Bucket=bucket, Key="kms")[1] == 404, "a refused SSE-KMS PUT stores nothing"

    def default():
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        return rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], rule.get("BucketKeyEnabled")

    assert default() == ("AES256", False), "every bucket encrypts by default (SSE-S3)"
    cfg = lambda alg: {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": alg}, "BucketKeyEnabled": True}]}  # noqa: E731
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=cfg("AES256"))
    assert default() == ("AES256", True)
    assert error(s3.put_bucket_encryption, Bucket=bucket, ServerSideEncryptionConfiguration=cfg("aws:kms"))[0] == "NotImplemented"
    s3.delete_bucket_encryption(Bucket=bucket)
    assert default() == ("AES256", False)


def test_boto3_get_object_attributes(s3, bucket, evidence, rng):
    """GetObjectAttributes: ETag, Checksum, ObjectSize, StorageClass; ObjectParts paged with MaxParts/PartNumberMarker"""
    data = marked(evidence, rng)
    put = s3.put_object(Bucket=bucket, Key="one", Body=data, ChecksumAlgorithm="SHA256")
    all_attrs = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    a = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=all_attrs)
    assert a["ETag"] == put["ETag"].strip('"')
    assert a["ObjectSize"] == len(data)
    assert a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert "ObjectParts" not in a, "single-part objects list no parts"

    up = s3.create_multipart_upload(Bucket=bucket, Key="multi")
    sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 777]
    parts = []
    for n, size in enumerate(sizes, start=1):
        body = (marked(evidence, rng, 2_000) * (size // 2_000 + 1))[:size]
        p = s3.upload_part(Bucket=bucket, Key="multi", UploadId=up["UploadId"], PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": p["ETag"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    first = s3.get_object_attributes(Bucket=bucket, Key="multi", ObjectAttributes=all_attrs, MaxParts=2)
    assert first["ETag"] == done["ETag"].strip('"')
    assert first["ObjectSize"] == sum(sizes)
    op = first["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is True and op["MaxParts"] == 2
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(1, sizes[0]), (2, sizes[1])]
    second = s3.get_object_attributes(
        Bucket=bucket, Key="multi", ObjectAttributes=["ObjectParts"], MaxParts=2, PartNumberMarker=op["NextPartNumberMarker"]
    )
    op = second["ObjectParts"]
    assert op["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"]) for p in op["Parts"]] == [(3, sizes[2])]
    assert "ETag" not in second, "only the attributes asked for"
    assert error(s3.get_object_attributes, Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])[0] == "NoSuchKey"


def test_boto3_post_object(deployment, s3, bucket, evidence, rng):
    """POST Object: generate_presigned_post + requests (${filename}, metadata, success_action_status, content-length-range, policy and signature checks)"""
    import requests

    data = marked(evidence, rng, 6_000)
    post = s3.generate_presigned_post(
        Bucket=bucket,
        Key="uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-who": "browser", "success_action_status": "201"},
        Conditions=[
            {"Content-Type": "text/plain"},
            {"x-amz-meta-who": "browser"},
            {"success_action_status": "201"},
            ["content-length-range", 10, 100_000],
        ],
        ExpiresIn=600,
    )
    r = requests.post(post["url"], data=post["fields"], files={"file": ("report.txt", data)}, timeout=60)
    assert r.status_code == 201, f"[requests] POST Object: {r.status_code} {r.text}"
    assert "<Key>uploads/report.txt</Key>" in r.text
    assert r.headers["x-amz-server-side-encryption"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="uploads/report.txt")
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"who": "browser"}
    assert f'<ETag>{got["ETag"]}</ETag>'.replace('"', "&quot;") in r.text

    def refused(fields: dict, body: bytes = data, name: str = "other.txt") -> tuple[int, str]:
        r = requests.post(post["url"], data=fields, files={"file": (name, body)}, timeout=60)
        m = re.search(r"<Code>([^<]*)</Code>", r.text)
        return r.status_code, m.group(1) if m else r.text

    # Each refused form stores nothing.
    tampered = dict(post["fields"], **{"x-amz-meta-who": "someone else"})
    assert refused(tampered) == (403, "AccessDenied"), "a field outside its condition"
    extra = dict(post["fields"], **{"x-amz-meta-extra": "1"})
    assert refused(extra) == (403, "AccessDenied"), "a field the policy does not name"
    bad_sig = dict(post["fields"], **{"x-amz-signature": "0" * 64})
    assert refused(bad_sig) == (403, "SignatureDoesNotMatch")
    anonymous = {k: v for k, v in post["fields"].items() if k not in ("policy", "x-amz-signature")}
    assert refused(anonymous) == (403, "AccessDenied"), "anonymous POST"
    assert refused(post["fields"], body=b"tiny") == (400, "EntityTooSmall")
    assert refused(post["fields"], body=data * 20) == (400, "EntityTooLarge")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["uploads/report.txt"], f"refused forms stored nothing: {listed}"

    expired = s3.generate_presigned_post(Bucket=bucket, Key="late", ExpiresIn=-10)
    r = requests.post(expired["url"], data=expired["fields"], files={"file": ("x", data)}, timeout=60)
    assert r.status_code == 403 and "Policy expired" in r.text, r.text

    # The default answer: 204 with the ETag and Location.
    plain = s3.generate_presigned_post(Bucket=bucket, Key="plain", ExpiresIn=600)
    r = requests.post(plain["url"], data=plain["fields"], files={"file": ("x", data)}, timeout=60)
    assert r.status_code == 204, r.text
    assert r.headers["ETag"] == s3.head_object(Bucket=bucket, Key="plain")["ETag"]
