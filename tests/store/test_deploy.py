"""Deploy wiring of the call store: the password stays a secret wherever the URL travels."""

import subprocess
import sys
from pathlib import Path

import yaml

from callqual.store.service import StoreSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRET = "pw-9f2c"


def test_settings_never_show_the_password() -> None:
    settings = StoreSettings(url=f"postgresql://callqual:{SECRET}@db/callqual")
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert SECRET in settings.url.get_secret_value()


def test_bad_settings_exit_2_without_echoing_the_url() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "callqual",
            "store",
            "--store",
            f"postgresql://u:{SECRET}@db/x",
            "--batch-size",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "batch_size" in proc.stderr and SECRET not in proc.stderr + proc.stdout


def test_compose_and_systemd_pass_the_url_in_the_environment() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    store = compose["store"]
    assert not any("postgresql://" in part for part in store["command"])
    assert store["environment"]["CALLQUAL_STORE_URL"].startswith(
        "postgresql://callqual:${CALLQUAL_DB_PASSWORD"
    )
    assert set(store["depends_on"]) == {"kafka", "postgres"}
    assert "./postgres/init:/docker-entrypoint-initdb.d:ro" in compose["postgres"]["volumes"]
    assert "CALLQUAL_GRAFANA_DB_PASSWORD" in compose["grafana"]["environment"]
    unit = (DEPLOY / "systemd" / "callqual-store.service").read_text()
    assert "EnvironmentFile=/etc/callqual/store.env" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "callqual store" in exec_start and "postgresql://" not in exec_start
