"""Fixtures of the deployment checks: the Helm chart (lint, render, Kubernetes
schemas, the rendered dooz.toml), the systemd unit and the monitoring rules and
dashboard. Run by scripts/test-deploy (and so by scripts/test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "dooz"
MATRIX = sorted((CHART / "ci").glob("*-values.yaml"))
RULES = CHART / "files" / "dooz-rules.yaml"
DASHBOARD = CHART / "files" / "dooz-dashboard.json"
UNIT = REPO / "deploy" / "systemd" / "dooz.service"
# The Kubernetes version the chart declares as its minimum (Chart.yaml kubeVersion).
KUBE_VERSION = "1.30"

# The conformance harness already knows how to run processes, pick ports and
# find tools; reuse it.
sys.path.insert(0, str(REPO / "conformance" / "suite"))
import helpers  # noqa: E402

find_tool = helpers.find_tool


@pytest.fixture(scope="session")
def dooz_bin() -> str:
    path = os.environ.get("DOOZ_BIN")
    if not path or not Path(path).is_file():
        pytest.fail(
            "DOOZ_BIN must name a built `dooz` binary (scripts/test-deploy builds one and sets it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def chart():
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as c:
        yield c
