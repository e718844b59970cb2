"""g4f-autonomous: the Autonomous AI chat provider as a g4f plugin.

Importing this package registers ``AutonomousAI`` with g4f, so
``Client(provider="AutonomousAI")`` and every other g4f surface can use it.
"""

from .provider import AutonomousAI
from .registry import register

__version__ = "0.1.0"
__all__ = ["AutonomousAI", "register", "__version__"]

register()
