"""Registers AutonomousAI with g4f the moment g4f is imported, without importing it first.

Loaded at interpreter start-up by ``g4f_autonomous_autoload.pth`` (placed in
site-packages by a regular install), so it must stay cheap: standard library
modules that start-up has already loaded, one finder on ``sys.meta_path``,
nothing else. The finder watches for named modules; when one is imported, it
lets the real loader run and then calls the callbacks registered for it.

``G4F_AUTONOMOUS_AUTOLOAD=0`` turns the start-up part off.

This module is a leaf: it imports no module of this project and knows the
package only by name, so the package can import it (for ``when_imported``)
without an import cycle.
"""

import os
import sys

AUTOLOAD_ENV = "G4F_AUTONOMOUS_AUTOLOAD"
PACKAGE = "g4f_autonomous"  # importing it registers the provider
WATCHED = "g4f"

_callbacks: dict = {}  # module name -> callbacks waiting for it


def when_imported(name, callback):
    """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        callback(module)
        return
    waiting = _callbacks.setdefault(name, [])
    if callback not in waiting:  # register() may run many times before the import
        waiting.append(callback)
    if not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PostImportFinder())


class _PostImportFinder:
    """Finds nothing itself: it wraps the real loader of a watched module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _callbacks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, fullname)  # type: ignore[assignment]
        return spec


class _NotifyingLoader:
    def __init__(self, loader, fullname):
        self._loader = loader
        self._fullname = fullname

    def __getattr__(self, attribute):
        return getattr(self._loader, attribute)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        # Put the real loader back: nothing should ever see this wrapper again.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        for callback in _callbacks.pop(self._fullname, []):
            try:
                callback(module)
            except Exception as error:  # a plugin must never break g4f's import
                print(f"g4f-autonomous: could not register with {self._fullname}: {error!r}", file=sys.stderr)


def _register_with_g4f(_module):
    __import__(PACKAGE)  # by name: a static import would make this module part of a cycle


def arm():
    """Called from the .pth file at start-up."""
    if os.environ.get(AUTOLOAD_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return
    when_imported(WATCHED, _register_with_g4f)
