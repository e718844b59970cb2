"""Keep g4f off the network in tests, on every g4f release. Used by conftest and subprocess tests."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

PROVIDERS_STUB = {"providers": {"default": {"baseUrl": "http://127.0.0.1:9/v1"}}, "defaultModels": {}}


def prepare_offline_dirs(root: Path) -> dict[str, str]:
    """Write g4f's cached providers list for yesterday, today and tomorrow; return the env to use.

    g4f 8.7.2 on reads it from $G4F_CACHE_DIR/.models/<day>; older releases
    ignore that variable and read <cookies folder>/models/<day> (or .models), the cookies
    folder being ~/.config/g4f/cookies (or ~/.g4f/cookies, which is not
    created here so that every release picks ~/.config/g4f): so HOME moves too.
    """
    cache = root / "g4f-cache"
    home = root / "home"
    cookies = home / ".config" / "g4f" / "cookies"
    today = datetime.date.today()
    for day in (today - datetime.timedelta(days=1), today, today + datetime.timedelta(days=1)):
        for folder in (cache / ".models" / day.isoformat(), cookies / "models" / day.isoformat(),
                       cookies / ".models" / day.isoformat()):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "providers.json").write_text(json.dumps(PROVIDERS_STUB))
    config = root / "g4f-config"
    config.mkdir(exist_ok=True)
    return {"G4F_CACHE_DIR": str(cache), "G4F_CONFIG_DIR": str(config), "HOME": str(home)}


def offline_env(root: Path, **extra: str) -> dict[str, str]:
    """A copy of os.environ for a subprocess that runs g4f offline."""
    env = dict(os.environ)
    env.update(prepare_offline_dirs(root))
    env.update(extra)
    return env
