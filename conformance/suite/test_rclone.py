"""rclone against Dooz (an on-the-fly remote `dooz:` from environment
variables, provider Other, path style): copy, sync with deletions, check
--download, lsjson, cat, server-side copyto, multipart via a low cutoff."""

from __future__ import annotations

import hashlib
import json

from helpers import make_tree, sha256, tree_hashes, write_random_file

TREE_FILES = 300


def lsjson(rclone, remote: str, step: str) -> dict[str, int]:
    out = rclone("lsjson", "-R", "--files-only", remote, step=step).stdout
    return {e["Path"]: e["Size"] for e in json.loads(out)}


def local_sizes(root, files) -> dict[str, int]:
    return {rel: (root / rel).stat().st_size for rel in files}


def test_copy_lsjson_check_cat(rclone, bucket, evidence, rng, tmp_path):
    """copy, lsjson, check --download, cat (whole and ranged)"""
    tree = make_tree(tmp_path / "tree", rng, TREE_FILES, evidence.new_marker(), max_size=20_000)
    remote = f"dooz:{bucket}/tree"
    rclone("copy", str(tree.root), remote, step="copy up")
    assert lsjson(rclone, remote, "lsjson -R") == local_sizes(tree.root, tree.files), "[rclone] lsjson differs from the tree"
    rclone("check", "--download", str(tree.root), remote, step="check --download")

    rel = sorted(tree.files)[5]
    cat = rclone("cat", f"{remote}/{rel}", step="cat").stdout
    assert sha256(cat) == tree.files[rel], "[rclone] cat returned other bytes"
    whole = (tree.root / rel).read_bytes()
    if len(whole) > 30:
        part = rclone("cat", "--offset", "10", "--count", "20", f"{remote}/{rel}", step="cat --offset --count").stdout
        assert part == whole[10:30], "[rclone] ranged cat"

    # check must notice a difference (it really compares content).
    victim = tree.root / sorted(tree.files)[9]
    victim.write_bytes(victim.read_bytes() + b"!")
    p = rclone("check", "--download", str(tree.root), remote, step="check --download of a changed tree", expect_rc="nonzero")
    assert b"1 differences found" in p.stderr, f"[rclone] check after a local change: {p.stderr[-1500:]!r}"

    down = tmp_path / "down"
    rclone("copy", remote, str(down), step="copy down")
    victim.write_bytes(victim.read_bytes()[:-1])
    assert tree_hashes(down) == tree.files, "[rclone] copy down: tree differs (sha256)"


def test_sync_with_deletions(rclone, bucket, evidence, rng, tmp_path):
    """sync up with changes and deletions, sync down"""
    tree = make_tree(tmp_path / "tree", rng, TREE_FILES, evidence.new_marker())
    remote = f"dooz:{bucket}/mirror"
    rclone("sync", str(tree.root), remote, step="sync up")
    rels = sorted(tree.files)
    rng.shuffle(rels)
    for rel in rels[:15]:
        (tree.root / rel).write_bytes(rng.randbytes(3000 + rng.randrange(500)))
    for rel in rels[15:40]:
        (tree.root / rel).unlink()
    (tree.root / "fresh+dir").mkdir()
    for i in range(5):
        (tree.root / "fresh+dir" / f"n é {i}").write_bytes(rng.randbytes(10 * i))
    now = tree_hashes(tree.root)

    p = rclone("sync", "-v", str(tree.root), remote, step="sync with deletions")
    log = p.stderr.decode()
    assert log.count(": Deleted") == 25, f"[rclone] sync deletions:\n{log[-3000:]}"
    assert lsjson(rclone, remote, "lsjson after sync") == local_sizes(tree.root, now), "[rclone] remote differs after sync"
    rclone("check", "--download", str(tree.root), remote, step="check --download after sync")

    down = tmp_path / "down"
    rclone("sync", remote, str(down), step="sync down")
    assert tree_hashes(down) == now, "[rclone] sync down: tree differs (sha256)"


def test_server_side_copyto(rclone, deployment, bucket, new_bucket, evidence, rng, tmp_path):
    """copyto server-side (CopyObject, and UploadPartCopy above --s3-copy-cutoff)"""
    small = tmp_path / "small.bin"
    data = write_random_file(small, rng, 200_000, evidence.new_marker())
    evidence.known(data, "rclone small")
    rclone("copyto", str(small), f"dooz:{bucket}/src/small.bin", step="copyto up")
    p = rclone("copyto", "-v", f"dooz:{bucket}/src/small.bin", f"dooz:{bucket}/dst/small copy.bin", step="copyto server-side")
    assert "server-side copy" in p.stderr.decode(), f"[rclone] copyto was not server-side:\n{p.stderr.decode()[-1500:]}"
    assert sha256(rclone("cat", f"dooz:{bucket}/dst/small copy.bin", step="cat the copy").stdout) == sha256(data)

    big = tmp_path / "big.bin"
    bdata = write_random_file(big, rng, 12 << 20, evidence.new_marker())
    evidence.known(bdata, "rclone 12 MiB")
    rclone("copyto", str(big), f"dooz:{bucket}/src/big.bin", step="copyto up (12 MiB)")
    other = new_bucket()
    p = rclone(
        "copyto", "-v", "--s3-copy-cutoff", "5M", f"dooz:{bucket}/src/big.bin", f"dooz:{other}/big.bin",
        step="copyto server-side multipart (UploadPartCopy)",
    )
    assert "server-side copy" in p.stderr.decode(), f"[rclone] big copyto was not server-side:\n{p.stderr.decode()[-1500:]}"
    head = deployment.boto3_client().head_object(Bucket=other, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3"), f"[rclone] copy above the cutoff was not multipart: {head['ETag']}"
    assert sha256(rclone("cat", f"dooz:{other}/big.bin", step="cat the multipart copy").stdout) == sha256(bdata)
    rclone("check", "--download", str(tmp_path), f"dooz:{bucket}/src", "--include", "*.bin", step="check --download of the sources")


def test_multipart_low_upload_cutoff(rclone, deployment, bucket, evidence, rng, tmp_path):
    """multipart upload through --s3-upload-cutoff 5M, check --download"""
    src = tmp_path / "up" / "chunked file.bin"
    data = write_random_file(src, rng, (23 << 20) + 12345, evidence.new_marker())
    evidence.known(data, "rclone multipart")
    flags = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
    rclone("copy", *flags, str(src.parent), f"dooz:{bucket}/mp", step="copy multipart")
    head = deployment.boto3_client().head_object(Bucket=bucket, Key="mp/chunked file.bin")
    part = 5 << 20
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    assert head["ETag"].strip('"') == want, f"[rclone] multipart ETag {head['ETag']} != {want}"
    assert head["ContentLength"] == len(data)
    md5 = rclone("md5sum", f"dooz:{bucket}/mp", step="md5sum").stdout.decode().split()[0]
    assert md5 == hashlib.md5(data).hexdigest(), "[rclone] md5sum of a multipart upload (from its metadata)"
    rclone("check", "--download", str(src.parent), f"dooz:{bucket}/mp", step="check --download multipart")
    assert sha256(rclone("cat", f"dooz:{bucket}/mp/chunked file.bin", step="cat multipart").stdout) == sha256(data)
