"""What g4f needs to see AutonomousAI: its provider registry, model routing, GUI list.

g4f has no plugin discovery, so registration writes the provider into the
few places g4f looks; every write goes through :mod:`.compat`, which checks
the shape first. Parts of g4f that are expensive or reach for the network on
import (the GUI, the model router) are patched only when something else
imports them, through ``when_imported``.

Nothing registered here reaches a file: where g4f saves a list (the GUI's
provider and model lists), the entry is added where g4f reads the list and
taken out of what g4f writes, so g4f's files are exactly what g4f alone would
write, and uninstalling the plugin leaves nothing behind.

Model names without a provider reach AutonomousAI only through its five
public aliases (g4f's model map); ``G4F_AUTONOMOUS_ROUTING=0`` leaves g4f's
model routing as it is without the plugin, the provider still selectable by name.
"""

from __future__ import annotations

from typing import Any

from g4f_autonomous_autoload import env_flag, when_imported

from . import compat, wire
from .provider import AutonomousAI

NAME = AutonomousAI.__name__
ROUTING_ENV = "G4F_AUTONOMOUS_ROUTING"


def routing_enabled() -> bool:
    """Whether model names without a provider may go to AutonomousAI (default: yes; "0" says no)."""
    return env_flag(ROUTING_ENV)


def register() -> type[AutonomousAI]:
    """Make AutonomousAI visible to g4f. Idempotent and thread-safe; never raises on a changed g4f."""
    compat.register_provider(AutonomousAI)
    if "auto" not in AutonomousAI.model_aliases and not compat.auto_model_supported():
        # g4f before 8.2.7 does not read "auto" as "the default model": say it for it.
        AutonomousAI.model_aliases["auto"] = AutonomousAI.default_model
    if routing_enabled():
        when_imported("g4f.providers.any_provider", _add_model_routes)
    when_imported("g4f.providers.provider_router", _hide_from_model_discovery)
    when_imported("g4f.gui.server.api", _patch_gui_provider_list)
    return AutonomousAI


def _add_model_routes(module: Any) -> None:
    """Let g4f's model routing (no provider given) pick AutonomousAI for its public model names.

    Only the public aliases are routed: the upstream names ("llama", "vision",
    ...) are generic words, and putting "llama" into the map would take it away
    from g4f's own alias "llama" → "llama-3.3-70b" and every provider behind
    it. The upstream names stay reachable as "AutonomousAI:<name>".
    """
    compat.add_model_routes(module, AutonomousAI, wire.MODEL_ALIASES)


def _hide_from_model_discovery(module: Any) -> None:
    """g4f 8.8's search for a model's providers would route the upstream names ("qwen_coder", "vision") too.

    Routing is the five public aliases, or nothing: a search by upstream name
    would take "qwen_coder" from Pollinations, and with routing off it would
    still send "hermes-3" here.
    """
    compat.hide_from_model_discovery(module, AutonomousAI)


def _patch_gui_provider_list(module: Any) -> None:
    """The GUI serves lists g4f saved without the plugin: add our entry on the way out, keep it out of the files."""
    compat.keep_out_of_saved_lists(module, AutonomousAI)
    compat.patch_gui_provider_list(module, AutonomousAI)
