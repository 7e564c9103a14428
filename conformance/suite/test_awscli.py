"""aws cli (v1) against Dooz: s3 mb/cp/sync/ls/rm/rb on 1,000-file trees with
awkward names, a 200 MiB multipart upload, s3api with metadata, presigned
URLs downloaded with curl, list-objects-v2 pagination."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path
from urllib.parse import unquote

from helpers import find_tool, make_tree, run, sha256, sha256_file, tree_hashes, write_random_file

TREE_FILES = 1000
LS_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(\d+) (.*)$")


def ls_recursive(aws, url: str, step: str) -> dict[str, int]:
    """key -> size from `aws s3 ls --recursive`."""
    out = aws("s3", "ls", "--recursive", url, step=step).stdout.decode()
    listing = {}
    for line in out.splitlines():
        m = LS_LINE.match(line)
        assert m, f"[aws cli] {step}: unparsable line {line!r}"
        listing[m.group(2)] = int(m.group(1))
    return listing


def list_keys(aws, bucket: str, step: str, prefix: str = "") -> dict[str, int]:
    """key -> size through s3api list-objects-v2 (auto-paginated)."""
    args = ["s3api", "list-objects-v2", "--bucket", bucket, "--output", "json"]
    if prefix:
        args += ["--prefix", prefix]
    out = aws(*args, step=step).stdout.decode().strip()
    doc = json.loads(out) if out else {}
    return {o["Key"]: o["Size"] for o in doc.get("Contents", [])}


def sizes(tree_root: Path, files: dict[str, str], prefix: str) -> dict[str, int]:
    return {prefix + rel: (tree_root / rel).stat().st_size for rel in files}


def test_mb_cp_ls_rm_rb_tree(aws, new_bucket, evidence, rng, tmp_path):
    """s3 mb, cp --recursive up/down, ls, rm --recursive, rb (1,000-file tree)"""
    b = new_bucket(create=False)
    aws("s3", "mb", f"s3://{b}", step="s3 mb")
    p = aws("s3", "mb", f"s3://{b}", step="s3 mb of an existing bucket", expect_rc="nonzero")
    assert b"BucketAlreadyOwnedByYou" in p.stderr, f"[aws cli] s3 mb twice: {p.stderr!r}"
    buckets = aws("s3", "ls", step="s3 ls (buckets)").stdout.decode()
    assert any(line.split()[-1] == b for line in buckets.splitlines()), f"[aws cli] s3 ls lacks {b}:\n{buckets}"

    tree = make_tree(tmp_path / "tree", rng, TREE_FILES, evidence.new_marker())
    aws("s3", "cp", "--recursive", "--only-show-errors", str(tree.root), f"s3://{b}/tree/", step="s3 cp --recursive up")

    listing = ls_recursive(aws, f"s3://{b}/tree/", "s3 ls --recursive")
    assert listing == sizes(tree.root, tree.files, "tree/"), "[aws cli] s3 ls --recursive differs from the uploaded tree"

    top = aws("s3", "ls", f"s3://{b}/tree/", step="s3 ls (one level)").stdout.decode()
    prefixes = {line.split("PRE ", 1)[1] for line in top.splitlines() if " PRE " in line}
    expected_prefixes = {rel.split("/", 1)[0] + "/" for rel in tree.files if "/" in rel}
    assert prefixes == expected_prefixes, f"[aws cli] s3 ls common prefixes: {sorted(prefixes)}"
    top_files = {LS_LINE.match(line).group(2) for line in top.splitlines() if " PRE " not in line}
    assert top_files == {rel for rel in tree.files if "/" not in rel}, "[aws cli] s3 ls files of the top level"

    down = tmp_path / "down"
    aws("s3", "cp", "--recursive", "--only-show-errors", f"s3://{b}/tree/", str(down), step="s3 cp --recursive down")
    assert tree_hashes(down) == tree.files, "[aws cli] downloaded tree differs from the uploaded one (sha256)"

    p = aws("s3", "rb", f"s3://{b}", step="s3 rb of a non-empty bucket", expect_rc="nonzero")
    assert b"BucketNotEmpty" in p.stderr, f"[aws cli] s3 rb non-empty: {p.stderr!r}"
    p = aws("s3", "cp", f"s3://{b}/tree/no-such-key", str(tmp_path / "x"), step="s3 cp of a missing key", expect_rc=1)
    assert b"404" in p.stderr or b"Not Found" in p.stderr, p.stderr
    p = aws("s3", "ls", f"s3://{b}-missing", step="s3 ls of a missing bucket", expect_rc="nonzero")
    assert b"NoSuchBucket" in p.stderr, p.stderr

    aws("s3", "rm", "--recursive", "--only-show-errors", f"s3://{b}/tree/", step="s3 rm --recursive")
    assert list_keys(aws, b, "list after s3 rm --recursive") == {}, "[aws cli] objects left after s3 rm --recursive"
    aws("s3", "rb", f"s3://{b}", step="s3 rb")
    buckets = aws("s3", "ls", step="s3 ls after rb").stdout.decode()
    assert not any(line.split()[-1] == b for line in buckets.splitlines()), "[aws cli] bucket still listed after s3 rb"


def test_sync_tree(aws, bucket, evidence, rng, tmp_path):
    """s3 sync up (1,000 files), changes with --delete, sync down, no-op sync"""
    tree = make_tree(tmp_path / "tree", rng, TREE_FILES, evidence.new_marker())
    url = f"s3://{bucket}/sync/"
    p = aws("s3", "sync", "--no-progress", str(tree.root), url, step="s3 sync up")
    uploads = [line for line in p.stdout.decode().splitlines() if line.startswith("upload:")]
    assert len(uploads) == TREE_FILES, f"[aws cli] s3 sync up reported {len(uploads)} uploads"
    assert list_keys(aws, bucket, "list after sync up") == sizes(tree.root, tree.files, "sync/")

    # Change 20 files (new sizes), add 10, delete 30.
    rels = sorted(tree.files)
    rng.shuffle(rels)
    changed, deleted = rels[:20], rels[20:50]
    for rel in changed:
        (tree.root / rel).write_bytes(rng.randbytes(5000 + rng.randrange(1000)))
    for rel in deleted:
        (tree.root / rel).unlink()
    for i in range(10):
        (tree.root / "new dir ✓" / f"added+{i}.bin").parent.mkdir(exist_ok=True)
        (tree.root / "new dir ✓" / f"added+{i}.bin").write_bytes(rng.randbytes(100 + i))
    now = tree_hashes(tree.root)

    p = aws("s3", "sync", "--no-progress", "--delete", str(tree.root), url, step="s3 sync --delete")
    lines = p.stdout.decode().splitlines()
    assert sum(line.startswith("upload:") for line in lines) == 30, f"[aws cli] s3 sync --delete uploads:\n{p.stdout.decode()[:3000]}"
    assert sum(line.startswith("delete:") for line in lines) == 30, f"[aws cli] s3 sync --delete deletions:\n{p.stdout.decode()[:3000]}"
    assert list_keys(aws, bucket, "list after sync --delete") == sizes(tree.root, now, "sync/"), (
        "[aws cli] bucket differs from the local tree after s3 sync --delete"
    )

    down = tmp_path / "down"
    aws("s3", "sync", "--only-show-errors", url, str(down), step="s3 sync down")
    assert tree_hashes(down) == now, "[aws cli] s3 sync down: tree differs (sha256)"

    p = aws("s3", "sync", "--no-progress", "--delete", str(tree.root), url, step="s3 sync without changes")
    assert p.stdout.decode().strip() == "", f"[aws cli] a second sync transferred: {p.stdout.decode()[:2000]}"


def test_multipart_upload_200mib(aws, bucket, evidence, rng, tmp_path):
    """s3 cp of a 200 MiB file (multipart, 8 MiB parts) and back"""
    src = tmp_path / "big.bin"
    data = write_random_file(src, rng, 200 << 20, evidence.new_marker())
    evidence.known(data, "the 200 MiB file")
    evidence.known(data[:1 << 20], "the 200 MiB file's first MiB")
    part = 8 << 20
    parts = [data[i : i + part] for i in range(0, len(data), part)]
    expected_etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    want = sha256(data)
    del data, parts

    aws("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/big file+1.bin", step="s3 cp multipart up", timeout=900)
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "big file+1.bin", step="s3api head-object").stdout)
    assert head["ContentLength"] == 200 << 20, f"[aws cli] head-object ContentLength {head['ContentLength']}"
    assert head["ETag"].strip('"') == expected_etag, f"[aws cli] multipart ETag {head['ETag']} != {expected_etag}"
    assert math.ceil((200 << 20) / part) == int(expected_etag.rsplit("-", 1)[1])

    out = tmp_path / "back.bin"
    aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/big file+1.bin", str(out), step="s3 cp multipart down", timeout=900)
    assert sha256_file(out) == want, "[aws cli] the 200 MiB download differs (sha256)"

    rng_out = tmp_path / "range.bin"
    first = (8 << 20) - 100
    aws(
        "s3api", "get-object", "--bucket", bucket, "--key", "big file+1.bin",
        "--range", f"bytes={first}-{first + 199}", str(rng_out), step="s3api get-object --range across parts",
    )
    with open(src, "rb") as f:
        f.seek(first)
        assert rng_out.read_bytes() == f.read(200), "[aws cli] ranged read across a part boundary"


def test_s3api_put_get_head_metadata(aws, bucket, evidence, rng, tmp_path):
    """s3api put-object/head-object/get-object/copy-object with metadata"""
    marker = evidence.new_marker()
    body = tmp_path / "body.txt"
    data = write_random_file(body, rng, 300_000, marker)
    evidence.known(data, "s3api body")
    p = aws(
        "s3api", "put-object", "--bucket", bucket, "--key", "docs/ré sumé+1.txt", "--body", str(body),
        "--content-type", "text/x-conformance", "--cache-control", "max-age=60",
        "--metadata", "color=blue,owner-id=4711", step="s3api put-object",
    )
    etag = json.loads(p.stdout)["ETag"].strip('"')
    assert etag == hashlib.md5(data).hexdigest(), f"[aws cli] put-object ETag {etag}"

    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "docs/ré sumé+1.txt", step="s3api head-object").stdout)
    assert head["ContentType"] == "text/x-conformance"
    assert head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"color": "blue", "owner-id": "4711"}, f"[aws cli] head-object metadata {head['Metadata']}"
    assert head["ContentLength"] == len(data)

    out = tmp_path / "out.txt"
    got = json.loads(aws("s3api", "get-object", "--bucket", bucket, "--key", "docs/ré sumé+1.txt", str(out), step="s3api get-object").stdout)
    assert got["Metadata"] == {"color": "blue", "owner-id": "4711"}
    assert sha256_file(out) == sha256(data), "[aws cli] s3api get-object body differs (sha256)"

    aws(
        "s3api", "copy-object", "--bucket", bucket, "--key", "copy.txt", "--copy-source", f"{bucket}/docs/ré sumé+1.txt",
        "--metadata-directive", "REPLACE", "--metadata", "color=red", "--content-type", "text/plain",
        step="s3api copy-object REPLACE",
    )
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "copy.txt", step="s3api head-object of the copy").stdout)
    assert head["Metadata"] == {"color": "red"} and head["ContentType"] == "text/plain", head
    assert head["ETag"].strip('"') == etag

    p = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", step="s3api head-object of a missing key", expect_rc=255)
    assert b"404" in p.stderr, p.stderr
    p = aws("s3api", "get-object", "--bucket", bucket, "--key", "nope", str(out), step="s3api get-object of a missing key", expect_rc=255)
    assert b"NoSuchKey" in p.stderr, p.stderr


def test_presign_and_curl(aws, bucket, evidence, rng, tmp_path):
    """s3 presign, then curl downloads (valid, tampered, expired)"""
    src = tmp_path / "shared.bin"
    data = write_random_file(src, rng, 1 << 20, evidence.new_marker())
    evidence.known(data, "presigned object")
    aws("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/shared file.bin", step="s3 cp")
    url = aws("s3", "presign", f"s3://{bucket}/shared file.bin", "--expires-in", "600", step="s3 presign").stdout.decode().strip()
    assert "X-Amz-Signature=" in url, f"[aws cli] s3 presign printed {url!r}"

    curl = find_tool("curl")
    out = tmp_path / "curl.bin"
    run([curl, "-sS", "--fail", "-o", str(out), url], client="curl", step="download of a presigned URL")
    assert sha256_file(out) == sha256(data), "[curl] presigned download differs (sha256)"

    tampered = re.sub(r"X-Amz-Signature=([0-9a-f])", lambda m: "X-Amz-Signature=" + ("0" if m.group(1) != "0" else "1"), url)
    p = run([curl, "-sS", "-o", "-", "-w", "\n%{http_code}", tampered], client="curl", step="tampered presigned URL")
    body, status = p.stdout.decode().rsplit("\n", 1)
    assert status == "403" and "SignatureDoesNotMatch" in body, f"[curl] tampered URL: {status} {body[:300]}"

    short = aws("s3", "presign", f"s3://{bucket}/shared file.bin", "--expires-in", "1", step="s3 presign (1 s)").stdout.decode().strip()
    time.sleep(2.5)
    p = run([curl, "-sS", "-o", "-", "-w", "\n%{http_code}", short], client="curl", step="expired presigned URL")
    body, status = p.stdout.decode().rsplit("\n", 1)
    assert status == "403" and "AccessDenied" in body, f"[curl] expired URL: {status} {body[:300]}"


def test_list_objects_v2_pagination(aws, bucket, evidence, rng, tmp_path):
    """s3api list-objects-v2 pagination (page size, max-items, starting-token, delimiter)"""
    tree = make_tree(tmp_path / "tree", rng, 240, evidence.new_marker(), max_size=64)
    aws("s3", "cp", "--recursive", "--only-show-errors", str(tree.root), f"s3://{bucket}/", step="s3 cp --recursive")
    expected = sorted(tree.files, key=lambda k: k.encode())

    def keys_of(doc):
        return [o["Key"] for o in doc.get("Contents", [])]

    base = ["s3api", "list-objects-v2", "--bucket", bucket, "--output", "json"]
    doc = json.loads(aws(*base, "--page-size", "17", step="list-objects-v2 --page-size 17").stdout)
    assert keys_of(doc) == expected, "[aws cli] paginated listing (17 per page) is not every key in UTF-8 order"

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        args = [*base, "--max-items", "50", "--page-size", "20"]
        if token:
            args += ["--starting-token", token]
        doc = json.loads(aws(*args, step=f"list-objects-v2 --max-items 50 page {pages + 1}").stdout)
        seen += keys_of(doc)
        pages += 1
        token = doc.get("NextToken")
        if not token:
            break
        assert len(keys_of(doc)) == 50, f"[aws cli] page {pages} had {len(keys_of(doc))} keys"
        assert pages < 20, "[aws cli] pagination does not end"
    assert seen == expected and pages == math.ceil(len(expected) / 50), f"[aws cli] {pages} pages, {len(seen)} keys"

    doc = json.loads(aws(*base, "--delimiter", "/", step="list-objects-v2 --delimiter /").stdout)
    prefixes = [p["Prefix"] for p in doc.get("CommonPrefixes", [])]
    assert prefixes == sorted({k.split("/", 1)[0] + "/" for k in tree.files if "/" in k}, key=str.encode)
    assert keys_of(doc) == [k for k in expected if "/" not in k]

    after = expected[100]
    doc = json.loads(aws(*base, "--start-after", after, step="list-objects-v2 --start-after").stdout)
    assert keys_of(doc) == expected[101:], "[aws cli] --start-after"

    # Asked for explicitly, url encoding comes back to the user as sent.
    doc = json.loads(aws(*base, "--prefix", "with space/", "--encoding-type", "url", step="list-objects-v2 --encoding-type url").stdout)
    encoded = keys_of(doc)
    assert encoded and all("with%20space/" in k and " " not in k for k in encoded), f"[aws cli] --encoding-type url: {encoded[:3]}"
    assert [unquote(k) for k in encoded] == [k for k in expected if k.startswith("with space/")], "[aws cli] --encoding-type url"
