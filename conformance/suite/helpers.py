"""The harness behind the client conformance suite.

Starts the real peers (a `dooz` process, PostgreSQL databases, SeaweedFS) on
free 127.0.0.1 ports in temporary directories, runs the S3 clients with
configuration that never touches the user's own (~/.aws, ~/.s3cfg, rclone.conf),
generates reproducible test data, and checks the backend for plaintext.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unicodedata
import urllib.error
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Every object the suite uploads that should be findable in plaintext carries
# this prefix; the backend must never contain it.
MARKER_PREFIX = b"DOOZ-CONFORMANCE-MARKER-"
# Length of a known-plaintext slice taken from uploaded random data.
SLICE_LEN = 4096

REGION = "us-east-1"


# --------------------------------------------------------------------------
# processes and tools


def find_tool(name: str) -> str:
    """A peer's executable from PATH (scripts/conformance puts the venv first)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` not found on PATH: install the test peers with "
            "scripts/install-test-deps and put the directory it prints on PATH "
            "(scripts/conformance does both)",
            pytrace=False,
        )
    return path


def tail(text: str | bytes, lines: int = 25) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def file_tail(path: Path, lines: int = 40) -> str:
    try:
        return tail(path.read_bytes(), lines)
    except OSError as e:
        return f"(no log: {e})"


