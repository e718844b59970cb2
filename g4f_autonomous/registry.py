"""What g4f needs to see AutonomousAI: its provider loader, model routing, GUI list.

g4f has no plugin discovery, so registration writes the provider into the
few places g4f looks (see DESIGN.md 5). Parts of g4f that are expensive or
reach for the network on import (the GUI, the model router) are patched only
when something else imports them, through ``when_imported``.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import g4f.Provider
from g4f.Provider import ProviderLoader

from g4f_autonomous_autoload import when_imported

from . import wire
from .provider import AutonomousAI

NAME = AutonomousAI.__name__
# Public model name -> upstream model, as g4f's model router should see them.
MODEL_ROUTES: dict[str, str] = dict(wire.MODEL_ALIASES)
_lock = threading.RLock()


def register() -> type[AutonomousAI]:
    """Make AutonomousAI visible to g4f. Idempotent and thread-safe."""
    with _lock:
        # g4f looks names up as given, then lower-cased without "-" and "_".
        ProviderLoader.loaded[NAME] = AutonomousAI
        ProviderLoader.loaded[NAME.lower().replace("-", "").replace("_", "")] = AutonomousAI
        if NAME not in ProviderLoader.names:
            ProviderLoader.names.append(NAME)
        if NAME not in g4f.Provider.__all__:  # dir(g4f.Provider) and star imports
            g4f.Provider.__all__.append(NAME)
        when_imported("g4f.providers.any_provider", _add_model_routes)
        when_imported("g4f.gui.server.api", _patch_gui_provider_list)
    return AutonomousAI


def _add_model_routes(module: Any) -> None:
    """Let g4f's model routing (no provider given) pick AutonomousAI for its public model names.

    Only the public aliases are routed: the upstream names ("llama", "vision",
    ...) are generic words, and putting "llama" into the map would take it away
    from g4f's own alias "llama" → "llama-3.3-70b" and every provider behind
    it. The upstream names stay reachable as "AutonomousAI:<name>".
    """
    mixin = module.AnyModelProviderMixin
    with _lock:
        for public_name, model in MODEL_ROUTES.items():
            providers = mixin.model_map.setdefault(public_name, {})
            providers[NAME] = model
            if mixin.models and public_name not in mixin.models:
                mixin.models.append(public_name)
            if isinstance(mixin.models_count, dict):
                mixin.models_count[public_name] = len(providers)
            if model in AutonomousAI.vision_models and public_name not in mixin.vision_models:
                mixin.vision_models.append(public_name)


def gui_entry() -> dict[str, Any]:
    """AutonomousAI as the GUI's provider list shows a provider."""
    return {
        "name": NAME,
        "label": AutonomousAI.label,
        "parent": None,
        "image": 0,
        "audio": 0,
        "video": 0,
        "vision": AutonomousAI.default_vision_model is not None,
        "nodriver": False,
        "hf_space": False,
        "active_by_default": AutonomousAI.active_by_default,
        "auth": AutonomousAI.needs_auth,
        "login_url": None,
        "live": AutonomousAI.live,
        "login": False,
    }


def _patch_gui_provider_list(module: Any) -> None:
    """The GUI serves a list cached in g4f's packaged providers.json: add our entry on the way out."""
    api = module.Api
    original = api.__dict__["get_providers"].__func__
    if getattr(original, "_autonomous_ai", False):
        return

    @functools.wraps(original)
    def get_providers(*args: Any, **kwargs: Any) -> Any:
        providers = original(*args, **kwargs)
        if not AutonomousAI.working or not isinstance(providers, list):
            return providers
        if any(isinstance(p, dict) and p.get("name") == NAME for p in providers):
            return providers
        return [*providers, gui_entry()]

    get_providers._autonomous_ai = True
    api.get_providers = staticmethod(get_providers)
