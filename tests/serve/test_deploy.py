"""``deploy/``: Docker cannot run here, so the files are checked for structure and for agreeing with
each other and with the code (ports, service names, CLI flags, metric names)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmloop.cli.main import app as cli
from llmloop.serve.request_metrics import ServeMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _serve_flags() -> set[str]:
    out = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "300"}).output
    return set(re.findall(r"--[a-z][a-z-]+", out))


def _check_serve_args(args: list[str]) -> None:
    assert args[0] == "serve", args
    unknown = {a for a in args if a.startswith("--")} - _serve_flags()
    assert not unknown, f"flags `llmloop serve` does not have: {unknown}"


def test_compose_file_wires_gateway_postgres_prometheus_grafana_and_optional_vllm() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"gateway", "postgres", "prometheus", "grafana", "vllm"} <= set(services)
    gw = services["gateway"]
    assert (DEPLOY.parent / gw["build"]["context"].replace("..", ".") / gw["build"]["dockerfile"]).exists()
    assert gw["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = gw["environment"]["LLMLOOP_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    _check_serve_args(gw["command"])
    assert "8000:8000" in gw["ports"] and "--port" in gw["command"] and gw["command"][gw["command"].index("--port") + 1] == "8000"
    assert services["vllm"]["profiles"] == ["vllm"] and "--enable-lora" in services["vllm"]["command"]
    assert services["vllm"]["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    for name in ("prometheus", "grafana"):  # every file mounted from deploy/ exists
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), volume
    assert set(compose["volumes"]) >= {"pgdata", "llmloop-data"}
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["gateway:8000"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_grafana_dashboard_queries_only_metrics_the_gateway_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "llmloop-dashboard.json").read_text())
    metrics = ServeMetrics()
    metrics.observe_request("/v1/chat/completions", 500, "v1.0", 0.1)
    metrics.observe_generation("v1.0", "base", 1, 1, 0.1)
    metrics.observe_first_token("v1.0", "base", 0.1)
    metrics.observe_inter_token("v1.0", "base", 0.1)
    metrics.observe_thumb(1, "v1.0")
    exported = set(re.findall(r"^(llmloop_[a-z_]+)", metrics.render().decode(), re.M))
    used = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"llmloop_[a-z_]+", target["expr"]))
    assert used and used <= exported, used - exported
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("requests", "error", "latency", "first token", "inter-token", "tokens", "feedback", "thumbs"):
        assert topic in titles, topic


def test_systemd_unit_runs_the_gateway() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "llmloop-gateway.service")
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/llmloop")
    _check_serve_args(argv[1:])
    assert unit["Service"]["Restart"] == "on-failure" and unit["Install"]["WantedBy"] == "multi-user.target"
