"""Self-checks of the harness: the plaintext scanner finds what it must, the
after-test fsck check can fail, and the scan really covers each deployment's
backend. If these pass, a clean scan and a clean fsck mean something."""

from __future__ import annotations

import os
import shutil
import sqlite3

import helpers
from helpers import Deployment, Evidence, Scanner, UploadEvidence, seeded_rng


def _evidence(name: str):
    ev = Evidence()
    return ev, UploadEvidence(ev, name, seeded_rng("harness", name))


def test_scanner_finds_plaintext(tmp_path):
    """plaintext scanner finds markers and known slices"""
    rng = seeded_rng("harness", "scanner")
    ev, tev = _evidence("scanner")
    marker = tev.new_marker().encode()
    data = rng.randbytes(100_000)
    tev.known(data, "sample")
    backend = tmp_path / "backend"
    (backend / "sub").mkdir(parents=True)
    scanner = Scanner([backend])

    (backend / "clean.bin").write_bytes(rng.randbytes(50_000))
    findings, read = scanner.scan(ev.needles())
    assert findings == [] and read == 50_000

    # A whole random file: its registered 4 KiB slice is found.
    (backend / "sub" / "pack.dzp").write_bytes(rng.randbytes(777) + data + rng.randbytes(10))
    findings, _ = scanner.scan(ev.needles())
    assert [f.what.startswith("4096-byte slice of sample") for f in findings] == [True], findings
    # One flipped byte in the slice: not the known plaintext any more.
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0xFF
    (backend / "sub" / "pack.dzp").unlink()
    (backend / "other.dzp").write_bytes(bytes(altered))
    findings, _ = scanner.scan(ev.needles())
    assert findings == [], findings

    # A marker written across the end of what an earlier scan saw.
    vol = backend / "1.dat"
    vol.write_bytes(rng.randbytes(10_000) + marker[:10])
    assert scanner.scan(ev.needles())[0] == []
    with open(vol, "ab") as f:
        f.write(marker[10:] + rng.randbytes(1_000))
    findings, read = scanner.scan(ev.needles())
    overlap = helpers.SLICE_LEN - 1
    assert read == overlap + len(marker) - 10 + 1_000, "only the appended bytes (and the overlap) are read again"
    assert len(findings) == 1 and findings[0].offset == 10_000, findings
    assert marker.decode() in findings[0].what

    # A replaced file (new inode, smaller) is read from the start again.
    new = backend / "replacement"
    new.write_bytes(marker + rng.randbytes(100))
    os.replace(new, backend / "clean.bin")
    findings, _ = scanner.scan(ev.needles())
    assert any(f.path.endswith("clean.bin") and f.offset == 0 for f in findings), findings

    # Needles across the scanner's read blocks.
    small = Scanner([backend])
    small.BLOCK = 4096
    findings, _ = small.scan(ev.needles(), full=True)
    assert {os.path.basename(f.path) for f in findings} == {"1.dat", "clean.bin"}, findings


def test_checksum_helpers_match_known_answers():
    """checksum helpers (CRC32C, CRC64NVME) match published check values"""
    assert helpers.crc32c(b"123456789") == 0xE3069283
    assert helpers.crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert helpers.checksum_b64("crc32", b"") == "AAAAAA=="


def test_fsck_reports_inconsistencies(dooz_bin):
    """`dooz fsck` exits non-zero on refcount drift and on a missing pack"""
    root = helpers.new_temp_root("dooz-conformance-fsck-")
    d = Deployment("embedded", dooz_bin, root)
    try:
        d.start()
        s3 = d.boto3_client()
        s3.create_bucket(Bucket="fsck-probe")
        rng = seeded_rng("harness", "fsck")
        for i in range(3):
            s3.put_object(Bucket="fsck-probe", Key=f"k{i}", Body=rng.randbytes(300_000))
        assert not d.stop(), "clean shutdown"
        rc, report, text = d.fsck()
        assert rc == 0 and report["clean"] is True, text

        db = sqlite3.connect(d.data_dir / "meta.db")
        one = db.execute("SELECT tenant_id, chunk_id FROM chunks ORDER BY chunk_id LIMIT 1").fetchone()
        assert one is not None, "the uploads created chunk rows"
        bump = "UPDATE chunks SET refcount = refcount + ? WHERE tenant_id = ? AND chunk_id = ?"
        with db:
            assert db.execute(bump, (1, *one)).rowcount == 1
        rc, report, text = d.fsck()
        assert rc == 1 and report["clean"] is False and len(report["refcount_mismatches"]) == 1, text
        with db:
            db.execute(bump, (-1, *one))
        db.close()
        rc, report, text = d.fsck()
        assert rc == 0, text

        packs = sorted((d.data_dir / "packs").rglob("*.dzp"))
        assert packs, "the local backend holds packs"
        packs[0].unlink()
        rc, report, text = d.fsck()
        assert rc == 1 and len(report["missing_packs"]) == 1, text
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_backend_scan_covers_uploads(deployment, s3, bucket, evidence, rng):
    """backend scan sees the bytes of every upload"""
    scanner: Scanner = deployment.scanner
    before = scanner.total_bytes()
    data = rng.randbytes(3 << 20)
    marker = evidence.new_marker()
    body = marker.encode() + data
    evidence.known(data, "harness probe")
    s3.put_object(Bucket=bucket, Key="probe", Body=body)
    grown = scanner.total_bytes() - before
    assert grown >= len(body), (
        f"the scanned directories {scanner.roots} grew by {grown} bytes after a {len(body)}-byte "
        "incompressible upload: the scan does not cover where the backend writes"
    )
    got = s3.get_object(Bucket=bucket, Key="probe")["Body"].read()
    assert helpers.sha256(got) == helpers.sha256(body)
