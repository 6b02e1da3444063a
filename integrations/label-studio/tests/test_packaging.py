"""The ways the integration is switched on agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ENV_FILE, env_file

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def dockerfile_env() -> dict:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S*)", line):
                out[key] = value
    return out


def test_the_dockerfile_sets_exactly_the_env_files_variables() -> None:
    assert dockerfile_env() == env_file(ENV_FILE)


def test_the_env_file_loads_the_settings_module_and_names_the_jwks() -> None:
    env = env_file(ENV_FILE)
    assert env["DJANGO_SETTINGS_MODULE"] == "authgate_label_studio.settings"
    assert env["AUTHGATE_JWKS_URL"].endswith("/_auth/jwks.json")
