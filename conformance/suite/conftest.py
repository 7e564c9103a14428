"""Fixtures of the client conformance suite: the two deployments, the clients
(aws cli, rclone, boto3, s3cmd, s5cmd) configured for them, the checks that
run after every test (fsck, plaintext scan), and the results table in
conformance/README.md."""

from __future__ import annotations

import datetime
import os
import random
import re
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import helpers
from helpers import Deployment, UploadEvidence, find_tool, run, seeded_rng

DEPLOYMENTS = ["embedded", "pg-seaweedfs"]
CLIENTS = {
    "test_awscli": "aws cli",
    "test_rclone": "rclone",
    "test_boto3": "boto3",
    "test_s3cmd": "s3cmd",
    "test_s5cmd": "s5cmd",
    "test_harness": "harness",
    "test_versioning": "versioning (boto3, aws cli, rclone, dooz)",
    "test_tagging": "tagging (boto3)",
    "test_lifecycle": "lifecycle (boto3, dooz lifecycle, dooz gc)",
    "test_policy": "access policies (boto3, dooz admin policy)",
    "test_surface": "S3 surface (boto3, raw HTTP)",
    "test_browser": "browser (headless Chromium)",
}
SUITE_DIR = Path(__file__).resolve().parent
README = SUITE_DIR.parent / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

SEED = os.environ.get("DOOZ_CONFORMANCE_SEED") or secrets.token_hex(4)
_CLIENT_HOME: list[Path] = []


