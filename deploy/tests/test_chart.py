"""The Helm chart as `helm lint` / `helm template` and a cluster's API server
would see it: lint clean, every values file of the matrix (charts/dooz/ci/)
renders, every manifest passes the Kubernetes schemas of the chart's minimum
version (strict: unknown fields are errors), the prometheus-operator kinds pass
their models, and every rendered dooz.toml is accepted by `dooz config`."""

from __future__ import annotations

import json
import subprocess
import tempfile
import tomllib
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import CHART, KUBE_VERSION, MATRIX, find_tool

RELEASE = "demo"
NAMESPACE = "storage"


def values_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def render(chart, values: dict) -> dict[str, list[dict]]:
    """Template path -> the Kubernetes objects it rendered."""
    out = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = {}
    for name, text in out.items():
        if name.endswith("NOTES.txt"):
            continue
        objs = [d for d in yaml.safe_load_all(text) if d]
        if objs:
            docs[name] = objs
    return docs


def objects(chart, values: dict) -> list[dict]:
    return [o for objs in render(chart, values).values() for o in objs]


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in by_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def rendered_toml(objs: list[dict]) -> str:
    return one(objs, "ConfigMap", f"{RELEASE}-dooz")["data"]["dooz.toml"]


MATRIX_IDS = [p.name.removesuffix("-values.yaml") for p in MATRIX]


def test_matrix_is_complete():
    assert set(MATRIX_IDS) >= {"embedded", "postgresql", "tls", "openbao", "monitoring"}, MATRIX_IDS


@pytest.mark.parametrize("values_file", [None, *MATRIX], ids=["defaults", *MATRIX_IDS])
def test_lint_is_clean(values_file):
    values = values_of(values_file) if values_file else None
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    # "icon is recommended" is the only info-level finding and carries no risk.
    assert not report["errors"] and not problems, json.dumps(report, indent=1)


@pytest.mark.parametrize("values_file", [None, *MATRIX], ids=["defaults", *MATRIX_IDS])
def test_manifests_pass_kubernetes_schemas(chart, values_file):
    values = values_of(values_file) if values_file else {}
    objs = objects(chart, values)
    assert objs
    operator_kinds = []
    for o in objs:
        if o["apiVersion"].startswith("monitoring.coreos.com/"):
            operator_kinds.append(o)
            continue
        try:
            kubernetes_validate.validate(o, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{o['kind']}/{o['metadata']['name']}: {path}: {e.message}")
        assert o["metadata"]["namespace"] == NAMESPACE or o["kind"] == "Namespace"
    for o in operator_kinds:
        check_operator_object(o)


def check_operator_object(o: dict) -> None:
    """ServiceMonitor and PrometheusRule have no schema in kubernetes-validate:
    check them against prometheus-operator's models, and refuse fields the
    models do not know (they ignore extras, so compare the round trip)."""
    from cloudcoil.models.prometheus_operator import v1

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}[o["kind"]]
    parsed = model.model_validate(o)
    back = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")

    def unknown(a, b, path):
        if isinstance(a, dict):
            assert isinstance(b, dict), path
            for k, v in a.items():
                assert k in b, f"{o['kind']}: unknown field {path}{k}"
                unknown(v, b[k], f"{path}{k}.")
        elif isinstance(a, list):
            for i, (x, y) in enumerate(zip(a, b)):
                unknown(x, y, f"{path}{i}.")

    unknown(o, back, "")


