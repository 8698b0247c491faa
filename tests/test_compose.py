"""docker-compose.yml, validated by a real compose implementation (no engine needed).

Debian's ``docker-compose`` (1.29) parses and validates the file against the Compose
spec and prints it fully resolved (anchors merged, ``${VAR:-default}`` substituted);
the tests read that output, not our own reading of the YAML. They also hold the
containers to the non-Docker start command (scripts/start.sh + Procfile), so the
two ways of running the app cannot drift apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.procfile import ROOT, procfile_commands, setup_commands, shape, starts_procfile

COMPOSE_FILE = ROOT / "docker-compose.yml"
DATA_SERVICES = ("web", "worker", "worker-gpu")
DATA_ROOTS = ("MEDIA_ROOT", "PREPARED_ROOT", "RUNS_ROOT")


def compose_config(compose_file: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """``docker-compose config`` on ``compose_file``, ignoring any developer's .env."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (apt-get install docker-compose)"
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")
    return subprocess.run(
        [binary, "--env-file", str(empty_env), "-f", str(compose_file), *extra, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """The resolved compose file, with the gpu profile enabled so every service is in it."""
    result = compose_config(COMPOSE_FILE, tmp_path_factory.mktemp("compose"), "--profile", "gpu")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict[str, dict]:
    return config["services"]


def app_services(services: dict[str, dict]) -> dict[str, dict]:
    """Services built from our Dockerfile (postgres and redis use upstream images)."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def test_a_real_compose_implementation_accepts_the_file_with_and_without_the_gpu_profile(
    tmp_path,
):
    for extra in ((), ("--profile", "gpu")):
        result = compose_config(COMPOSE_FILE, tmp_path, *extra)
        assert result.returncode == 0, f"docker-compose {' '.join(extra)} config: {result.stderr}"


def test_the_validator_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text().replace("condition: service_healthy", "condition: healthy", 1)
    broken.write_text(text)
    result = compose_config(broken, tmp_path)
    assert result.returncode != 0
    assert "condition" in result.stderr


def test_every_app_service_runs_a_command_that_the_start_script_also_runs(services):
    allowed = {}
    for argv in [*procfile_commands().values(), *setup_commands()]:
        words, queues = shape(argv)
        allowed[words] = queues
    for name, svc in app_services(services).items():
        words, queues = shape(svc["command"])
        assert words in allowed, (
            f"compose service {name!r} runs {svc['command']}, which neither the Procfile nor "
            f"scripts/start.sh runs; allowed shapes: {sorted(allowed)}"
        )
        assert queues <= allowed[words], f"{name!r} listens on queues outside the Procfile's"


def test_every_procfile_process_and_setup_step_has_a_compose_service(services):
    assert starts_procfile(), "scripts/start.sh no longer runs 'honcho start -f Procfile'"
    running = {shape(svc["command"])[0] for svc in app_services(services).values()}
    for name, argv in procfile_commands().items():
        assert shape(argv)[0] in running, f"Procfile process {name!r} has no compose service"
    for argv in setup_commands():
        assert shape(argv)[0] in running, f"start.sh step {argv} has no compose service"


def test_the_cpu_worker_takes_both_queues_and_the_gpu_worker_only_training(services):
    assert shape(services["worker"]["command"])[1] == {"cpu", "gpu"}
    assert shape(services["worker-gpu"]["command"])[1] == {"gpu"}
    assert "profiles" not in services["worker"]


def test_the_gpu_worker_reserves_nvidia_gpus_and_builds_cuda_torch_under_the_gpu_profile(
    services,
):
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert re.search(r"/whl/cu\d+$", gpu["build"]["args"]["TORCH_INDEX_URL"])
    assert services["worker"]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
    # Two builds must not share a tag, or one would silently replace the other.
    assert gpu["image"] != services["worker"]["image"]


def test_the_web_waits_for_a_healthy_database_and_redis_and_for_migrations(services):
    for name in ("db", "redis", "web"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    web_deps = services["web"]["depends_on"]
    assert web_deps["db"]["condition"] == "service_healthy"
    assert web_deps["redis"]["condition"] == "service_healthy"
    # web waits for admin, which waits for migrate: the schema exists before any request.
    assert web_deps["admin"]["condition"] == "service_completed_successfully"
    assert services["admin"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("worker", "worker-gpu", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_web_and_workers_share_named_volumes_for_uploads_prepared_corpora_and_runs(config):
    services = config["services"]
    named = set(config["volumes"])
    mounts_by_root = {}
    for name in DATA_SERVICES:
        svc = services[name]
        mounts = {}  # target -> source; entries read "source:target:mode"
        for volume in svc["volumes"]:
            source, target = volume.split(":")[:2]
            mounts[target] = source
        for root in DATA_ROOTS:
            target = svc["environment"][root]
            assert target in mounts, f"{name}: {root}={target} is not a mounted volume"
            assert mounts[target] in named, f"{name}: {target} is not on a named volume"
            mounts_by_root.setdefault(root, set()).add(mounts[target])
    assert all(len(sources) == 1 for sources in mounts_by_root.values()), mounts_by_root
    assert len({next(iter(s)) for s in mounts_by_root.values()}) == len(DATA_ROOTS)
    assert any(v.endswith(":/var/lib/postgresql/data:rw") for v in services["db"]["volumes"])


def test_the_image_does_not_run_as_root():
    stages = re.split(r"(?im)^FROM\s", (ROOT / "Dockerfile").read_text())
    users = re.findall(r"(?im)^USER\s+(\S+)", stages[-1])
    assert users, "the final stage never switches USER"
    assert users[-1] not in ("root", "0", "0:0")


def test_env_example_lists_every_setting_with_a_comment():
    example = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for index, line in enumerate(example):
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = index > 0 and example[index - 1].startswith("#")
    read = set()
    for path in [*ROOT.glob("webapp/**/*.py"), *ROOT.glob("worker/**/*.py")]:
        text = path.read_text()
        read |= set(re.findall(r"\benv\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
        read |= set(re.findall(r"os\.(?:environ\.get|getenv)\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
        read |= set(re.findall(r"os\.environ\[\s*\"([A-Z][A-Z0-9_]*)\"\s*\]", text))
    assert "DATABASE_URL" in read  # the scan itself works
    missing = sorted(read - set(documented))
    assert not missing, f".env.example does not list: {missing}"
    uncommented = sorted(name for name in read if not documented[name])
    assert not uncommented, f".env.example has no comment above: {uncommented}"


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", "var", "test-artifacts"} <= ignored
