"""deploy/grafana/dashboard.json and deploy/prometheus/*.yml against a live gateway's /metrics.

Every metric a dashboard panel or an alert names must be exported, with the labels the
queries select on; promtool checks the rule file, runs its unit tests (alerts_test.yml) and
checks the example scrape configuration.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayFactory, LiveGateway
from tests.deploy.conftest import HERE, ROOT
from tests.fakes import ControlledProvider

DASHBOARD = ROOT / "deploy/grafana/dashboard.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
SELECTOR = re.compile(r"\b(vgw_[a-z0-9_]+)\s*\{([^}]*)\}")
LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = []
    for panel in panels:
        if panel["type"] == "row":
            continue
        exprs = [target["expr"] for target in panel.get("targets", [])]
        assert exprs, f"panel {panel['title']!r} has no query"
        queries += exprs
    return queries


def alert_queries() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Iterator[LiveGateway]:
    fake = ControlledProvider()
    fake.release()  # jobs finish at the first poll
    with gateway_factory(
        {"providers": {"default": "fake"}}, extra_providers={"fake": fake}
    ) as live:
        yield live


def test_every_metric_a_panel_or_an_alert_names_is_exported(gateway: LiveGateway) -> None:
    task = gateway.client.post("/v1/tasks", json={"prompt": "a windmill in the rain"}).json()
    gateway.wait_task(task["id"], lambda t: t["status"] == "succeeded")
    # /metrics needs an admin token (today every configured token is one).
    scraped = gateway.client.get("/metrics")
    assert scraped.status_code == 200
    names: dict[str, set[str]] = {}  # exported series name -> its label names
    for family in text_string_to_metric_families(scraped.text):
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = labels

    queries = dashboard_queries() + alert_queries()
    referenced = {name for query in queries for name in re.findall(r"\bvgw_[a-z0-9_]+", query)}
    assert len(referenced) >= 10, referenced
    missing = sorted(referenced - set(names))
    assert not missing, f"named by a panel or an alert but not exported: {missing}"
    for query in queries:
        for metric, selector in SELECTOR.findall(query):
            unknown = set(LABEL.findall(selector)) - names[metric] - TARGET_LABELS
            assert not unknown, f"{metric} has no label {sorted(unknown)} (in {query!r})"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is not installed (scripts/test-tools installs it)"
    done = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.promtool
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert "9 rules found" in promtool("check", "rules", str(ALERTS)).stdout
    assert "SUCCESS" in promtool("test", "rules", str(HERE / "alerts_test.yml")).stdout


@pytest.mark.promtool
def test_promtool_accepts_the_scrape_configuration(tmp_path: Path) -> None:
    token = tmp_path / "gateway-token"
    token.write_text("a-gateway-token\n")
    config = SCRAPE_CONFIG.read_text().replace("/etc/prometheus/gateway-token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    promtool("check", "config", str(tmp_path / "prometheus.yml"))