def test_defaults_are_one_hardened_stateful_gateway(chart):
    objs = objects(chart, {})
    sts = one(objs, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    assert not by_kind(objs, "Deployment")
    pod = sts["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "admin"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "admin"}
    assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["memory"]
    # The volume holds SQLite and the packs; the root key comes from a kept Secret.
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["data"] == "/var/lib/dooz"
    root = one(objs, "Secret", f"{RELEASE}-dooz-root-key")
    assert root["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cfg = tomllib.loads(rendered_toml(objs))
    assert cfg["admin_listen"] == "0.0.0.0:9001" and cfg["listen"] == "0.0.0.0:9000"
    assert cfg["kms"]["root_key_file"] == mounts["root-key"] + "/keyring"
    # Services for S3 and admin; a budget that does not block drains of one pod.
    svcs = {s["metadata"]["name"]: s for s in by_kind(objs, "Service")}
    assert svcs[f"{RELEASE}-dooz"]["spec"]["ports"][0]["targetPort"] == "s3"
    assert svcs[f"{RELEASE}-dooz-admin"]["spec"]["ports"][0]["targetPort"] == "admin"
    assert one(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_postgresql_mode_is_n_stateless_gateways(chart):
    objs = objects(chart, values_of(CHART / "ci" / "postgresql-values.yaml"))
    dep = one(objs, "Deployment")
    assert not by_kind(objs, "StatefulSet") and not by_kind(objs, "PersistentVolumeClaim")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["DOOZ_META"]["valueFrom"]["secretKeyRef"] == {"name": "dooz-postgresql", "key": "uri"}
    assert env["DOOZ_BACKENDS__PACKS__SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "dooz-backend-packs"
    assert "DOOZ_ROOT_ACCESS_KEY" in env
    # With an autoscaler the Deployment leaves replicas to it.
    assert "replicas" not in dep["spec"]
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert {v["name"] for v in pod["volumes"]} >= {"data", "tmp"}
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == "data")
    # No database URL in the ConfigMap, only in the Secret it names.
    assert "postgres" not in rendered_toml(objs)
    assert pod["topologySpreadConstraints"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"mode": "postgresql", "config": {"default_backend": "p", "backends": {"p": {"type": "s3", "bucket": "b"}}}},
         "postgresql.existingSecret"),
        ({"mode": "postgresql", "postgresql": {"url": "postgres://x@db/dooz"}}, "shared backend"),
        ({"mode": "postgresql", "postgresql": {"url": "postgres://x@db/dooz"},
          "config": {"default_backend": "l", "backends": {"l": {"type": "local", "path": "/x"}}}},
         "not shared between gateways"),
        ({"autoscaling": {"enabled": True}}, "autoscaling needs mode=postgresql"),
        ({"config": {"default_backend": "nope"}}, "only \"local\" exists"),
        ({"openbao": {"enabled": True, "addr": "https://bao:8200"}}, "openbao.enabled needs a token"),
        ({"admin": {"probesSendToken": True}}, "admin.probesSendToken needs admin.token"),
    ],
    ids=["pg-no-secret", "pg-no-backend", "pg-local-backend", "hpa-embedded", "bad-default-backend",
         "openbao-no-token", "probe-token-from-secret"],
)
def test_impossible_deployments_fail_with_a_clear_message(chart, values, message):
    with pytest.raises(helm.HelmError) as e:
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "values, where",
    [
        ({"config": {"chunking": {"avg_sise": 1}}}, "avg_sise"),
        ({"config": {"meta": "postgres://x@db/dooz"}}, "meta"),
        ({"config": {"backends": {"p": {"type": "s3", "bucket": "b", "secret_access_key": "x"}}}}, "secret_access_key"),
        ({"mode": "cluster"}, "mode"),
        ({"terminationGracePeriodSeconds": 10}, "terminationGracePeriodSeconds"),
    ],
    ids=["typo", "chart-owned-key", "secret-in-values", "bad-mode", "short-grace"],
)
def test_schema_refuses_bad_values(chart, values, where):
    with pytest.raises(helm.HelmError) as e:
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE)
    assert where in str(e.value)


def test_schema_knows_every_config_key_dooz_has(chart, dooz_bin):
    """values.schema.json lists dooz.toml's keys (so a typo fails at install);
    it must grow with the gateway's Config. `dooz config` prints every key."""
    out = subprocess.run([dooz_bin, "config"], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    effective = tomllib.loads(out)
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]
    chart_owned = {"data_dir", "listen", "admin_listen", "meta"}

    def walk(cfg: dict, sch: dict, path: str, owned: set[str]):
        props = sch.get("properties", {})
        for key, val in cfg.items():
            if key in owned:
                assert key not in props, f"{path}{key} belongs to the chart but the schema allows it"
                continue
            assert key in props, f"dooz config has {path}{key}; add it to values.schema.json"
            if isinstance(val, dict) and key != "backends":
                walk(val, props[key], f"{path}{key}.", {"root_key_file", "openbao"} if key == "kms" else set())
        for key in props:
            assert key in cfg or key in {"backends"} or cfg.get(key) is None, \
                f"values.schema.json allows {path}{key}, which dooz does not know"

    walk(effective, schema, "", chart_owned)


