"""Registers AutonomousAI with g4f the moment g4f is imported, without importing it first.

Loaded at interpreter start-up by ``g4f_autonomous_autoload.pth`` (placed in
site-packages by a regular install), so it must stay cheap: standard library
modules that start-up has already loaded, one finder on ``sys.meta_path``,
nothing else. The finder watches for named modules; when one is imported, it
lets the real loader run and then calls the callbacks registered for it.

``G4F_AUTONOMOUS_AUTOLOAD=0`` turns the start-up part off.

This module is a leaf: it imports no module of this project and knows the
package only by name, so the package can import it (for ``when_imported``
and ``env_flag``) without an import cycle.
"""

import _thread
import os
import sys

AUTOLOAD_ENV = "G4F_AUTONOMOUS_AUTOLOAD"
PACKAGE = "g4f_autonomous"  # importing it registers the provider once g4f is imported
WATCHED = "g4f"
_OFF = ("0", "false", "no", "off")

_callbacks: dict = {}  # module name -> callbacks waiting for it
_executed: dict = {}  # watched module name -> the module whose code has run (its callbacks may still be running)
# Guards the two above and sys.meta_path: register() is called from any thread. Reentrant, as a
# callback may ask for another. _thread's, not threading's: start-up may not have loaded threading.
_lock = _thread.RLock()


def env_flag(name):
    """An on/off switch in the environment: on unless set to 0, false, no or off (any case)."""
    return os.environ.get(name, "1").strip().lower() not in _OFF


def being_imported(name):
    """Whether module ``name`` is in sys.modules with its code still running (names in it may be missing)."""
    module = sys.modules.get(name)
    initializing = getattr(getattr(module, "__spec__", None), "_initializing", False)
    return module is not None and bool(initializing) and _executed.get(name) is not module


def when_imported(name, callback):
    """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
    with _lock:
        waiting = name not in sys.modules or being_imported(name)
        if waiting:
            callbacks = _callbacks.setdefault(name, [])
            if callback not in callbacks:  # register() may run many times before the import
                callbacks.append(callback)
            if not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
                sys.meta_path.insert(0, _PostImportFinder())
    if not waiting:  # outside the lock: the callback may import, and imports take locks of their own
        callback(sys.modules[name])


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
        with _lock:
            callbacks = _callbacks.pop(self._fullname, [])
            _executed[self._fullname] = module  # from now on, when_imported calls at once
        for callback in callbacks:
            try:
                callback(module)
            except Exception as error:  # a plugin must never break g4f's import
                print(f"g4f-autonomous: could not register with {self._fullname}: {error!r}", file=sys.stderr)


def _register_with_g4f(_module):
    # By name: a static import would make this module part of a cycle. Importing the package
    # registers the provider, g4f being imported now.
    __import__(PACKAGE)


def arm():
    """Called from the .pth file at start-up."""
    if env_flag(AUTOLOAD_ENV):
        when_imported(WATCHED, _register_with_g4f)