def run(
    cmd: list[str],
    *,
    client: str,
    step: str,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 600,
    expect_rc: int | str | None = 0,
    input: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Runs a client command; fails the test naming the client and the step.

    expect_rc: an exit code, "nonzero", or None (caller checks)."""
    started = time.monotonic()
    try:
        p = subprocess.run(
            [str(c) for c in cmd],
            env=env,
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"[{client}] step '{step}': timed out after {timeout:.0f}s: {shlex.join(map(str, cmd))}\n"
            f"--- stdout ---\n{tail(e.stdout or b'')}\n--- stderr ---\n{tail(e.stderr or b'')}",
            pytrace=False,
        )
    ok = (
        expect_rc is None
        or (expect_rc == "nonzero" and p.returncode != 0)
        or (p.returncode == expect_rc)
    )
    if not ok:
        pytest.fail(
            f"[{client}] step '{step}': exit code {p.returncode}, expected {expect_rc} "
            f"({time.monotonic() - started:.1f}s): {shlex.join(map(str, cmd))}\n"
            f"--- stdout ---\n{tail(p.stdout)}\n--- stderr ---\n{tail(p.stderr)}",
            pytrace=False,
        )
    return p


_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(with_grpc: bool = False) -> int:
    """A free 127.0.0.1 port this process has not handed out before. With
    with_grpc, port + 10000 (SeaweedFS's gRPC convention) is free too. Both stay
    below Linux's ephemeral range (32768+), where an outgoing connection could
    take the gRPC port before SeaweedFS binds it."""
    rnd = random.SystemRandom()
    while True:
        p = rnd.randrange(10000, 22000)
        if p in _handed_out or (with_grpc and p + 10000 in _handed_out):
            continue
        if _bindable(p) and (not with_grpc or _bindable(p + 10000)):
            _handed_out.add(p)
            if with_grpc:
                _handed_out.add(p + 10000)
            return p


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


# Last-resort cleanups (processes, databases) if the session dies without
# running its fixture finalizers.
_CLEANUPS: dict[int, "callable"] = {}


def _run_cleanups() -> None:
    for key in list(_CLEANUPS):
        fn = _CLEANUPS.pop(key, None)
        if fn is not None:
            try:
                fn()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass


def install_cleanup_handlers() -> None:
    """atexit, and SIGTERM turned into KeyboardInterrupt so that pytest runs
    the finalizers that stop the peers."""
    atexit.register(_run_cleanups)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)


class Process:
    """A child process with its output in a log file; SIGTERM then SIGKILL."""

    def __init__(self, what: str, cmd: list[str], log: Path, env: dict[str, str]):
        self.what = what
        self.log = log
        self._log_fh = open(log, "ab")
        self.proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _CLEANUPS[id(self)] = self.kill

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, grace: float = 30.0) -> int | None:
        """SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit code of
        the SIGTERM path (None if it had to be killed)."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            code = self.proc.returncode
        self._log_fh.close()
        _CLEANUPS.pop(id(self), None)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_fh.close()
        _CLEANUPS.pop(id(self), None)


# --------------------------------------------------------------------------
# test data


def seeded_rng(*parts: object) -> random.Random:
    """A PRNG seeded from the session seed and a name: reproducible data."""
    text = "/".join(str(p) for p in parts)
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """relative posix path -> sha256 of every file under root."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


# Directory and file names with the characters clients get wrong: spaces,
# '+', percent signs, non-ASCII letters, CJK, emoji, deep nesting.
TREE_DIRS = [
    "",
    "plain",
    "with space",
    "plus+sign",
    "naïve café",
    "数据/子 目录",
    "emoji 📦/a+b c",
    "deep/1/2/3/4/5/6",
    "pct%20literal",
]
NAME_STEMS = ["file", "a b", "x+y", "ünïcödé", "résumé+cv", "日本語", "ok_name", "tilde~"]


@dataclass
class Tree:
    root: Path
    files: dict[str, str]  # relpath -> sha256

    def __len__(self) -> int:
        return len(self.files)


def make_tree(
    root: Path,
    rng: random.Random,
    count: int,
    marker: str,
    max_size: int = 4096,
) -> Tree:
    """`count` files of random bytes (0..max_size) in nested directories with
    awkward names; every 50th file carries the marker in its content."""
    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        d = TREE_DIRS[i % len(TREE_DIRS)]
        stem = NAME_STEMS[rng.randrange(len(NAME_STEMS))]
        name = unicodedata.normalize("NFC", f"{stem} {i:04d}.bin")
        rel = f"{d}/{name}" if d else name
        size = 0 if i == 7 else rng.randrange(1, max_size + 1)
        data = rng.randbytes(size)
        if i % 50 == 0:
            data = data[: size // 2] + marker.encode() + data[size // 2 :]
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = sha256(data)
    return Tree(root, files)


def write_random_file(path: Path, rng: random.Random, size: int, marker: str | None = None) -> bytes:
    data = rng.randbytes(size)
    if marker:
        mid = size // 2
        data = data[:mid] + marker.encode() + data[mid + len(marker) :]
        data = data[:size]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


# --------------------------------------------------------------------------
# checksums botocore cannot compute without awscrt (CRC32C, CRC64NVME)


def _table(poly: int, width: int) -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & ((1 << width) - 1))
    return table


_CRC32C = _table(0x82F63B78, 32)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5, 64)


def _reflected_crc(table: list, width: int, data: bytes) -> int:
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def crc32c(data: bytes) -> int:
    return _reflected_crc(_CRC32C, 32, data)


def crc64nvme(data: bytes) -> int:
    return _reflected_crc(_CRC64NVME, 64, data)


def checksum_b64(alg: str, data: bytes) -> str:
    """S3's base64 value of x-amz-checksum-<alg> for `data`."""
    alg = alg.lower()
    if alg == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif alg == "crc32c":
        raw = crc32c(data).to_bytes(4, "big")
    elif alg == "crc64nvme":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif alg == "sha1":
        raw = hashlib.sha1(data).digest()
    elif alg == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(alg)
    return base64.b64encode(raw).decode()


def composite_checksum(alg: str, parts: list[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: the checksum of the concatenated
    binary part checksums, then '-<number of parts>'."""
    raws = b"".join(base64.b64decode(checksum_b64(alg, p)) for p in parts)
    return f"{checksum_b64(alg, raws)}-{len(parts)}"


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


# --------------------------------------------------------------------------
# plaintext scanning


@dataclass
class Finding:
    path: str
    offset: int
    what: str

    def __str__(self) -> str:
        return f"{self.what} at byte {self.offset} of {self.path}"


class Scanner:
    """Searches every file under some roots for byte strings.

    Incremental: for each file it remembers (inode, bytes scanned) and next
    time scans only what was appended (plus an overlap of the longest needle
    minus one byte, so a needle across the old end is found). A file that
    shrank or was replaced (new inode) is scanned from the start. Pack files
    are written once and SeaweedFS volumes are append-only, so nothing is
    missed; `full=True` rescans everything."""

    BLOCK = 64 << 20

    def __init__(self, roots: list[Path], skip: tuple[str, ...] = ()):
        self.roots = roots
        self.skip = skip
        self._seen: dict[str, tuple[int, int]] = {}

    def files(self) -> list[Path]:
        out = []
        for root in self.roots:
            for dirpath, _dirs, names in os.walk(root):
                for n in names:
                    if n in self.skip:
                        continue
                    p = Path(dirpath) / n
                    if p.is_file() and not p.is_symlink():
                        out.append(p)
        return sorted(out)

    def total_bytes(self) -> int:
        total = 0
        for p in self.files():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def scan(self, needles: dict[str, bytes], full: bool = False) -> tuple[list[Finding], int]:
        """Returns (findings, bytes read)."""
        if not needles:
            return [], 0
        overlap = max(len(n) for n in needles.values()) - 1
        findings: list[Finding] = []
        read_total = 0
        for p in self.files():
            key = str(p)
            try:
                st = p.stat()
            except OSError:
                continue  # vanished (a temp file of the backend)
            prev = self._seen.get(key)
            same_file = not full and prev is not None and prev[0] == st.st_ino
            if same_file and st.st_size == prev[1]:
                continue
            start = max(0, prev[1] - overlap) if same_file and st.st_size > prev[1] else 0
            end = start
            try:
                with open(p, "rb") as f:
                    f.seek(start)
                    carry = b""
                    pos = start
                    while True:
                        block = f.read(self.BLOCK)
                        if not block:
                            break
                        buf = carry + block
                        base = pos - len(carry)
                        for what, needle in needles.items():
                            i = buf.find(needle)
                            while i != -1:
                                findings.append(Finding(key, base + i, describe(what, buf, i)))
                                i = buf.find(needle, i + 1)
                        pos += len(block)
                        read_total += len(block)
                        carry = buf[-overlap:] if overlap > 0 else b""
                    end = pos
            except OSError:
                continue
            self._seen[key] = (st.st_ino, end)
        # One needle may be found twice in the overlap of two blocks.
        unique = {(f.path, f.offset, f.what): f for f in findings}
        return list(unique.values()), read_total


def describe(what: str, buf: bytes, i: int) -> str:
    if what == "marker":
        found = buf[i : i + len(MARKER_PREFIX) + 36].decode("ascii", "replace")
        return f"marker {found!r}"
    return what


# --------------------------------------------------------------------------
# evidence: what each test uploaded that must never reach the backend in plaintext


class Evidence:
    """Markers and known-plaintext slices registered by the tests of one deployment."""

    def __init__(self) -> None:
        self.markers: list[str] = []
        self.slices: dict[str, bytes] = {}
        self.by_test: dict[str, int] = {}

    def needles(self) -> dict[str, bytes]:
        out = {"marker": MARKER_PREFIX}
        out.update(self.slices)
        return out


class UploadEvidence:
    """The per-test handle: `new_marker()` and `known(data)`."""

    def __init__(self, evidence: Evidence, test: str, rng: random.Random):
        self._ev = evidence
        self._test = test
        self._rng = rng
        self.count = 0

    def new_marker(self) -> str:
        m = f"{MARKER_PREFIX.decode()}{uuid.UUID(int=self._rng.getrandbits(128))}"
        self._ev.markers.append(m)
        self.count += 1
        return m

    def known(self, data: bytes, label: str = "") -> None:
        """Registers a 4 KiB slice from the middle of uploaded random data."""
        if len(data) < SLICE_LEN:
            return
        off = (len(data) - SLICE_LEN) // 2
        self._ev.slices[f"{SLICE_LEN}-byte slice of {label or 'a file'} uploaded by {self._test}"] = bytes(
            data[off : off + SLICE_LEN]
        )


# --------------------------------------------------------------------------
# peers: PostgreSQL, SeaweedFS


def pg_params() -> dict[str, str]:
    """host, port, user of the PostgreSQL server tests use (DOOZ_TEST_PG, as
    the Rust tests read it: libpq key=value text)."""
    out = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
    for kv in os.environ.get("DOOZ_TEST_PG", "").split():
        k, _, v = kv.partition("=")
        if k in out and v:
            out[k] = v
    return out


class PgDatabase:
    def __init__(self) -> None:
        self.params = pg_params()
        self.name = f"dooz_conf_{uuid.uuid4().hex[:12]}"
        self.created = False

    def _args(self) -> list[str]:
        p = self.params
        return ["-h", p["host"], "-p", p["port"], "-U", p["user"]]

    def create(self) -> None:
        r = subprocess.run(
            [find_tool("createdb"), *self._args(), self.name],
            capture_output=True,
            timeout=60,
        )
        if r.returncode != 0:
            pytest.fail(
                f"PostgreSQL is required for the pg-seaweedfs deployment "
                f"({self.params}): createdb failed: {r.stderr.decode(errors='replace')}",
                pytrace=False,
            )
        self.created = True
        _CLEANUPS[id(self)] = self.drop

    def url(self) -> str:
        p = self.params
        return f"postgres://{p['user']}@{p['host']}:{p['port']}/{self.name}"

    def drop(self) -> None:
        if self.created:
            subprocess.run(
                [find_tool("dropdb"), *self._args(), "--if-exists", "--force", self.name],
                capture_output=True,
                timeout=60,
            )
            self.created = False
        _CLEANUPS.pop(id(self), None)


class Seaweed:
    """SeaweedFS (master, volume, filer, S3) in one process, started exactly as
    conformance/src/seaweed.rs does, with one bucket for packs."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.access_key = f"sw{uuid.uuid4().hex[:12]}"
        self.secret_key = f"sws{uuid.uuid4().hex}"
        self.master = free_port(with_grpc=True)
        self.volume = free_port(with_grpc=True)
        self.filer = free_port(with_grpc=True)
        self.s3 = free_port(with_grpc=True)
        self.proc: Process | None = None
        self.log = self.dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def start(self, bucket: str, timeout: float = 90) -> None:
        identities = {
            "identities": [
                {
                    "name": "dooz",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.dir / "s3.json").write_text(json.dumps(identities))
        cmd = [
            find_tool("weed"),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.dir}",
            f"-master.port={self.master}",
            f"-master.port.grpc={self.master + 10000}",
            f"-volume.port={self.volume}",
            f"-volume.port.grpc={self.volume + 10000}",
            f"-filer.port={self.filer}",
            f"-filer.port.grpc={self.filer + 10000}",
            "-s3",
            f"-s3.port={self.s3}",
            f"-s3.port.grpc={self.s3 + 10000}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.dir / 's3.json'}",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            "-debug.port=0",
            "-metricsPort=0",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = Process("SeaweedFS", cmd, self.log, env)
        deadline = time.monotonic() + timeout
        # The S3 API is up once its port and the filer's answer and a volume
        # can be assigned (before that the first PUT fails).
        while time.monotonic() < deadline:
            if not self.proc.running():
                pytest.fail(f"SeaweedFS exited during start:\n{file_tail(self.log)}", pytrace=False)
            if (
                port_open(self.s3)
                and port_open(self.filer)
                and http_status(f"http://127.0.0.1:{self.master}/dir/assign") == 200
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"SeaweedFS did not start within {timeout}s:\n{file_tail(self.log)}", pytrace=False)
        import boto3
        from botocore.config import Config

        c = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        last = None
        while time.monotonic() < deadline:
            try:
                c.create_bucket(Bucket=bucket)
                return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
                time.sleep(0.2)
        pytest.fail(f"creating bucket {bucket} on SeaweedFS: {last}\n{file_tail(self.log)}", pytrace=False)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate(grace=3)
            self.proc = None


# --------------------------------------------------------------------------
# the gateway


@dataclass
class User:
    access_key: str
    secret_key: str


@dataclass
class Deployment:
    """One running `dooz serve` and everything it needs."""

    name: str
    dooz_bin: str
    root: Path
    data_dir: Path = field(init=False)
    meta_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    endpoint: str = ""
    admin_url: str = ""
    root_user: User | None = None
    readonly_user: User | None = None
    seaweed: Seaweed | None = None
    db: PgDatabase | None = None
    proc: Process | None = None
    scanner: Scanner | None = None
    evidence: Evidence = field(default_factory=Evidence)
    s3_port: int = 0

    def __post_init__(self) -> None:
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True)
        self.log = self.root / "dooz.log"

    # -- lifecycle

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOOZ_", "AWS_"))}
        env["RUST_LOG"] = os.environ.get("DOOZ_CONFORMANCE_LOG", "info")
        env["RUST_BACKTRACE"] = "1"
        self.root_user = User(f"DZCONF{uuid.uuid4().hex[:14].upper()}", f"s{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}")
        scan_roots: list[Path]
        if self.name == "embedded":
            scan_roots = [self.data_dir / "packs"]
        elif self.name == "pg-seaweedfs":
            self.seaweed = Seaweed(self.root / "seaweed")
            self.seaweed.start("dooz-packs")
            self.db = PgDatabase()
            self.db.create()
            self.meta_url = self.db.url()
            env.update(
                {
                    "DOOZ_DEFAULT_BACKEND": "sw",
                    "DOOZ_BACKENDS__SW__TYPE": "s3",
                    "DOOZ_BACKENDS__SW__ENDPOINT": self.seaweed.endpoint,
                    "DOOZ_BACKENDS__SW__BUCKET": "dooz-packs",
                    "DOOZ_BACKENDS__SW__REGION": REGION,
                    "DOOZ_BACKENDS__SW__ACCESS_KEY_ID": self.seaweed.access_key,
                    "DOOZ_BACKENDS__SW__SECRET_ACCESS_KEY": self.seaweed.secret_key,
                }
            )
            scan_roots = [self.seaweed.dir]
        else:
            raise ValueError(self.name)
        # Lifecycle: no background passes (tests run `dooz lifecycle run`),
        # and a lifecycle day of one second (the test-only setting).
        env["DOOZ_LIFECYCLE__ENABLED"] = "false"
        env["DOOZ_LIFECYCLE__DEBUG_DAY_SECS"] = "1"
        self.env = env
        self.scanner = Scanner(scan_roots, skip=("weed.log", "s3.json"))

        self.s3_port = free_port()
        admin_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        serve_env = dict(env)
        serve_env["DOOZ_ROOT_ACCESS_KEY"] = self.root_user.access_key
        serve_env["DOOZ_ROOT_SECRET_KEY"] = self.root_user.secret_key
        cmd = [
            self.dooz_bin,
            "serve",
            *self.location_args(),
            "--listen",
            f"127.0.0.1:{self.s3_port}",
            "--admin-listen",
            f"127.0.0.1:{admin_port}",
        ]
        self.proc = Process("dooz", cmd, self.log, serve_env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.proc.running():
                pytest.fail(f"dooz exited during start ({self.name}):\n{file_tail(self.log)}", pytrace=False)
            if http_status(f"{self.admin_url}/health/ready") == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"dooz ({self.name}) not ready within 60s:\n{file_tail(self.log)}", pytrace=False)
        # A second, read-only access key, created through the admin CLI.
        ro = User(f"DZCONFRO{uuid.uuid4().hex[:12].upper()}", f"r{uuid.uuid4().hex}")
        cli_env = dict(env)
        cli_env["DOOZ_NEW_SECRET_KEY"] = ro.secret_key
        self.dooz(
            ["admin", "user", "create", "--tenant", "root", "--name", "conformance-ro", "--policy", "read-only", "--access-key", ro.access_key],
            env=cli_env,
            step="create the read-only access key",
        )
        self.readonly_user = ro

    def stop(self) -> list[str]:
        """Stops everything; returns problems found while stopping."""
        problems = []
        if self.proc is not None:
            code = self.proc.terminate(grace=35)
            if code != 0:
                problems.append(f"dooz ({self.name}) exited with {code} on SIGTERM:\n{file_tail(self.log)}")
            self.proc = None
        if self.seaweed is not None:
            self.seaweed.stop()
        if self.db is not None:
            self.db.drop()
        return problems

    # -- the binary's other commands, on the same data

    def location_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        if self.meta_url:
            args += ["--meta", self.meta_url]
        return args

    def dooz(self, args: list[str], *, env: dict[str, str] | None = None, step: str, expect_rc=0):
        return run(
            [self.dooz_bin, *args, *self.location_args()],
            client="dooz",
            step=step,
            env=env or self.env,
            timeout=300,
            expect_rc=expect_rc,
        )

    def fsck(self) -> tuple[int, dict | None, str]:
        p = self.dooz(["fsck", "--json"], step="fsck", expect_rc=None)
        out = p.stdout.decode("utf-8", "replace")
        try:
            report = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except json.JSONDecodeError:
            report = None
        return p.returncode, report, out + p.stderr.decode("utf-8", "replace")

    def audit_check(self, log_offset: int, since_ms: int) -> list[str]:
        """Problems with the audit log after a scenario: every request the
        gateway's access log shows changing something (any method but GET,
        HEAD, OPTIONS) since `log_offset` has audit records, and one each
        (DeleteObjects: one per key); no audit record without such a request;
        and `dooz audit verify` finds the chain intact."""
        with open(self.log, "rb") as f:
            f.seek(log_offset)
            text = f.read().decode("utf-8", "replace")
        mutations = {}
        for line in text.splitlines():
            if "dooz::access" not in line:
                continue
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the text log's colours
            rid = re.search(r"request_id=([0-9A-F]{16})", line)
            method = re.search(r"method=([A-Z]+)", line)
            op = re.search(r'operation="?(\w+)', line)
            if rid and method and method.group(1) not in ("GET", "HEAD", "OPTIONS"):
                mutations[rid.group(1)] = op.group(1) if op else "?"
        p = self.dooz(["audit", "export", "--format", "jsonl", "--from", str(since_ms)], step="audit export")
        recorded: dict[str, int] = {}
        for line in p.stdout.decode().splitlines():
            row = json.loads(line)
            if row["action"].startswith("s3:"):
                recorded[row["request_id"]] = recorded.get(row["request_id"], 0) + 1
        problems = []
        for rid, op in mutations.items():
            n = recorded.get(rid, 0)
            if n == 0 or (n > 1 and op != "DeleteObjects"):
                problems.append(f"{op} request {rid}: {n} audit records")
        for rid in recorded.keys() - mutations.keys():
            problems.append(f"audit record for request {rid}, which the access log does not show changing anything")
        v = self.dooz(["audit", "verify"], step="audit verify", expect_rc=None)
        if v.returncode != 0:
            problems.append(f"dooz audit verify exit {v.returncode}: {v.stdout.decode(errors='replace')[-2000:]}")
        return problems

    def pack_bytes(self) -> int:
        """Bytes of Dooz's packs on the backend now (SeaweedFS volumes never
        shrink, so there the bucket is listed)."""
        if self.seaweed is None:
            return Scanner([self.data_dir / "packs"]).total_bytes()
        import boto3
        from botocore.config import Config

        c = boto3.client(
            "s3",
            endpoint_url=self.seaweed.endpoint,
            aws_access_key_id=self.seaweed.access_key,
            aws_secret_access_key=self.seaweed.secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        total = 0
        for page in c.get_paginator("list_objects_v2").paginate(Bucket="dooz-packs"):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total

    def check_alive(self) -> None:
        if self.proc is None or not self.proc.running():
            pytest.fail(f"dooz ({self.name}) is not running:\n{file_tail(self.log)}", pytrace=False)

    # -- clients

    def boto3_client(self, user: User | None = None, **config):
        import boto3
        from botocore.config import Config

        u = user or self.root_user
        cfg = {
            "s3": {"addressing_style": "path"},
            "signature_version": "s3v4",
            # No retries: a failing or stalled request must fail the test.
            "retries": {"total_max_attempts": 1, "mode": "standard"},
        }
        cfg.update(config)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=u.access_key,
            aws_secret_access_key=u.secret_key,
            config=Config(**cfg),
        )


def new_temp_root(prefix: str) -> Path:
    base = os.environ.get("DOOZ_CONFORMANCE_TMP") or None
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
