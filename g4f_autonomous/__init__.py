"""g4f-autonomous: the Autonomous AI chat provider as a g4f plugin.

``AutonomousAI`` is registered with g4f as soon as g4f is imported (at once, if
it already is), so ``Client(provider="AutonomousAI")`` and every other g4f
surface can use it; touching ``AutonomousAI`` or ``register`` registers it too.
Importing the package or one of its pure modules (sse, wire, redact, inflate,
conformance) before g4f loads neither g4f nor aiohttp.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from g4f_autonomous_autoload import being_imported, when_imported

if TYPE_CHECKING:
    from .provider import AutonomousAI
    from .registry import register

__version__ = "0.1.0"
__all__ = ["AutonomousAI", "register", "__version__"]


def __getattr__(name: str) -> Any:
    """The public names, imported and registered on first use (PEP 562)."""
    if name not in ("AutonomousAI", "register"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import registry

    registry.register()
    return registry.AutonomousAI if name == "AutonomousAI" else registry.register


def _register_with_g4f(_module: Any) -> None:
    # When a module of this package imports g4f for itself (provider -> compat -> g4f), it is
    # still running here, half done: registering now would import it half done. The provider
    # module's own end calls this again; other modules do not need the registration.
    if any(being_imported(name) for name in list(sys.modules) if name.startswith(__name__ + ".")):
        return
    from .registry import register

    register()


when_imported("g4f", _register_with_g4f)
when_imported(f"{__name__}.provider", _register_with_g4f)
