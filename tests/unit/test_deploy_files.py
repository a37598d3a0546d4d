"""docker-compose.yaml and Dockerfile, checked statically (no Docker engine on CI)."""

from __future__ import annotations

import re
import shlex

import yaml

from socialpulse.config import DUCKDB_POOL
from tests.conftest import PROJECT_ROOT


def test_compose_service_builds_this_repo_and_mounts_existing_folders():
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())
    service = compose["services"]["airflow"]
    assert service["build"] == "."
    assert (PROJECT_ROOT / "Dockerfile").exists()
    for volume in service["volumes"]:
        host = volume.split(":")[0]
        if host not in ("./data", "./.airflow"):  # created at run time
            assert (PROJECT_ROOT / host).is_dir(), host
    env = service["environment"]
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("/dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"].endswith("/plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_compose_creates_every_pool_before_airflow_starts():
    """`airflow standalone` creates no pools; without them no DuckDB writer (and no fetch of a
    rate-limited platform) is ever scheduled."""
    from socialpulse.config import POOLS

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())
    shell, flag, script = compose["services"]["airflow"]["command"]
    assert (shell, flag) == ("bash", "-c")
    steps = [step.strip() for step in script.split("&&")]
    assert steps[0] == "airflow db migrate"
    assert steps[-1] == "exec airflow standalone"
    created = {}
    for step in steps[1:-1]:
        words = shlex.split(step)
        assert words[:3] == ["airflow", "pools", "set"], step
        created[words[3]] = (int(words[4]), words[5])
    assert created == POOLS
    assert created[DUCKDB_POOL][0] == 1


def test_dockerfile_base_image_matches_the_locked_airflow_and_python():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    image = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", dockerfile, re.M)
    assert image, dockerfile
    locked = re.search(
        r"^apache-airflow==(\S+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.M
    )
    assert image.group(1) == locked.group(1)
    assert image.group(2) == "3.11"


def test_env_example_names_only_settings_the_code_reads():
    config = (PROJECT_ROOT / "include" / "socialpulse" / "config.py").read_text()
    names = re.findall(r"^# (SOCIALPULSE_\w+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M)
    assert names
    for name in names:
        assert f'"{name}"' in config, name


def test_env_example_and_readme_list_every_setting_the_code_reads():
    config = (PROJECT_ROOT / "include" / "socialpulse" / "config.py").read_text()
    read = set(re.findall(r'"(SOCIALPULSE_\w+)"', config))
    listed = set(
        re.findall(r"^# (SOCIALPULSE_\w+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M)
    )
    assert read - listed == set()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert {n for n in read if f"| `{n}` |" not in readme} == set()
