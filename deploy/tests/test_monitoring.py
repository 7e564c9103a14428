"""The alerting rules and the Grafana dashboard against the real thing:
promtool accepts and unit-tests the rules, the dashboard is well formed, and
every metric an expression names exists in a scrape of a running `dooz serve`
that has done some work (so a renamed or removed metric fails here, not on an
operator's pager)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import DASHBOARD, RULES, find_tool, helpers

TESTS = Path(__file__).resolve().parent

# PromQL words that are not metric names.
PROMQL_WORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "limitk", "limit_ratio",
    # functions
    "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "histogram_quantile",
    "histogram_fraction", "abs", "absent", "absent_over_time", "ceil", "floor", "round", "clamp", "clamp_min",
    "clamp_max", "exp", "ln", "log2", "log10", "sqrt", "scalar", "vector", "time", "timestamp", "changes",
    "resets", "label_replace", "label_join", "sort", "sort_desc", "avg_over_time", "min_over_time",
    "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "quantile_over_time",
    "present_over_time", "day_of_week", "hour", "minute", "month", "year", "sgn", "inf", "nan",
}
# Series Prometheus makes itself, not the gateway.
SYNTHETIC = {"up"}


def metric_names(expr: str) -> set[str]:
    """Metric and recording-rule names an expression reads."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                      # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                     # ranges and subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)                    # Grafana variables
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e)
    names = set()
    for w in words:
        if w.lower() in PROMQL_WORDS:
            continue
        if re.fullmatch(r"\d+(ms|s|m|h|d|w|y)", w):
            continue
        names.add(w)
    return names


def rule_exprs() -> tuple[list[str], set[str]]:
    doc = yaml.safe_load(RULES.read_text())
    exprs, recorded = [], set()
    for g in doc["groups"]:
        for r in g["rules"]:
            exprs.append(r["expr"])
            if "record" in r:
                recorded.add(r["record"])
    return exprs, recorded


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append(re.sub(r"label_values\((.*),\s*\w+\)$", r"\1", v["definition"]))
    return out


def test_metric_name_extraction():
    assert metric_names('sum by (job, le) (rate(dooz_x_bucket{a="b{c}"}[5m])) / on (job) dooz:y:ratio') == {
        "dooz_x_bucket", "dooz:y:ratio"}
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(m[$__rate_interval]))) > 1') == {"m"}
    assert metric_names('1 - (sum(increase(a{s=~"5.."}[1h])) or vector(0))') == {"a"}