def pytest_configure(config):
    # Clients must never read or write the user's own configuration: boto3 in
    # this process reads these empty files instead of ~/.aws.
    for k in list(os.environ):
        if k.startswith(("AWS_", "RCLONE_", "S3CMD_")):
            del os.environ[k]
    home = helpers.new_temp_root("dooz-conformance-home-")
    _CLIENT_HOME.append(home)
    (home / "aws-config").write_text("")
    (home / "aws-credentials").write_text("")
    os.environ["AWS_CONFIG_FILE"] = str(home / "aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    helpers.install_cleanup_handlers()


def pytest_unconfigure(config):
    for home in _CLIENT_HOME:
        shutil.rmtree(home, ignore_errors=True)


def pytest_report_header(config):
    return [
        f"dooz conformance: DOOZ_BIN={os.environ.get('DOOZ_BIN', '(unset)')}, "
        f"data seed DOOZ_CONFORMANCE_SEED={SEED}"
    ]


# --------------------------------------------------------------------------
# deployments


@pytest.fixture(scope="session")
def dooz_bin() -> str:
    path = os.environ.get("DOOZ_BIN")
    if not path:
        pytest.fail(
            "DOOZ_BIN is not set: point it at a built `dooz` binary "
            "(scripts/conformance builds one and sets it)",
            pytrace=False,
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"DOOZ_BIN={path} is not an executable file", pytrace=False)
    return path


@pytest.fixture(scope="session", params=DEPLOYMENTS)
def deployment(request, dooz_bin):
    """`dooz serve` on free ports in a temporary directory: `embedded`
    (SQLite + local packs) or `pg-seaweedfs` (PostgreSQL + SeaweedFS S3)."""
    root = helpers.new_temp_root(f"dooz-conformance-{request.param}-")
    d = Deployment(request.param, dooz_bin, root)
    keep = os.environ.get("DOOZ_CONFORMANCE_KEEP") == "1"
    try:
        d.start()
        yield d
        # Last line of defence: everything on the backend, every needle.
        findings, _ = d.scanner.scan(d.evidence.needles(), full=True)
        assert not findings, f"[{d.name}] plaintext on the backend (final full scan):\n" + "\n".join(
            map(str, findings[:20])
        )
    finally:
        problems = d.stop()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    assert not problems, "\n".join(problems)


@pytest.fixture
def rng(request) -> random.Random:
    """The test's PRNG, seeded from the session seed and the test id."""
    return seeded_rng(SEED, request.node.nodeid)


@pytest.fixture
def evidence(request, deployment) -> UploadEvidence:
    """Registers markers and known plaintext the backend must never hold."""
    ev = UploadEvidence(deployment.evidence, request.node.nodeid, seeded_rng(SEED, "markers", request.node.nodeid))
    request.node._dooz_evidence = ev
    return ev


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_dooz_rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def backend_checks(request):
    """After every test that used a deployment: the gateway still runs, `dooz
    fsck` is clean, the backend holds no plaintext of what was uploaded, and
    the audit log has every change the scenario made, once, in an intact chain."""
    if "deployment" not in request.fixturenames:
        yield
        return
    d: Deployment = request.getfixturevalue("deployment")
    log_offset = d.log.stat().st_size if d.log.exists() else 0
    since_ms = int(time.time() * 1000)
    yield
    d.check_alive()
    call = getattr(request.node, "_dooz_rep_call", None)
    ev = getattr(request.node, "_dooz_evidence", None)
    if call is not None and call.passed and not getattr(call, "wasxfail", None):
        assert ev is not None and ev.count > 0, (
            f"{request.node.nodeid} uploaded no marker: every scenario must upload at least "
            "one object containing evidence.new_marker()"
        )
    rc, report, text = d.fsck()
    assert rc == 0 and report is not None and report.get("clean") is True, (
        f"[fsck] `dooz fsck --json` after {request.node.name} on {d.name}: exit {rc}\n{text[-4000:]}"
    )
    problems = d.audit_check(log_offset, since_ms)
    assert not problems, f"[audit] after {request.node.name} on {d.name}:\n" + "\n".join(problems[:20])
    findings, _ = d.scanner.scan(d.evidence.needles())
    assert not findings, f"[backend scan] plaintext on the {d.name} backend after {request.node.name}:\n" + "\n".join(
        map(str, findings[:20])
    )


# --------------------------------------------------------------------------
# per-test buckets and clients


def bucket_name(request) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_")).strip("-")
    return f"{base[:40]}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3(deployment):
    """A boto3 client with the root admin key (default checksum behaviour)."""
    return deployment.boto3_client()


@pytest.fixture
def bucket(request, s3) -> str:
    name = bucket_name(request)
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def new_bucket(request, s3):
    """Makes further buckets: new_bucket(create=True) -> name."""

    def make(create: bool = True) -> str:
        name = bucket_name(request)
        if create:
            s3.create_bucket(Bucket=name)
        return name

    return make


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_", "DOOZ_"))}
    env.update(
        {
            "HOME": str(home),
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


class Cli:
    """One client program configured for one deployment; call it with the
    arguments and a `step` name that failure messages quote."""

    client = ""
    program = ""

    def __init__(self, d: Deployment, home: Path):
        self.d = d
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = base_env(home)
        self.exe = find_tool(self.program)

    def prefix(self) -> list[str]:
        return [self.exe]

    def __call__(self, *args, step: str, expect_rc=0, timeout: float = 600, cwd=None, input=None):
        return run(
            [*self.prefix(), *args],
            client=self.client,
            step=step,
            env=self.env,
            cwd=cwd,
            timeout=timeout,
            expect_rc=expect_rc,
            input=input,
        )


class AwsCli(Cli):
    client = "aws cli"
    program = "aws"

    def __init__(self, d, home):
        super().__init__(d, home)
        cfg = home / "aws-config"
        cfg.write_text(
            "[default]\n"
            "region = us-east-1\n"
            # No retries: a request that fails or stalls must fail the step.
            "max_attempts = 1\n"
            "retry_mode = standard\n"
            "s3 =\n"
            "    addressing_style = path\n"
            "    signature_version = s3v4\n"
            "    multipart_threshold = 8MB\n"
            "    multipart_chunksize = 8MB\n"
            "    max_concurrent_requests = 10\n"
        )
        creds = home / "aws-credentials"
        creds.write_text(
            f"[default]\naws_access_key_id = {d.root_user.access_key}\n"
            f"aws_secret_access_key = {d.root_user.secret_key}\n"
        )
        self.env.update(
            {
                "AWS_CONFIG_FILE": str(cfg),
                "AWS_SHARED_CREDENTIALS_FILE": str(creds),
                "AWS_DEFAULT_REGION": "us-east-1",
                # botocore sends `Expect: 100-continue` with every aws cli PUT,
                # including empty ones; when the server answers an empty PUT at
                # once (as RFC 9110 allows, and Dooz does), botocore parses the
                # next response on that pooled connection against the stale
                # status line and stalls for its 60 s read timeout
                # (boto/botocore#3755). This is botocore's documented opt-out.
                "BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE": "true",
            }
        )

    def prefix(self):
        return [self.exe, "--endpoint-url", self.d.endpoint]


class Rclone(Cli):
    client = "rclone"
    program = "rclone"

    def __init__(self, d, home):
        super().__init__(d, home)
        conf = home / "rclone.conf"
        conf.write_text("")
        self.env.update(
            {
                "RCLONE_CONFIG": str(conf),
                "RCLONE_CONFIG_DOOZ_TYPE": "s3",
                "RCLONE_CONFIG_DOOZ_PROVIDER": "Other",
                "RCLONE_CONFIG_DOOZ_ACCESS_KEY_ID": d.root_user.access_key,
                "RCLONE_CONFIG_DOOZ_SECRET_ACCESS_KEY": d.root_user.secret_key,
                "RCLONE_CONFIG_DOOZ_ENDPOINT": d.endpoint,
                "RCLONE_CONFIG_DOOZ_REGION": "us-east-1",
            }
        )

    def prefix(self):
        return [
            self.exe,
            "--s3-force-path-style",
            "--cache-dir",
            str(self.home / "cache"),
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ]


class S3cmd(Cli):
    client = "s3cmd"
    program = "s3cmd"

    def __init__(self, d, home):
        super().__init__(d, home)
        host = f"127.0.0.1:{d.s3_port}"
        self.cfg = home / "s3cfg"
        self.cfg.write_text(
            "[default]\n"
            f"access_key = {d.root_user.access_key}\n"
            f"secret_key = {d.root_user.secret_key}\n"
            f"host_base = {host}\n"
            f"host_bucket = {host}\n"
            "use_https = False\n"
            "signature_v2 = False\n"
            "bucket_location = us-east-1\n"
            "check_ssl_certificate = False\n"
            "progress_meter = False\n"
            "max_retries = 0\n"
        )
        self.host = host

    def prefix(self):
        # SigV4 (signature_v2 = False in the file); Dooz refuses SigV2.
        return [self.exe, "-c", str(self.cfg), f"--host={self.host}", f"--host-bucket={self.host}", "--no-ssl"]


class S5cmd(Cli):
    client = "s5cmd"
    program = "s5cmd"

    def __init__(self, d, home):
        super().__init__(d, home)
        empty = home / "aws-empty"
        empty.write_text("")
        self.env.update(
            {
                "AWS_ACCESS_KEY_ID": d.root_user.access_key,
                "AWS_SECRET_ACCESS_KEY": d.root_user.secret_key,
                "AWS_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(empty),
                "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            }
        )

    def prefix(self):
        return [self.exe, "--endpoint-url", self.d.endpoint, "--retry-count", "0"]


@pytest.fixture
def aws(deployment, tmp_path) -> AwsCli:
    return AwsCli(deployment, tmp_path / "aws-home")


@pytest.fixture
def rclone(deployment, tmp_path) -> Rclone:
    return Rclone(deployment, tmp_path / "rclone-home")


@pytest.fixture
def s3cmd(deployment, tmp_path) -> S3cmd:
    return S3cmd(deployment, tmp_path / "s3cmd-home")


@pytest.fixture
def s5cmd(deployment, tmp_path) -> S5cmd:
    return S5cmd(deployment, tmp_path / "s5cmd-home")


# --------------------------------------------------------------------------
# results table in conformance/README.md


def _describe(item) -> tuple[str, str, str | None]:
    module = item.module.__name__.rsplit(".", 1)[-1]
    client = CLIENTS.get(module, module)
    doc = (getattr(item.function, "__doc__", None) or "").strip().splitlines()
    op = doc[0].rstrip(".") if doc else item.originalname
    deployment = None
    extras = []
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        for k, v in callspec.params.items():
            if k == "deployment":
                deployment = v
            else:
                extras.append(str(v))
    if extras:
        op = f"{op} ({', '.join(extras)})"
    return client, op, deployment


# nodeid -> (client, operation, deployment), and nodeid -> outcome
_ITEMS: dict[str, tuple[str, str, str | None]] = {}
_RESULTS: dict[str, str] = {}
_RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "failed": 3}


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        _ITEMS[item.nodeid] = _describe(item)


def pytest_runtest_logreport(report):
    """A test's outcome is its worst phase: a failing teardown check (fsck,
    plaintext scan) fails the test."""
    if report.skipped:
        outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
    elif report.failed:
        outcome = "failed"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    prev = _RESULTS.get(report.nodeid)
    if prev is None or _RANK[outcome] > _RANK[prev]:
        _RESULTS[report.nodeid] = outcome


def _complete_run(session) -> bool:
    """Only a run of the whole suite rewrites the table."""
    cfg = session.config
    if os.environ.get("DOOZ_CONFORMANCE_WRITE_TABLE") == "1":
        return True
    if cfg.option.keyword or cfg.option.markexpr or getattr(cfg.option, "deselect", None):
        return False
    for a in cfg.args:
        if "::" in a or Path(a).resolve() != SUITE_DIR:
            return False
    return bool(_ITEMS) and set(_ITEMS) <= set(_RESULTS)


def _versions() -> str:
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=30)
            return (p.stdout or p.stderr).decode(errors="replace").strip().splitlines()[0]
        except Exception:  # noqa: BLE001 - informational only
            return "?"

    parts = []
    dooz = os.environ.get("DOOZ_BIN")
    if dooz:
        parts.append(first_line([dooz, "--version"]))
    aws = first_line(["aws", "--version"]).split()
    parts.append(" ".join(t for t in aws if t.startswith(("aws-cli/", "botocore/"))))
    parts.append(first_line(["rclone", "version"]))
    parts.append(first_line(["s3cmd", "--version"]))
    parts.append("s5cmd " + first_line(["s5cmd", "version"]))
    try:
        import boto3
        import botocore

        parts.append(f"boto3 {boto3.__version__} (botocore {botocore.__version__})")
    except ImportError:
        pass
    return "; ".join(p for p in parts if p)


CELL = {"passed": "✅", "failed": "❌", "skipped": "skipped", "xfailed": "❌ (xfail)"}


def render_table(items: dict, results: dict) -> str:
    rows: dict[tuple[str, str], dict[str, str]] = {}
    order = list(CLIENTS.values())
    for nodeid, (client, op, dep) in items.items():
        if dep is None:
            continue
        outcome = results.get(nodeid)
        if outcome is None:
            continue
        cell = rows.setdefault((client, op), {})
        prev = cell.get(dep)
        if prev is None or _RANK[outcome] > _RANK[prev]:
            cell[dep] = outcome
    lines = [
        "| client | operation | " + " | ".join(DEPLOYMENTS) + " |",
        "|---|---|" + "---|" * len(DEPLOYMENTS),
    ]
    for client, op in sorted(rows, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1])):
        cells = rows[(client, op)]
        lines.append(
            f"| {client} | {op} | " + " | ".join(CELL.get(cells.get(d, ""), "—") for d in DEPLOYMENTS) + " |"
        )
    return "\n".join(lines)


def pytest_sessionfinish(session, exitstatus):
    items, results = _ITEMS, _RESULTS
    if not items:
        return
    if not _complete_run(session):
        print("\nconformance/README.md results table not updated: partial run")
        return
    counts = {k: sum(1 for v in results.values() if v == k) for k in _RANK}
    harness = [results.get(n) for n, (_c, _o, dep) in items.items() if dep is None]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Generated by `scripts/conformance` on {stamp}: {counts['passed']} passed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped, {counts['xfailed']} xfailed "
        f"(each row runs once per deployment; harness self-checks: "
        f"{sum(1 for h in harness if h == 'passed')}/{len(harness)} passed).\n\n"
        f"Versions: {_versions()}.\n\n" + render_table(items, results)
    )
    text = README.read_text() if README.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail_ = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail_}")
