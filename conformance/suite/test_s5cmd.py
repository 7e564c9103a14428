"""s5cmd against Dooz: mb, cp, ls, cat, rm, rb, sync, and a parallel copy of
1,000 small files each way."""

from __future__ import annotations

import json

from helpers import make_tree, sha256, sha256_file, tree_hashes, write_random_file


def ls(s5cmd, pattern: str, step: str) -> dict[str, int]:
    """s3 url -> size, from `s5cmd --json ls`."""
    p = s5cmd("--json", "ls", pattern, step=step, expect_rc=None)
    if p.returncode != 0:
        # s5cmd exits 1 with "no object found" on an empty listing.
        assert b"no object found" in p.stderr, f"[s5cmd] {step}: exit {p.returncode}: {p.stderr[-1000:]!r}"
        return {}
    out = {}
    for line in p.stdout.decode().splitlines():
        e = json.loads(line)
        if e.get("type") == "file":
            out[e["key"]] = e.get("size", 0)  # omitted when 0
    return out


def test_cp_ls_cat_rm(s5cmd, new_bucket, evidence, rng, tmp_path):
    """mb, cp up/down, ls, cat, rm, rb"""
    b = new_bucket(create=False)
    s5cmd("mb", f"s3://{b}", step="mb")
    src = tmp_path / "one file+é.bin"
    data = write_random_file(src, rng, 3 << 20, evidence.new_marker())
    evidence.known(data, "s5cmd file")
    s5cmd("cp", str(src), f"s3://{b}/d/one file+é.bin", step="cp up")
    assert ls(s5cmd, f"s3://{b}/*", "ls") == {f"s3://{b}/d/one file+é.bin": len(data)}
    assert sha256(s5cmd("cat", f"s3://{b}/d/one file+é.bin", step="cat").stdout) == sha256(data), "[s5cmd] cat"
    out = tmp_path / "back.bin"
    s5cmd("cp", f"s3://{b}/d/one file+é.bin", str(out), step="cp down")
    assert sha256_file(out) == sha256(data), "[s5cmd] cp down: bytes differ"
    p = s5cmd("cp", f"s3://{b}/d/missing", str(tmp_path / "x"), step="cp of a missing key", expect_rc="nonzero")
    assert b"NoSuchKey" in p.stderr or b"not found" in p.stderr.lower() or b"404" in p.stderr, p.stderr
    p = s5cmd("rb", f"s3://{b}", step="rb of a non-empty bucket", expect_rc="nonzero")
    assert b"BucketNotEmpty" in p.stderr, p.stderr
    s5cmd("rm", f"s3://{b}/d/one file+é.bin", step="rm")
    assert ls(s5cmd, f"s3://{b}/*", "ls after rm") == {}
    s5cmd("rb", f"s3://{b}", step="rb")
    assert f"s3://{b}" not in s5cmd("ls", step="ls (buckets)").stdout.decode()


def test_parallel_copy_1000_files(s5cmd, bucket, evidence, rng, tmp_path):
    """parallel cp of 1,000 small files up and down, rm by wildcard"""
    tree = make_tree(tmp_path / "tree", rng, 1000, evidence.new_marker(), max_size=2048)
    s5cmd("--numworkers", "64", "cp", f"{tree.root}/*", f"s3://{bucket}/p/", step="parallel cp up", timeout=900)
    want = {f"s3://{bucket}/p/{rel}": (tree.root / rel).stat().st_size for rel in tree.files}
    assert ls(s5cmd, f"s3://{bucket}/p/*", "ls after parallel cp") == want, "[s5cmd] listing differs from the tree"
    down = tmp_path / "down"
    s5cmd("--numworkers", "64", "cp", f"s3://{bucket}/p/*", f"{down}/", step="parallel cp down", timeout=900)
    assert tree_hashes(down) == tree.files, "[s5cmd] downloaded tree differs (sha256)"
    s5cmd("rm", f"s3://{bucket}/p/*", step="rm by wildcard (DeleteObjects)")
    assert ls(s5cmd, f"s3://{bucket}/p/*", "ls after rm") == {}


def test_sync(s5cmd, bucket, evidence, rng, tmp_path):
    """sync up, sync --delete"""
    tree = make_tree(tmp_path / "tree", rng, 150, evidence.new_marker())
    s5cmd("sync", f"{tree.root}/", f"s3://{bucket}/s/", step="sync up")
    rels = sorted(tree.files)
    rng.shuffle(rels)
    for rel in rels[:10]:
        (tree.root / rel).write_bytes(rng.randbytes(4321))
    for rel in rels[10:20]:
        (tree.root / rel).unlink()
    now = tree_hashes(tree.root)
    s5cmd("sync", "--delete", f"{tree.root}/", f"s3://{bucket}/s/", step="sync --delete")
    want = {f"s3://{bucket}/s/{rel}": (tree.root / rel).stat().st_size for rel in now}
    assert ls(s5cmd, f"s3://{bucket}/s/*", "ls after sync --delete") == want, "[s5cmd] bucket differs after sync --delete"
    down = tmp_path / "down"
    s5cmd("sync", f"s3://{bucket}/s/*", f"{down}/", step="sync down")
    assert tree_hashes(down) == now, "[s5cmd] sync down: tree differs (sha256)"
