"""Access control through boto3 and the dooz CLI: a least-privilege key (a
tenant policy attached with `dooz admin user policy attach`) may write only
`builds/*` in one bucket; anonymous GET works exactly where a bucket policy
makes objects public, and Block Public Access (on by default) stops it;
every refusal is AccessDenied (403) and stores nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from helpers import User


def error(fn, **kwargs) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a call that must fail."""
    try:
        fn(**kwargs)
    except ClientError as e:
        return e.response["Error"].get("Code", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    pytest.fail(f"[boto3] {fn.__name__}({kwargs}) succeeded; an error was expected")


DENIED = ("AccessDenied", 403)


def marked(evidence, rng, size: int = 8_000) -> bytes:
    m = evidence.new_marker().encode()
    data = rng.randbytes(size // 2) + m + rng.randbytes(size // 2)
    evidence.known(data)
    return data


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_boto3_least_privilege_key(deployment, s3, bucket, new_bucket, tmp_path, evidence, rng):
    """policy: a key holding only "PutObject on bucket/builds/*" (dooz admin policy + user policy attach) does exactly that"""
    other = new_bucket()
    s3.put_object(Bucket=bucket, Key="src/main.rs", Body=marked(evidence, rng))
    ci = User(f"DZCI{uuid.uuid4().hex[:16].upper()}", f"c{uuid.uuid4().hex}")
    env = dict(deployment.env)
    env["DOOZ_NEW_SECRET_KEY"] = ci.secret_key
    deployment.dooz(
        ["admin", "user", "create", "--tenant", "root", "--name", f"ci-{uuid.uuid4().hex[:6]}", "--policy", "read-only", "--access-key", ci.access_key],
        env=env,
        step="create the ci key",
    )
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Builds", "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/builds/*"}],
    }
    name = f"ci-{uuid.uuid4().hex[:8]}"
    f = tmp_path / "policy.json"
    f.write_text(json.dumps(doc))
    deployment.dooz(["admin", "policy", "create", "--tenant", "root", name, "--file", str(f)], step="policy create")
    deployment.dooz(["admin", "user", "policy", "attach", ci.access_key, name], step="attach")
    deployment.dooz(["admin", "user", "policy", "detach", ci.access_key, "read-only"], step="detach the role")
    can = deployment.dooz(
        ["admin", "user", "can", ci.access_key, "s3:PutObject", f"arn:aws:s3:::{bucket}/builds/x"], step="user can"
    ).stdout.decode()
    assert can.startswith("ALLOW") and f"policy {name} Statement[0] (Sid Builds)" in can, can

    c = deployment.boto3_client(ci)
    artifact = marked(evidence, rng)
    c.put_object(Bucket=bucket, Key="builds/1/app.tar", Body=artifact)
    assert s3.get_object(Bucket=bucket, Key="builds/1/app.tar")["Body"].read() == artifact
    assert error(c.put_object, Bucket=bucket, Key="src/evil.rs", Body=b"x") == DENIED
    assert error(c.put_object, Bucket=other, Key="builds/x", Body=b"x") == DENIED
    assert error(c.get_object, Bucket=bucket, Key="builds/1/app.tar") == DENIED
    assert error(c.list_objects_v2, Bucket=bucket) == DENIED
    assert error(c.delete_object, Bucket=bucket, Key="builds/1/app.tar") == DENIED
    assert error(c.copy_object, Bucket=bucket, Key="builds/copy", CopySource={"Bucket": bucket, "Key": "src/main.rs"}) == DENIED
    assert keys(s3, bucket) == ["builds/1/app.tar", "src/main.rs"], "[boto3] refusals store nothing"
    assert keys(s3, other) == []


def test_boto3_public_bucket_policy_and_block_public_access(deployment, s3, bucket, evidence, rng):
    """policy: anonymous GET exactly where a bucket policy allows it; Block Public Access refuses and restricts public policies"""
    page = marked(evidence, rng)
    s3.put_object(Bucket=bucket, Key="public/index.html", Body=page)
    s3.put_object(Bucket=bucket, Key="private/secret", Body=b"secret")
    anon = deployment.boto3_client(signature_version=UNSIGNED)
    assert error(anon.get_object, Bucket=bucket, Key="public/index.html") == DENIED

    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/public/*"}],
        }
    )
    # On by default: the public policy is refused.
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert error(s3.put_bucket_policy, Bucket=bucket, Policy=policy) == DENIED
    assert error(s3.get_bucket_policy, Bucket=bucket) == ("NoSuchBucketPolicy", 404)
    code, status = error(s3.put_bucket_policy, Bucket=bucket, Policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}')
    assert (code, status) == ("MalformedPolicy", 400)

    off = {"BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=off)
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True

    assert anon.get_object(Bucket=bucket, Key="public/index.html")["Body"].read() == page
    assert error(anon.get_object, Bucket=bucket, Key="private/secret") == DENIED
    assert error(anon.put_object, Bucket=bucket, Key="public/evil", Body=b"x") == DENIED
    assert error(anon.list_objects_v2, Bucket=bucket) == DENIED
    assert keys(s3, bucket) == ["private/secret", "public/index.html"]

    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={**off, "RestrictPublicBuckets": True})
    assert error(anon.get_object, Bucket=bucket, Key="public/index.html") == DENIED
    s3.delete_public_access_block(Bucket=bucket)
    assert error(anon.get_object, Bucket=bucket, Key="public/index.html") == DENIED
    s3.delete_bucket_policy(Bucket=bucket)
    assert error(s3.get_bucket_policy, Bucket=bucket) == ("NoSuchBucketPolicy", 404)
