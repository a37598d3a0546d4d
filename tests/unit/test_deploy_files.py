"""docker-compose.yaml, deploy/, Dockerfile, .dockerignore and .env.example, checked statically
(no Docker engine on CI; `docker compose config` runs where the compose plugin exists)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from socialpulse.config import DUCKDB_POOL, POOLS, pool_slots
from tests.conftest import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yaml"
LOCAL_OVERRIDE = PROJECT_ROOT / "deploy" / "docker-compose.local.yaml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"

#: the Airflow components, each a service of its own as in Airflow's official compose file
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "flower",
)
LONG_RUNNING = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init") + ("postgres", "redis")
APISERVER_URL = "http://airflow-apiserver:8080/execution/"
WRITERS = "${SOCIALPULSE_WAREHOUSE_WRITERS:-1}"
DAG_PROCESSOR_CHECK = 'airflow jobs check --job-type DagProcessorJob --hostname "$${HOSTNAME}"'
TRIGGERER_CHECK = 'airflow jobs check --job-type TriggererJob --hostname "$${HOSTNAME}"'
WORKER_PING = (
    "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping"
    ' -d "celery@$${HOSTNAME}"'
)
HEALTHCHECKS = {
    "postgres": ["CMD", "pg_isready", "-U", "airflow"],
    "redis": ["CMD", "redis-cli", "ping"],
    "airflow-apiserver": ["CMD", "curl", "--fail", "http://localhost:8080/api/v2/version"],
    "airflow-scheduler": ["CMD", "curl", "--fail", "http://localhost:8974/health"],
    "airflow-dag-processor": ["CMD-SHELL", DAG_PROCESSOR_CHECK],
    "airflow-triggerer": ["CMD-SHELL", TRIGGERER_CHECK],
    "flower": ["CMD", "curl", "--fail", "http://localhost:5555/"],
}


def compose() -> dict[str, Any]:
    """docker-compose.yaml with its YAML anchors and `<<` merges resolved."""
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, Any]:
    return compose()["services"]


class _Override:
    """A value tagged `!override` in a compose file: it replaces the value it is laid over."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _ComposeLoader(yaml.SafeLoader):
    pass


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> _Override:
    if isinstance(node, yaml.MappingNode):
        return _Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return _Override(loader.construct_sequence(node, deep=True))
    return _Override(loader.construct_scalar(node))


_ComposeLoader.add_constructor("!override", _construct_override)


def _lay_over(base: Any, over: Any) -> Any:
    """Compose's merge of a second file, as far as these files use it: mappings merge key
    by key, `!override` replaces, anything else replaces."""
    if isinstance(over, _Override):
        return over.value
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _lay_over(base.get(key), value)
        return merged
    return over


def local_layout() -> dict[str, Any]:
    """The services of `docker compose -f docker-compose.yaml -f deploy/docker-compose.local.yaml`
    that start without a --profile."""
    override = yaml.load(LOCAL_OVERRIDE.read_text(), Loader=_ComposeLoader)
    merged = _lay_over(compose()["services"], override["services"])
    return {name: s for name, s in merged.items() if not s.get("profiles")}


