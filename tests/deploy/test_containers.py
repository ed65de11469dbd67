"""deploy/docker/ and deploy/k8s/: files that cannot run here (no Docker, no cluster), checked as
far as they can be without running them: structure, the files they reference, the commands and
modules they name, the instance file against Dagster's schema, the config overlays against ours,
and consistency with the tested local profile and with each other."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from cryptorun_core.config import load_config
from cryptorun_pipelines.cli.instance import profile_file

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
K8S = REPO / "deploy" / "k8s"
BIN = Path(sys.executable).parent
SERVICES = {"postgres", "redis", "code", "webserver", "daemon", "celery-worker"}
IMAGE_SERVICES = {"code", "webserver", "daemon", "celery-worker"}
PG_ENV = {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(DOCKER / "compose.yaml")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def dockerfile_env() -> dict[str, str]:
    env = {}
    for op, arg in dockerfile_instructions():
        if op == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(arg)))
    return env


def image_files() -> dict[str, Path]:
    """Where each COPY puts its sources in the image (absolute path in the image → repo path)."""
    workdir, placed = "/", {}
    for op, arg in dockerfile_instructions():
        if op == "WORKDIR":
            workdir = arg
        if op == "COPY":
            *sources, dest = shlex.split(arg)
            dest_abs = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest.removeprefix('./')}"
            for src in sources:
                into_dir = dest.endswith("/") or len(sources) > 1
                target = f"{dest_abs.rstrip('/')}/{Path(src).name}" if into_dir and not src.endswith("/") else dest_abs.rstrip("/")
                placed[target] = REPO / src
    return placed


# -- Dockerfile -------------------------------------------------------------------------------


def test_the_dockerfile_copies_only_files_that_exist():
    copies = image_files()
    assert copies, "no COPY in the Dockerfile"
    missing = [str(src.relative_to(REPO)) for src in copies.values() if not src.exists()]
    assert not missing, f"the Dockerfile copies files that do not exist: {missing}"


def test_the_image_installs_an_extra_the_project_declares_and_the_kubernetes_build_adds_dagster_k8s():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    args = dict(arg.split("=", 1) for op, arg in dockerfile_instructions() if op == "ARG")
    assert args["EXTRAS"] == "production" and ("RUN", 'pip install ".[${EXTRAS}]"') in dockerfile_instructions()
    assert "--build-arg EXTRAS=k8s" in (DOCKER / "Dockerfile").read_text()
    assert any(d.startswith("dagster-k8s") for d in extras["k8s"]) and "cryptorun[production]" in extras["k8s"]
    values = load_yaml(REPO / "deploy" / "k8s" / "values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["tag"].endswith("-k8s"), "the run pods need the image built with EXTRAS=k8s"


def test_the_image_config_and_instance_are_files_it_copies():
    env, copies = dockerfile_env(), image_files()
    assert env["CRYPTORUN_CONFIG"] in copies
    assert f"{env['DAGSTER_HOME']}/dagster.yaml" in copies and f"{env['DAGSTER_HOME']}/workspace.yaml" in copies
    # an overlay's `extends:` resolves inside the image: its base is copied next to it
    for target, src in copies.items():
        if src.suffix == ".yaml" and "extends" in (load_yaml(src) or {}):
            base = str(Path(target).parent / load_yaml(src)["extends"])
            assert base in copies, f"{target} extends {base}, which the image does not have"


def test_the_image_command_serves_the_code_location_module():
    cmd = next(yaml.safe_load(arg) for op, arg in dockerfile_instructions() if op == "CMD")
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("-m") + 1] == "cryptorun_pipelines.definitions"
    assert importlib.util.find_spec("cryptorun_pipelines.definitions") is not None


# -- compose ----------------------------------------------------------------------------------


def test_compose_runs_every_service_of_the_deployment(compose):
    assert set(compose["services"]) == SERVICES
    for name in IMAGE_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile", name
        assert service["image"] == compose["services"]["code"]["image"], f"{name}: one image for every role"
    for volume in {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}:
        assert volume in compose["volumes"], volume


def _command(service: dict) -> list[str]:
    cmd = service["command"]
    if cmd[:2] == ["sh", "-c"]:
        return shlex.split(cmd[2].replace("$$", "$"))[1:]  # after `exec`
    return cmd


def test_compose_commands_are_installed_executables(compose):
    for name in IMAGE_SERVICES:
        exe = _command(compose["services"][name])[0]
        assert shutil.which(exe, path=str(BIN)), f"{name}: {exe} is not installed by cryptorun[production]"


def test_compose_workspace_points_at_the_code_server(compose):
    (entry,) = load_yaml(DOCKER / "workspace.yaml")["load_from"]
    grpc = entry["grpc_server"]
    code = _command(compose["services"]["code"])
    assert grpc["host"] == "code" and str(grpc["port"]) == code[code.index("-p") + 1]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'code_location_name = "{grpc["location_name"]}"' in pyproject
    for name in ("webserver", "daemon"):
        cmd = _command(compose["services"][name])
        assert cmd[cmd.index("-w") + 1] == f"{dockerfile_env()['DAGSTER_HOME']}/workspace.yaml"


def test_every_role_that_opens_the_instance_gets_its_credentials_from_the_environment(compose):
    instance_text = (DOCKER / "dagster.yaml").read_text()
    assert set(re.findall(r"\{env: (\w+)\}", instance_text)) == PG_ENV
    for name in IMAGE_SERVICES:
        assert PG_ENV <= set(compose["services"][name]["environment"]), name
    # no secret is written into the files: the password comes from the shell running compose
    env = compose["services"]["code"]["environment"]
    assert env["DAGSTER_PG_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?")


def test_the_celery_worker_and_the_executor_use_the_same_broker(compose, tmp_path):
    config = load_config(overlay_in_image(tmp_path, DOCKER / "cryptorun.yaml", "docker.yaml"), check_artifacts_dir=False)
    assert config.executor.type == "celery"
    names = {config.executor.celery.broker_url_env, config.executor.celery.backend_url_env}
    for name in ("code", "celery-worker"):
        assert names <= set(compose["services"][name]["environment"]), name
    worker = " ".join(_command(compose["services"]["celery-worker"]))
    assert f"-b ${config.executor.celery.broker_url_env}" in worker
    assert f"--result-backend ${config.executor.celery.backend_url_env}" in worker
    assert "-A dagster_celery.app" in worker and "-Q dagster" in worker
    # steps run where the runs' artifacts are: the code server (run workers) and the Celery workers
    artifacts = dockerfile_env()["CRYPTORUN_ARTIFACTS_DIR"]
    for name in ("code", "celery-worker"):
        assert any(v.endswith(f":{artifacts}") for v in compose["services"][name]["volumes"]), name


# -- the instance file ------------------------------------------------------------------------


def _limits(runs: dict) -> list[dict]:
    return sorted((dict(limit) for limit in runs["tag_concurrency_limits"]), key=lambda d: (d["key"], str(d.get("value"))))


#: what the compose instance shares with deploy/production/dagster.yaml (only the run launcher
#: differs): the three Postgres storages with the pooled event log and its batch size, the queue
#: and its limits, run monitoring
PRODUCTION_SECTIONS = ("run_storage", "schedule_storage", "event_log_storage", "run_coordinator", "concurrency",
                       "run_monitoring", "telemetry", "nux")


def test_the_compose_instance_loads_with_dagsters_schema_and_keeps_the_local_limits(tmp_path, monkeypatch):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config

    for name in PG_ENV:
        monkeypatch.setenv(name, "5432" if name.endswith("PORT") else "x")
    shutil.copy(DOCKER / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["event_log_storage"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    for section in ("run_storage", "schedule_storage", "event_log_storage", "run_launcher", "run_coordinator"):
        module = importlib.import_module(config[section]["module"])
        assert hasattr(module, config[section]["class"]), section
        # each class's own config schema (the instance schema leaves `config:` open), without connecting
        klass = getattr(module, config[section]["class"])
        result = process_config(resolve_to_config_type(klass.config_type()), config[section].get("config") or {})
        assert result.success, (section, [e.message for e in result.errors])
    local = load_yaml(profile_file("local"))
    assert _limits(config["concurrency"]["runs"]) == _limits(local["concurrency"]["runs"])
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == local["concurrency"]["runs"]["max_concurrent_runs"]
    assert config["run_monitoring"] == local["run_monitoring"]


def test_the_compose_instance_has_the_production_storage_queue_and_monitoring():
    docker, production = load_yaml(DOCKER / "dagster.yaml"), load_yaml(profile_file("production"))
    # plain `storage: postgres:` is dagster-postgres' NullPool event log (one connection per event)
    # with no batch size: the slow path the production profile exists to avoid
    assert "storage" not in docker
    for key in PRODUCTION_SECTIONS:
        assert docker.get(key) == production[key], f"{key}: differs from deploy/production/dagster.yaml"
    # the batch size is the pooled storage's config field, exported by every process that opens the
    # instance (code server, daemon, webserver, Celery workers): compose need not set the variable
    assert docker["event_log_storage"]["config"]["event_batch_size"] >= 2190
    for name, service in load_yaml(DOCKER / "compose.yaml")["services"].items():
        assert "DAGSTER_EVENT_BATCH_SIZE" not in (service.get("environment") or {}), f"{name}: would override the instance's value"


# -- Kubernetes ---------------------------------------------------------------------------------


def overlay_in_image(tmp: Path, overlay: Path, name: str) -> Path:
    """``overlay`` placed as the image places it: config/<name> beside config/scheduler.yaml."""
    folder = tmp / "config"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "scheduler.yaml", folder / "scheduler.yaml")
    shutil.copy(overlay, folder / name)
    return folder / name


@pytest.fixture(scope="module")
def values() -> dict:
    return load_yaml(K8S / "values.yaml")


def test_helm_values_serve_the_image_module_and_config(values):
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "cryptorun_pipelines.definitions"
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["CRYPTORUN_CONFIG"] in image_files(), "the k8s config is not in the image"
    assert env["CRYPTORUN_ARTIFACTS_DIR"] == dockerfile_env()["CRYPTORUN_ARTIFACTS_DIR"]
    mount = dockerfile_env()["CRYPTORUN_ARTIFACTS_DIR"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    for where in (deployment, launcher):
        assert [m["mountPath"] for m in where["volumeMounts"]] == [mount]
        claims = {v["persistentVolumeClaim"]["claimName"] for v in where["volumes"]}
        assert claims == {load_yaml(K8S / "pvc.yaml")["metadata"]["name"]}
    assert load_yaml(K8S / "pvc.yaml")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_helm_values_keep_the_local_run_limits_and_monitoring(values):
    queued = values["dagsterDaemon"]["runCoordinator"]
    assert queued["enabled"] and queued["type"] == "QueuedRunCoordinator"
    limits = queued["config"]["queuedRunCoordinator"]
    local = load_yaml(profile_file("local"))["concurrency"]["runs"]
    assert limits["maxConcurrentRuns"] == local["max_concurrent_runs"]
    assert _limits({"tag_concurrency_limits": limits["tagConcurrencyLimits"]}) == _limits(local)
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    local_monitoring = load_yaml(profile_file("local"))["run_monitoring"]
    camel = {"poll_interval_seconds": "pollIntervalSeconds", "start_timeout_seconds": "startTimeoutSeconds",
             "cancel_timeout_seconds": "cancelTimeoutSeconds", "max_resume_run_attempts": "maxResumeRunAttempts",
             "max_runtime_seconds": "maxRuntimeSeconds"}
    assert {k: monitoring[v] for k, v in camel.items()} == {k: local_monitoring[k] for k in camel}
    assert set(monitoring) == set(camel.values()) | {"enabled"}, "a key the test does not compare"
    # the chart hard-codes dagster-postgres' event log: only the production batch size can be carried,
    # as the variable, into the run pods where a run's events are written
    batch = load_yaml(profile_file("production"))["event_log_storage"]["config"]["event_batch_size"]
    env_vars = values["runLauncher"]["config"]["k8sRunLauncher"]["envVars"]
    assert f"DAGSTER_EVENT_BATCH_SIZE={batch}" in env_vars
    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlScheme"] == "postgresql+psycopg2"
    assert pg["postgresqlParams"] == load_yaml(profile_file("production"))["run_storage"]["config"]["postgres_db"]["params"]
    assert "postgresqlPassword" not in pg, "the password belongs in the Secret global.postgresqlSecretName"


def test_the_k8s_config_overlay_loads_and_picks_a_multi_process_executor(tmp_path):
    config = load_config(overlay_in_image(tmp_path, K8S / "cryptorun.yaml", "k8s.yaml"), check_artifacts_dir=False)
    assert config.executor.type == "multiprocess"
