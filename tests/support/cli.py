"""The real `relay` command in a subprocess, with exactly the settings a test gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def relay_in(tmp_path: Path, *args: str, **env_values: str) -> subprocess.CompletedProcess[str]:
    """`relay ARGS` run from `tmp_path` (no .env there), with none of the caller's relay,
    Telegram or locale settings: only `env_values` (e.g. RELAY_LANG, LANG, TELEGRAM_BOT_TOKEN)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "TELEGRAM_", "LC_"))}
    env.update({"PYTHONPATH": str(ROOT), "LANGUAGE": "", **env_values})
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