def test_rules_pass_promtool():
    r = subprocess.run([find_tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_rules_unit_tests_pass():
    r = subprocess.run([find_tool("promtool"), "test", "rules", str(TESTS / "monitoring" / "dooz-rules.test.yaml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_is_unit_tested_or_listed():
    """An alert without a promtool case is a choice, written down here."""
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r}
    tested = set(re.findall(r"alertname: (\w+)", (TESTS / "monitoring" / "dooz-rules.test.yaml").read_text()))
    # Simple thresholds on one gauge or counter; their expressions are checked
    # against the scrape below.
    untested = {"DoozTargetDown", "DoozBackendErrors", "DoozMetadataPoolSaturated", "DoozUploadMemoryPressure",
                "DoozAuditAppendFailing"}
    assert alerts - tested == untested


def test_dashboard_is_well_formed():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in dash["templating"]["list"]} >= {"datasource", "job", "instance"}
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            if "$__range" not in t["expr"] and ":" not in t["expr"]:
                assert 'job=~"$job"' in t["expr"], f"{p['title']}: not filtered by $job"


def scrape_after_work(dooz_bin: str, work: Path, meta_url: str | None) -> set[str]:
    """Metric names of a real gateway after a little of everything: writes,
    reads, a multipart upload, refused requests, a miss, a delete."""
    import boto3
    from botocore.config import Config

    s3_port, admin_port = helpers.free_port(), helpers.free_port()
    access, secret = "DZSCRAPE" + secrets.token_hex(6).upper(), secrets.token_hex(20)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOOZ_ROOT_ACCESS_KEY": access,
           "DOOZ_ROOT_SECRET_KEY": secret, "RUST_LOG": "warn"}
    if meta_url:
        env["DOOZ_META"] = meta_url
    proc = helpers.Process("dooz", [dooz_bin, "serve", "--data-dir", work / "data",
                                    "--listen", f"127.0.0.1:{s3_port}", "--admin-listen", f"127.0.0.1:{admin_port}"],
                           work / "dooz.log", env)
    try:
        admin = f"http://127.0.0.1:{admin_port}"
        for _ in range(300):
            if helpers.http_status(f"{admin}/health/ready") == 200:
                break
            assert proc.running(), helpers.file_tail(work / "dooz.log")
            time.sleep(0.1)
        else:
            pytest.fail("dooz did not become ready:\n" + helpers.file_tail(work / "dooz.log"))
        c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{s3_port}", aws_access_key_id=access,
                         aws_secret_access_key=secret, region_name="us-east-1",
                         config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        c.create_bucket(Bucket="scrape")
        with pytest.raises(c.exceptions.ClientError):  # a refused metadata operation
            c.create_bucket(Bucket="scrape")
        body = os.urandom(300_000)
        c.put_object(Bucket="scrape", Key="a", Body=body)
        c.put_object(Bucket="scrape", Key="b", Body=body)  # deduplicated chunks
        assert c.get_object(Bucket="scrape", Key="a")["Body"].read() == body
        c.head_object(Bucket="scrape", Key="a")
        c.list_objects_v2(Bucket="scrape")
        mp = c.create_multipart_upload(Bucket="scrape", Key="m")
        part = c.upload_part(Bucket="scrape", Key="m", UploadId=mp["UploadId"], PartNumber=1, Body=b"x" * 1000)
        c.complete_multipart_upload(Bucket="scrape", Key="m", UploadId=mp["UploadId"],
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        with pytest.raises(c.exceptions.ClientError):  # 412: a refused conditional write
            c.put_object(Bucket="scrape", Key="a", Body=b"new", IfNoneMatch="*")
        with pytest.raises(c.exceptions.ClientError):  # 404
            c.get_object(Bucket="scrape", Key="missing")
        c.delete_object(Bucket="scrape", Key="b")
        with urllib.request.urlopen(f"{admin}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        code = proc.terminate()
    assert code == 0, helpers.file_tail(work / "dooz.log")
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


@pytest.fixture(scope="module")
def scrape(dooz_bin, tmp_path_factory) -> set[str]:
    """The union of an embedded gateway's and a PostgreSQL gateway's scrape:
    some series exist on one store only (the connection limit on PostgreSQL)."""
    names = scrape_after_work(dooz_bin, tmp_path_factory.mktemp("scrape-embedded"), None)
    db = helpers.PgDatabase()
    db.create()
    try:
        names |= scrape_after_work(dooz_bin, tmp_path_factory.mktemp("scrape-pg"), db.url())
    finally:
        db.drop()
    return names


def test_rules_name_only_metrics_dooz_exposes(scrape):
    exprs, recorded = rule_exprs()
    missing = {}
    for e in exprs:
        for name in metric_names(e) - scrape - recorded - SYNTHETIC:
            missing.setdefault(name, e.strip().splitlines()[0])
    assert not missing, f"rules read metrics a real scrape lacks: {missing}"


def test_dashboard_names_only_metrics_dooz_exposes(scrape):
    _, recorded = rule_exprs()
    missing = {}
    for e in dashboard_exprs():
        for name in metric_names(e) - scrape - recorded - SYNTHETIC:
            missing.setdefault(name, e)
    assert not missing, f"dashboard reads metrics a real scrape lacks: {missing}"


def test_the_scrape_covers_what_an_operator_watches(scrape):
    """The rows of the dashboard: requests, latency, bytes, dedup, backends,
    metadata, readiness, audit, garbage collection, throttling."""
    for name in ("dooz_s3_requests_total", "dooz_s3_request_duration_seconds_bucket", "dooz_s3_received_bytes_total",
                 "dooz_logical_written_bytes_total", "dooz_stored_written_bytes_total", "dooz_chunks_total",
                 "dooz_backend_requests_total", "dooz_backend_up", "dooz_meta_up", "dooz_ready",
                 "dooz_audit_records_total", "process_resident_memory_bytes",
                 "dooz_gc_last_success_timestamp_seconds", "dooz_gc_errors_total", "dooz_gc_runs_total",
                 "dooz_throttled_requests_total", "dooz_throttle_delay_seconds_sum", "dooz_limit_overrides"):
        assert name in scrape, name
