"""s3cmd (SigV4, path style, plain HTTP) against Dooz: mb, put (single and
multipart), ls, get, del, sync with --delete-removed, rb."""

from __future__ import annotations

import hashlib
import re

from helpers import make_tree, sha256, sha256_file, tree_hashes, write_random_file

LS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d\s+(\d+)\s+(s3://.*)$")


def ls(s3cmd, url: str, step: str, recursive: bool = True) -> dict[str, int]:
    args = ["ls", "-r", url] if recursive else ["ls", url]
    out = s3cmd(*args, step=step).stdout.decode()
    listing = {}
    for line in out.splitlines():
        m = LS.match(line.strip())
        if m:
            listing[m.group(2)] = int(m.group(1))
        else:
            assert line.strip().startswith("DIR"), f"[s3cmd] {step}: unparsable line {line!r}"
    return listing


def test_put_get_ls_del(s3cmd, deployment, new_bucket, evidence, rng, tmp_path):
    """mb, put (single and multipart), ls, get, del, rb"""
    b = new_bucket(create=False)
    s3cmd("mb", f"s3://{b}", step="mb")
    small = tmp_path / "small file+1 é.txt"
    sdata = write_random_file(small, rng, 100_000, evidence.new_marker())
    evidence.known(sdata, "s3cmd small")
    big = tmp_path / "big.bin"
    bdata = write_random_file(big, rng, (12 << 20) + 5, evidence.new_marker())
    evidence.known(bdata, "s3cmd multipart")

    s3cmd("put", str(small), f"s3://{b}/dir/small file+1 é.txt", step="put")
    s3cmd("put", "--multipart-chunk-size-mb=5", str(big), f"s3://{b}/dir/big.bin", step="put multipart")
    listing = ls(s3cmd, f"s3://{b}/", "ls -r")
    assert listing == {f"s3://{b}/dir/small file+1 é.txt": len(sdata), f"s3://{b}/dir/big.bin": len(bdata)}, listing
    top = s3cmd("ls", f"s3://{b}/", step="ls (one level)").stdout.decode()
    assert f"DIR  s3://{b}/dir/" in " ".join(top.split("  ")) or f"s3://{b}/dir/" in top, f"[s3cmd] ls: {top}"

    head = deployment.boto3_client().head_object(Bucket=b, Key="dir/big.bin")
    parts = [bdata[i : i + (5 << 20)] for i in range(0, len(bdata), 5 << 20)]
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    assert head["ETag"].strip('"') == want, f"[s3cmd] multipart put ETag {head['ETag']} != {want}"

    out = tmp_path / "down"
    out.mkdir()
    s3cmd("get", f"s3://{b}/dir/small file+1 é.txt", str(out / "small"), step="get")
    s3cmd("get", f"s3://{b}/dir/big.bin", str(out / "big"), step="get multipart")
    assert sha256_file(out / "small") == sha256(sdata) and sha256_file(out / "big") == sha256(bdata), "[s3cmd] get: bytes differ"

    p = s3cmd("get", f"s3://{b}/dir/missing", str(out / "missing"), step="get of a missing key", expect_rc="nonzero")
    assert b"does not exist" in p.stderr or b"404" in p.stderr, p.stderr
    p = s3cmd("rb", f"s3://{b}", step="rb of a non-empty bucket", expect_rc="nonzero")
    assert b"BucketNotEmpty" in p.stderr or b"409" in p.stderr, p.stderr

    s3cmd("del", f"s3://{b}/dir/small file+1 é.txt", step="del")
    assert ls(s3cmd, f"s3://{b}/", "ls after del") == {f"s3://{b}/dir/big.bin": len(bdata)}
    s3cmd("del", "--recursive", "--force", f"s3://{b}/", step="del --recursive")
    assert ls(s3cmd, f"s3://{b}/", "ls after del --recursive") == {}
    s3cmd("rb", f"s3://{b}", step="rb")
    buckets = s3cmd("ls", step="ls (buckets)").stdout.decode()
    assert f"s3://{b}" not in buckets, "[s3cmd] bucket still listed after rb"


def test_sync(s3cmd, bucket, evidence, rng, tmp_path):
    """sync up, sync --delete-removed, sync down"""
    tree = make_tree(tmp_path / "tree", rng, 200, evidence.new_marker())
    url = f"s3://{bucket}/mirror/"
    s3cmd("sync", "--no-preserve", str(tree.root) + "/", url, step="sync up")
    want = {f"s3://{bucket}/mirror/{rel}": (tree.root / rel).stat().st_size for rel in tree.files}
    assert ls(s3cmd, url, "ls -r after sync") == want, "[s3cmd] listing differs from the tree after sync"

    rels = sorted(tree.files)
    rng.shuffle(rels)
    for rel in rels[:10]:
        (tree.root / rel).write_bytes(rng.randbytes(2222))
    for rel in rels[10:25]:
        (tree.root / rel).unlink()
    (tree.root / "added é.bin").write_bytes(rng.randbytes(99))
    now = tree_hashes(tree.root)
    p = s3cmd("sync", "--no-preserve", "--delete-removed", str(tree.root) + "/", url, step="sync --delete-removed")
    assert p.stdout.decode().count("delete: ") == 15, f"[s3cmd] sync deletions:\n{p.stdout.decode()[-2000:]}"
    want = {f"s3://{bucket}/mirror/{rel}": (tree.root / rel).stat().st_size for rel in now}
    assert ls(s3cmd, url, "ls -r after sync --delete-removed") == want

    down = tmp_path / "down"
    down.mkdir()
    s3cmd("sync", url, str(down) + "/", step="sync down")
    assert tree_hashes(down) == now, "[s3cmd] sync down: tree differs (sha256)"
