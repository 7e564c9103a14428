"""Object and bucket tagging through boto3: Put/Get/DeleteObjectTagging with
and without version ids, x-amz-tagging on PutObject and multipart uploads,
the tagging directive of CopyObject, x-amz-tagging-count on GET and HEAD,
Put/Get/DeleteBucketTagging, and S3's limits and error codes (each refused
request stores nothing)."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from helpers import md5_b64


def error(fn, **kwargs) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a call that must fail."""
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"].get("Code", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    pytest.fail(f"[boto3] {fn.__name__}({kwargs}) succeeded; an error was expected")


def marked(evidence, rng, size: int = 8_000) -> bytes:
    m = evidence.new_marker().encode()
    data = rng.randbytes(size // 2) + m + rng.randbytes(size // 2)
    evidence.known(data)
    return data


def tagset(d: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def tags(s3, bucket: str, key: str, **kw) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def head_count(s3, bucket: str, key: str, **kw) -> str | None:
    return s3.head_object(Bucket=bucket, Key=key, **kw)["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")


def raw(deployment, method: str, path: str, query: str, body: bytes) -> tuple[int, str]:
    """A SigV4-signed request with a body boto3 would refuse to build: (status, error code)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.httpsession import URLLib3Session

    req = AWSRequest(method=method, url=f"{deployment.endpoint}/{path}?{query}", data=body, headers={"Content-MD5": md5_b64(body)})
    u = deployment.root_user
    S3SigV4Auth(Credentials(u.access_key, u.secret_key), "s3", "us-east-1").add_auth(req)
    r = URLLib3Session().send(req.prepare())
    m = re.search(rb"<Code>([^<]*)</Code>", r.content)
    return r.status_code, m.group(1).decode() if m else ""


def test_boto3_object_tagging(s3, bucket, new_bucket, evidence, rng):
    """tagging: x-amz-tagging on PUT and multipart, Put/Get/DeleteObjectTagging, tagging-count, copy directives, per-version tags"""
    body = marked(evidence, rng)
    s3.put_object(Bucket=bucket, Key="doc", Body=body, Tagging="team=blue&note=a%20b%2Bc")
    assert tags(s3, bucket, "doc") == {"team": "blue", "note": "a b+c"}
    assert s3.get_object(Bucket=bucket, Key="doc")["TagCount"] == 2, "[boto3] x-amz-tagging-count on GET"
    assert head_count(s3, bucket, "doc") == "2", "[boto3] x-amz-tagging-count on HEAD"

    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset({"only": "one"}))
    assert tags(s3, bucket, "doc") == {"only": "one"}
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == body, "[boto3] tagging leaves the data alone"
    s3.delete_object_tagging(Bucket=bucket, Key="doc")
    assert tags(s3, bucket, "doc") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="doc"), "[boto3] no count without tags"
    assert head_count(s3, bucket, "doc") is None

    # CopyObject: COPY (the default) keeps the source's tags, REPLACE sets the request's.
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset({"src": "1"}))
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "doc"})
    assert tags(s3, bucket, "copied") == {"src": "1"}
    s3.copy_object(Bucket=bucket, Key="copied2", CopySource={"Bucket": bucket, "Key": "doc"}, TaggingDirective="COPY", Tagging="ignored=1")
    assert tags(s3, bucket, "copied2") == {"src": "1"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "doc"}, TaggingDirective="REPLACE", Tagging="new=2")
    assert tags(s3, bucket, "replaced") == {"new": "2"}
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource={"Bucket": bucket, "Key": "doc"}, TaggingDirective="REPLACE")
    assert tags(s3, bucket, "cleared") == {}
    other = new_bucket()
    s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": "doc"}, MetadataDirective="REPLACE", Metadata={"m": "1"})
    assert tags(s3, other, "x") == {"src": "1"}, "[boto3] the metadata directive does not touch tags"

    # Multipart: the tags of CreateMultipartUpload land on the object at completion.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="mp=yes&n=1")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=marked(evidence, rng))
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )
    assert tags(s3, bucket, "mp") == {"mp": "yes", "n": "1"}

    # Versions have tag sets of their own.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"two", Tagging="gen=2")["VersionId"]
    assert tags(s3, bucket, "v", VersionId=v1) == {"gen": "1"}
    assert tags(s3, bucket, "v") == {"gen": "2"}
    r = s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=v1, Tagging=tagset({"gen": "old"}))
    assert r["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=v1)["VersionId"] == v1
    assert tags(s3, bucket, "v", VersionId=v1) == {"gen": "old"}
    assert tags(s3, bucket, "v", VersionId=v2) == {"gen": "2"}
    assert head_count(s3, bucket, "v", VersionId=v1) == "1"
    s3.delete_object_tagging(Bucket=bucket, Key="v", VersionId=v2)
    assert tags(s3, bucket, "v") == {} and tags(s3, bucket, "v", VersionId=v1) == {"gen": "old"}
    marker = s3.delete_object(Bucket=bucket, Key="v")["VersionId"]
    assert error(s3.get_object_tagging, Bucket=bucket, Key="v") == ("NoSuchKey", 404)
    assert error(s3.put_object_tagging, Bucket=bucket, Key="v", VersionId=marker, Tagging=tagset({"a": "b"})) == ("MethodNotAllowed", 405)
    assert error(s3.get_object_tagging, Bucket=bucket, Key="nope") == ("NoSuchKey", 404)


def test_boto3_tagging_limits_and_errors(s3, deployment, bucket, evidence, rng):
    """tagging: 10/50 tags, key/value lengths in characters, duplicates, aws: prefix, bad XML, who may tag"""
    s3.put_object(Bucket=bucket, Key="doc", Body=marked(evidence, rng), Tagging="keep=me")
    keep = {"keep": "me"}

    ten = {f"k{i}": f"v{i}" for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset(ten))
    assert tags(s3, bucket, "doc") == ten
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset(keep))
    eleven = {f"k{i}": "v" for i in range(11)}
    assert error(s3.put_object_tagging, Bucket=bucket, Key="doc", Tagging=tagset(eleven)) == ("BadRequest", 400)
    # Lengths count Unicode characters, not bytes.
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset({"é" * 128: "ü" * 256}))
    assert tags(s3, bucket, "doc") == {"é" * 128: "ü" * 256}
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tagset(keep))
    bad_sets = [
        [{"Key": "k" * 129, "Value": "v"}],
        [{"Key": "k", "Value": "v" * 257}],
        [{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}],
        [{"Key": "aws:created", "Value": "1"}],
        [{"Key": "semi;colon", "Value": "1"}],
    ]
    for bad in bad_sets:
        assert error(s3.put_object_tagging, Bucket=bucket, Key="doc", Tagging={"TagSet": bad}) == ("InvalidTag", 400), bad
        assert tags(s3, bucket, "doc") == keep, f"[boto3] a refused tag set ({bad}) changed nothing"

    # The x-amz-tagging header: refused objects are not stored.
    header11 = "&".join(f"k{i}=v" for i in range(11))
    assert error(s3.put_object, Bucket=bucket, Key="refused", Body=b"x", Tagging=header11) == ("BadRequest", 400)
    assert error(s3.put_object, Bucket=bucket, Key="refused", Body=b"x", Tagging="a=1&a=2") == ("InvalidTag", 400)
    assert error(s3.put_object, Bucket=bucket, Key="refused", Body=b"x", Tagging="aws:x=1") == ("InvalidTag", 400)
    assert error(s3.head_object, Bucket=bucket, Key="refused")[1] == 404
    assert error(s3.create_multipart_upload, Bucket=bucket, Key="refused", Tagging="a=1&a=2") == ("InvalidTag", 400)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert error(
        s3.copy_object, Bucket=bucket, Key="refused", CopySource={"Bucket": bucket, "Key": "doc"}, TaggingDirective="REPLACE", Tagging=header11
    ) == ("BadRequest", 400)
    assert error(
        s3.copy_object, Bucket=bucket, Key="refused", CopySource={"Bucket": bucket, "Key": "doc"}, TaggingDirective="MOVE"
    ) == ("InvalidArgument", 400)
    assert error(s3.head_object, Bucket=bucket, Key="refused")[1] == 404

    # Bodies boto3 would not build.
    assert raw(deployment, "PUT", f"{bucket}/doc", "tagging", b"<Tagging><TagSet><Tag><Key>a</Key>") == (400, "MalformedXML")
    no_value = b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>"
    assert raw(deployment, "PUT", f"{bucket}/doc", "tagging", no_value) == (400, "MalformedXML")
    assert raw(deployment, "PUT", bucket, "tagging", b"not xml") == (400, "MalformedXML")
    empty_key = b"<Tagging><TagSet><Tag><Key></Key><Value>1</Value></Tag></TagSet></Tagging>"
    assert raw(deployment, "PUT", f"{bucket}/doc", "tagging", empty_key) == (400, "InvalidTag")
    assert tags(s3, bucket, "doc") == keep

    # Bucket tags: 50 at most, NoSuchTagSet without any.
    assert error(s3.get_bucket_tagging, Bucket=bucket) == ("NoSuchTagSet", 404)
    fifty = {f"b{i}": f"v{i}" for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset(fifty))
    got = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert got == fifty
    fifty_one = {f"b{i}": "v" for i in range(51)}
    assert error(s3.put_bucket_tagging, Bucket=bucket, Tagging=tagset(fifty_one)) == ("InvalidTag", 400)
    assert error(s3.put_bucket_tagging, Bucket=bucket, Tagging=tagset({"aws:x": "1"})) == ("InvalidTag", 400)
    got = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert got == fifty, "[boto3] refused bucket tags changed nothing"
    s3.delete_bucket_tagging(Bucket=bucket)
    assert error(s3.get_bucket_tagging, Bucket=bucket) == ("NoSuchTagSet", 404)
    assert error(s3.get_bucket_tagging, Bucket="no-such-bucket-tagging") == ("NoSuchBucket", 404)

    # Read-only users read tags but do not change them.
    ro = deployment.boto3_client(deployment.readonly_user)
    assert error(ro.put_object_tagging, Bucket=bucket, Key="doc", Tagging=tagset({"x": "y"})) == ("AccessDenied", 403)
    assert error(ro.delete_object_tagging, Bucket=bucket, Key="doc") == ("AccessDenied", 403)
    assert tags(ro, bucket, "doc") == keep