@pytest.mark.parametrize("values_file", [None, *MATRIX], ids=["defaults", *MATRIX_IDS])
def test_rendered_config_is_accepted_by_dooz(chart, dooz_bin, values_file):
    values = values_of(values_file) if values_file else {}
    objs = objects(chart, values)
    text = rendered_toml(objs)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "dooz.toml"
        path.write_text(text)
        # The variables the pod gets from Secrets, with stand-in values.
        pod = next(o for o in objs if o["kind"] in ("Deployment", "StatefulSet"))["spec"]["template"]["spec"]
        env = {"PATH": "/usr/bin:/bin"}
        for e in pod["containers"][0]["env"]:
            if e["name"].startswith("DOOZ_"):
                env[e["name"]] = e.get("value") or (
                    "postgres://dooz@db/dooz" if e["name"] == "DOOZ_META" else "stand-in-value")
        r = subprocess.run([dooz_bin, "config", "--config", str(path)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, f"dooz config refused the rendered dooz.toml:\n{text}\n{r.stderr}"
        effective = tomllib.loads(r.stdout)
    rendered = tomllib.loads(text)
    # What the chart wrote is what dooz runs with (nothing silently dropped).
    for section in ("chunking", "log"):
        for k, v in rendered.get(section, {}).items():
            assert effective[section][k] == v, (section, k)
    assert effective["default_backend"] == rendered["default_backend"]
    assert set(effective["backends"]) == set(rendered.get("backends", {"local": {}}))
    if "DOOZ_META" in env:
        assert effective["meta"].startswith("postgres://")
    else:
        assert effective["meta"] == "sqlite:///var/lib/dooz/meta.db"


def test_integers_stay_integers_in_dooz_toml(chart):
    """Helm reads YAML numbers as floats; the chart's own TOML writer must not
    print 1048576 as 1.048576e+06, which dooz refuses for an integer key."""
    big = 5 * 1024**3
    text = rendered_toml(objects(chart, {"config": {"chunking": {"memory_budget": big, "avg_size": 1048576}}}))
    assert f"memory_budget = {big}" in text
    assert "avg_size = 1048576" in text and "e+" not in text


def test_generated_root_key_is_a_keyring_and_fresh(chart):
    def key(objs):
        import base64
        return base64.b64decode(one(objs, "Secret", f"{RELEASE}-dooz-root-key")["data"]["keyring"]).decode()

    a, b = key(objects(chart, {})), key(objects(chart, {}))
    assert a.startswith("dooz-keyring v1\n1:") and len(a.split("1:")[1].strip()) == 44
    assert a != b  # offline there is nothing to look up: each install gets its own
    pinned = key(objects(chart, {"rootKey": {"value": "dooz-keyring v1\n1:" + "A" * 43 + "=\n"}}))
    assert pinned.endswith("A" * 43 + "=\n")


def test_monitoring_objects(chart):
    objs = objects(chart, values_of(CHART / "ci" / "monitoring-values.yaml"))
    sm = one(objs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "admin"
    assert sm["spec"]["endpoints"][0]["authorization"]["credentials"]["name"] == f"{RELEASE}-dooz-admin-token"
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "admin"
    rule = one(objs, "PrometheusRule")
    file_rules = yaml.safe_load((CHART / "files" / "dooz-rules.yaml").read_text())
    assert rule["spec"] == file_rules
    dash = one(objs, "ConfigMap", f"{RELEASE}-dooz-dashboard")
    assert json.loads(dash["data"]["dooz.json"]) == json.loads((CHART / "files" / "dooz-dashboard.json").read_text())
    probe = one(objs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["httpHeaders"] == [{"name": "Authorization", "value": "Bearer example-admin-token-0123456789"}]


def test_prometheus_rule_passes_promtool(chart, tmp_path):
    objs = objects(chart, values_of(CHART / "ci" / "monitoring-values.yaml"))
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(one(objs, "PrometheusRule")["spec"]))
    r = subprocess.run([find_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
