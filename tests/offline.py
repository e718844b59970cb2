"""Keep g4f off the network in tests (see DESIGN.md 5). Used by conftest and subprocess tests."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

PROVIDERS_STUB = {"providers": {"default": {"baseUrl": "http://127.0.0.1:9/v1"}}, "defaultModels": {}}


def prepare_offline_dirs(root: Path) -> dict[str, str]:
    """Write g4f's cached providers list for today and tomorrow; return the env to use."""
    cache = root / "g4f-cache"
    today = datetime.date.today()
    for day in (today - datetime.timedelta(days=1), today, today + datetime.timedelta(days=1)):
        folder = cache / ".models" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "providers.json").write_text(json.dumps(PROVIDERS_STUB))
    config = root / "g4f-config"
    config.mkdir(exist_ok=True)
    return {"G4F_CACHE_DIR": str(cache), "G4F_CONFIG_DIR": str(config)}


def offline_env(root: Path, **extra: str) -> dict[str, str]:
    """A copy of os.environ for a subprocess that runs g4f offline."""
    env = dict(os.environ)
    env.update(prepare_offline_dirs(root))
    env.update(extra)
    return env