def env_example_names() -> set[str]:
    """Every variable .env.example sets or shows, commented out or not."""
    return set(re.findall(r"^(?:# )?([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


def test_compose_has_the_services_of_airflows_celery_layout():
    found = services()
    assert set(found) == {"postgres", "redis", *AIRFLOW_SERVICES}
    assert found["postgres"]["image"] == "postgres:16"
    assert found["redis"]["image"] == "redis:7.2-bookworm"
    assert found["airflow-apiserver"]["command"] == "api-server"
    assert found["airflow-scheduler"]["command"] == "scheduler"
    assert found["airflow-dag-processor"]["command"] == "dag-processor"
    assert found["airflow-worker"]["command"] == "celery worker"
    assert found["airflow-triggerer"]["command"] == "triggerer"
    assert found["flower"]["command"] == "celery flower"
    assert found["airflow-apiserver"]["ports"] == ["8080:8080"]
    # flower has no login: optional, and on the loopback only
    assert found["flower"]["profiles"] == ["flower"]
    assert found["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert [s for s in found if s != "flower" and found[s].get("profiles")] == []


def test_every_airflow_service_runs_the_one_image_built_from_this_repo():
    raw = COMPOSE.read_text()
    common = compose()["x-airflow-common"]
    assert common["build"] == "."
    assert common["image"] == "${AIRFLOW_IMAGE_NAME:-socialpulse-airflow:latest}"
    assert common["user"] == "${AIRFLOW_UID:-50000}:0"
    assert common["env_file"] == [{"path": ".env", "required": False}]
    found = services()
    for name in AIRFLOW_SERVICES:
        service = found[name]
        # from the anchor, not a copy that could drift
        assert re.search(rf"^  {name}:\n    <<: \*airflow-common\n", raw, re.M), name
        for key in ("build", "image", "user", "env_file", "volumes"):
            assert service[key] == common[key], (name, key)
    assert (PROJECT_ROOT / "Dockerfile").exists()


def test_airflow_services_share_executor_execution_api_and_secret():
    common = compose()["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        "postgresql+psycopg2://airflow:airflow@postgres/airflow"
    )
    assert common["AIRFLOW__CELERY__RESULT_BACKEND"] == (
        "db+postgresql://airflow:airflow@postgres/airflow"
    )
    assert common["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0"
    assert common["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert common["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true"
    assert common["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert common["AIRFLOW__CORE__FERNET_KEY"] == "${AIRFLOW_FERNET_KEY:-}"
    # the shared secret has no default (a default would be known to everyone)
    secret = common["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert secret.startswith("${AIRFLOW_JWT_SECRET:?"), secret
    assert common["AIRFLOW__API__SECRET_KEY"] == secret
    assert common["SOCIALPULSE_WAREHOUSE_WRITERS"] == WRITERS
    found = services()
    for name in AIRFLOW_SERVICES:
        env = found[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == APISERVER_URL, name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret, name
        assert env["AIRFLOW__API__SECRET_KEY"] == secret, name
        assert {k: v for k, v in env.items() if k != "DUMB_INIT_SETSID"} == common, name
    # the execution API is the API server's, on the port it listens on
    assert found["airflow-apiserver"]["ports"][0].endswith(":8080")
    # a warm shutdown: the worker finishes its tasks when the container stops
    assert found["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_every_long_running_service_has_its_healthcheck():
    found = services()
    assert set(LONG_RUNNING) == set(found) - {"airflow-init"}
    for name, test in HEALTHCHECKS.items():
        assert found[name]["healthcheck"]["test"] == test, name
    shell, ping = found["airflow-worker"]["healthcheck"]["test"]
    assert shell == "CMD-SHELL"
    assert ping.startswith(WORKER_PING), ping
    for name in LONG_RUNNING:
        assert found[name]["restart"] == "always", name
        assert found[name]["healthcheck"]["interval"], name
    assert "healthcheck" not in found["airflow-init"]
    assert "restart" not in found["airflow-init"]


def test_services_start_in_order():
    found = services()
    healthy = {"condition": "service_healthy"}
    done = {"condition": "service_completed_successfully"}
    assert found["airflow-init"]["depends_on"] == {"postgres": healthy, "redis": healthy}
    for name in AIRFLOW_SERVICES:
        if name == "airflow-init":
            continue
        depends = found[name]["depends_on"]
        assert depends["postgres"] == healthy, name
        assert depends["redis"] == healthy, name
        assert depends["airflow-init"] == done, name
    # a worker takes tasks only once the execution API answers
    assert found["airflow-worker"]["depends_on"]["airflow-apiserver"] == healthy
    for name, service in found.items():
        for target, how in service.get("depends_on", {}).items():
            assert target in found, (name, target)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in found[target], (name, target)


def test_init_migrates_and_creates_exactly_the_pools_of_the_config():
    """Without the pools no warehouse writer and no fetch of a rate-limited platform is ever
    scheduled; the warehouse writers' slots follow SOCIALPULSE_WAREHOUSE_WRITERS."""
    init = services()["airflow-init"]
    shell, flag, script = init["command"]
    assert (shell, flag) == ("bash", "-c")
    steps = [step.strip() for step in script.split("&&")]
    # first the settings: SOCIALPULSE_WAREHOUSE_WRITERS > 1 on a DuckDB file fails here
    check, function = shlex.split(steps[0])[2].split("; ")
    assert check == "from socialpulse.config import pool_slots"
    assert function == "pool_slots()"
    assert callable(pool_slots)
    assert steps[1] == "airflow db migrate"
    created = {}
    for step in steps[2:]:
        words = shlex.split(step)
        assert words[:3] == ["airflow", "pools", "set"], step
        assert len(words) == 6 and words[5], step
        assert words[3] not in created, step
        created[words[3]] = words[4]
    assert set(created) == set(POOLS)
    assert created.pop(DUCKDB_POOL) == WRITERS
    assert created == {
        name: str(slots) for name, (slots, _) in POOLS.items() if name != DUCKDB_POOL
    }


def test_named_volumes_hold_the_data_logs_and_metadata_db():
    spec = compose()
    common = spec["x-airflow-common"]
    mounts = {m.split(":")[1]: m.split(":") for m in common["volumes"]}
    env = common["environment"]
    assert mounts[env["SOCIALPULSE_DATA_DIR"]][0] == "socialpulse-data"
    assert env["SOCIALPULSE_DATA_DIR"] == "/opt/socialpulse/data"
    assert mounts["/opt/airflow/logs"][0] == "airflow-logs"
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert mounts[passwords.rsplit("/", 1)[0]][0] == "airflow-auth"
    # the code, read-only, where the DAG and plugin folders point and the package is imported
    assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == ["./dags", "/opt/socialpulse/dags", "ro"]
    assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == [
        "./plugins",
        "/opt/socialpulse/plugins",
        "ro",
    ]
    assert mounts["/opt/socialpulse/include"] == ["./include", "/opt/socialpulse/include", "ro"]
    postgres = {m.split(":")[1]: m.split(":")[0] for m in spec["services"]["postgres"]["volumes"]}
    assert postgres["/var/lib/postgresql/data"] == "postgres-db-volume"
    named = set(spec["volumes"])
    assert named == {"postgres-db-volume", "socialpulse-data", "airflow-logs", "airflow-auth"}
    # every host folder mounted exists; every other source is a declared named volume
    for service in spec["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).is_dir(), source
            else:
                assert source in named, source
    # a new named volume takes the owner and mode of the image's folder: the Dockerfile
    # creates them for the airflow user, group-writable (the containers run as group 0)
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    run = next(line for line in dockerfile.splitlines() if line.startswith("RUN mkdir -p "))
    steps = [shlex.split(step) for step in run.removeprefix("RUN ").split("&&")]
    made = {f for step in steps if step[:2] == ["mkdir", "-p"] for f in step[2:]}
    owned = {f for step in steps if step[:2] == ["chown", "airflow:root"] for f in step[2:]}
    writable = {
        f for step in steps if step[:1] == ["chmod"] and step[1][1] == "7" for f in step[2:]
    }
    for folder in ("/opt/socialpulse/data", "/opt/airflow/logs", "/opt/airflow/auth"):
        assert folder in made & owned & writable, folder


def test_postgres_creates_the_ducklake_catalog_database():
    mounts = dict(m.split(":", 1) for m in services()["postgres"]["volumes"])
    assert mounts["./deploy/postgres-init"] == "/docker-entrypoint-initdb.d:ro"
    scripts = sorted((PROJECT_ROOT / "deploy" / "postgres-init").glob("*.sql"))
    sql = "\n".join(p.read_text() for p in scripts)
    assert re.search(r"^CREATE DATABASE socialpulse_lake\b", sql, re.M | re.I), sql
    catalog = env_example_connections()["SOCIALPULSE_LAKE_CATALOG"]
    assert catalog["host"] == "postgres"
    assert catalog["schema"] == "socialpulse_lake"
    assert services()["postgres"]["environment"]["POSTGRES_USER"] == catalog["login"]


def test_local_override_runs_the_local_executor_without_redis_or_workers():
    layout = local_layout()
    assert set(layout) == {
        "postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-init",
    }
    for name, service in layout.items():
        for target in service.get("depends_on", {}):
            assert target in layout, (name, target)
        if name.startswith("airflow-"):
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
            # the rest of the environment is the Celery layout's
            assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == APISERVER_URL
            assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
            assert service["image"] == compose()["x-airflow-common"]["image"]
    assert layout["airflow-scheduler"]["depends_on"]["airflow-init"] == {
        "condition": "service_completed_successfully"
    }
    # the scheduler runs the tasks: it has the data volume
    assert "socialpulse-data:/opt/socialpulse/data" in layout["airflow-scheduler"]["volumes"]


def test_dockerfile_base_image_matches_the_locked_airflow_and_python():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    image = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert image, dockerfile
    locked = re.search(
        r"^apache-airflow==(\S+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.M
    )
    assert image.group(1) == locked.group(1)
    assert image.group(2) == "3.11"


def test_dockerfile_installs_the_lock_then_the_project_as_the_airflow_user():
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line for line in text.splitlines() if line.startswith(("RUN ", "USER "))]
    installs = [r for r in runs if "pip install" in r]
    lock, project = installs
    assert re.search(
        r'pip install --no-cache-dir "apache-airflow==\$\{AIRFLOW_VERSION\}"\s+-r \S*requirements.txt',
        lock,
    ), lock
    assert re.search(r"pip install --no-cache-dir --no-deps -e /opt/socialpulse$", project)
    # pip runs as the airflow user (the official image's rule), never as root
    users = [r for r in runs[: runs.index(lock)] if r.startswith("USER ")]
    assert users[-1] == "USER airflow", runs
    assert re.search(r"^COPY \S+ requirements.txt ", text, re.M)


def test_nothing_installs_packages_when_a_container_starts():
    """The lock is baked into the image; `_PIP_ADDITIONAL_REQUIREMENTS` would install
    unpinned packages at every container start."""
    for path in (COMPOSE, LOCAL_OVERRIDE, PROJECT_ROOT / "Dockerfile", ENV_EXAMPLE):
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in path.read_text(), path


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build():
    ignored = set((PROJECT_ROOT / ".dockerignore").read_text().split())
    assert {".venv", "data", ".airflow", "test-artifacts", ".git", ".env"} <= ignored
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY --chown=\S+ (.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert path not in ignored, path
            assert (PROJECT_ROOT / path).exists(), path


def env_example_connections() -> dict[str, dict[str, Any]]:
    """The AIRFLOW_CONN_<ID>='<json>' examples of .env.example, by <ID>; later ones win."""
    found = {}
    for conn_id, value in re.findall(
        r"^# AIRFLOW_CONN_(\w+)='(.*)'$", ENV_EXAMPLE.read_text(), re.M
    ):
        found[conn_id] = json.loads(value)
    return found


def test_env_example_lists_every_variable_the_compose_files_read():
    listed = env_example_names()
    for path in (COMPOSE, LOCAL_OVERRIDE):
        text = path.read_text().replace("$$", "")
        read = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
        assert read or path == LOCAL_OVERRIDE, path
        assert read - listed == set(), path


def test_env_example_commits_no_secret_and_its_connections_are_json():
    text = ENV_EXAMPLE.read_text()
    # set (uncommented) are only the two secrets, and those empty
    assigned = re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", text, re.M)
    assert assigned == [("AIRFLOW_JWT_SECRET", ""), ("AIRFLOW_FERNET_KEY", "")]
    connections = env_example_connections()
    for conn_id, conn in connections.items():
        assert conn["conn_type"], conn_id
        # a placeholder, or the compose file's own PostgreSQL password
        secret = conn.get("password", "")
        assert not secret or "<" in secret or secret == "airflow", conn_id
    # the platforms of README "Credentials", the alert channels and both warehouse shapes
    for conn_id in ("FACEBOOK_DEFAULT", "INSTAGRAM_DEFAULT", "YOUTUBE_DEFAULT"):
        assert conn_id in connections
    assert {"MASTODON_DEFAULT", "BLUESKY_DEFAULT", "SMTP_DEFAULT", "SLACK_DEFAULT"} <= set(
        connections
    )
    warehouses = re.findall(r"^# AIRFLOW_CONN_SOCIALPULSE_WAREHOUSE='(.*)'$", text, re.M)
    duckdb_file, ducklake = (json.loads(w) for w in warehouses)
    assert duckdb_file == {"conn_type": "duckdb", "host": "/opt/socialpulse/data/warehouse.duckdb"}
    assert ducklake["conn_type"] == "duckdb"
    catalog_id = ducklake["extra"]["ducklake_catalog_conn_id"]
    assert catalog_id.upper() in connections
    assert ducklake["extra"]["data_path"].startswith("/opt/socialpulse/data/")
    assert "# SOCIALPULSE_WAREHOUSE_CONN_ID=socialpulse_warehouse" in text
    assert "# SOCIALPULSE_WAREHOUSE_WRITERS=4" in text


def test_env_example_names_only_settings_the_code_reads():
    config = (PROJECT_ROOT / "include" / "socialpulse" / "config.py").read_text()
    names = re.findall(r"^# (SOCIALPULSE_\w+)=", ENV_EXAMPLE.read_text(), re.M)
    assert names
    for name in names:
        assert f'"{name}"' in config, name


def test_env_example_and_readme_list_every_setting_the_code_reads():
    config = (PROJECT_ROOT / "include" / "socialpulse" / "config.py").read_text()
    read = set(re.findall(r'"(SOCIALPULSE_\w+)"', config))
    listed = set(re.findall(r"^# (SOCIALPULSE_\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert read - listed == set()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert {n for n in read if f"| `{n}` |" not in readme} == set()


def _docker_compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on PATH")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    return [docker, "compose"]


@pytest.mark.parametrize("files", [(COMPOSE,), (COMPOSE, LOCAL_OVERRIDE)], ids=["celery", "local"])
def test_docker_compose_accepts_the_files(tmp_path, files):
    """`docker compose config` (no engine needed) with .env.example as the .env."""
    cmd = _docker_compose()
    env_file = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env_file)
    args = [*cmd, "--project-directory", str(PROJECT_ROOT), "--env-file", str(env_file)]
    for path in files:
        args += ["-f", str(path)]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG")}
    ok = subprocess.run(
        [*args, "config", "--quiet"],
        env={**base, "AIRFLOW_JWT_SECRET": "test-only"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    # without the shared secret it refuses, and says which variable is missing
    refused = subprocess.run(
        [*args, "config", "--quiet"], env=base, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0
    assert "AIRFLOW_JWT_SECRET" in refused.stderr
