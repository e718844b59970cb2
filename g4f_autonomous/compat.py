"""Every touch of g4f's internals, in one place, with a check of each one's shape.

g4f has no plugin interface, so registering a provider means writing into
structures g4f keeps for itself, and those change between releases (about
weekly). Each function here probes the shape it is about to touch, supports
every layout known from g4f 0.5.8 on, and when it meets one it does not know
(a future g4f) it does what it safely can, warns once, and never raises: a
plugin must not break ``import g4f`` or g4f's commands. The provider class
itself needs none of this: ``Client(provider=AutonomousAI)`` works on any g4f.

Known layouts of g4f's provider registry (``g4f.Provider``):

- ``ProviderLoader`` with ``loaded``, ``names``, ``from_name`` (8.3.1 on);
- module-level ``_loaded_providers`` cache with either a ``_provider_names``
  list (8.3.0) or a ``__map_paths__`` dict (7.7.0) of the names (7.7.0 to 8.3.0);
- a plain ``__map__`` dict (the very object ``ProviderUtils.convert`` is) and a
  ``__providers__`` list (7.6.6 and before).
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from types import FunctionType
from typing import TYPE_CHECKING, Any

import g4f.errors as _errors

__all__ = [
    "AsyncGeneratorProvider", "ProviderModelMixin", "debug", "to_data_uri",
    "CloudflareError", "FinishReason", "JsonConversation", "ModelNotFoundError", "ProviderNotWorkingError",
    "RateLimitError", "ResponseError", "ResponseStatusError", "TimeoutError", "Usage",
    "G4F_VERSION", "add_model_routes", "auto_model_supported", "gui_entry", "has_health_routes",
    "hide_from_model_discovery", "keep_out_of_saved_lists", "patch_gui_provider_list", "register_provider",
    "registry_layout", "warn_changed", "without_provider",
]


def _g4f_version() -> str:
    try:
        from importlib.metadata import version

        return version("g4f")
    except Exception:  # an unpacked copy of g4f has no metadata
        return "unknown"


G4F_VERSION = _g4f_version()

_lock = threading.RLock()
# Model names the plugin added to g4f's router list (AnyProvider's models): kept out of what g4f saves.
_routed_models: list[str] = []
_warned: set[str] = set()
_stderr_used = False

def warn_changed(internal: str, detail: str) -> None:
    """Say once per internal that g4f changed it: always in g4f's debug log, once per process on stderr."""
    global _stderr_used
    with _lock:
        if internal in _warned:
            return
        _warned.add(internal)
        message = (
            f"g4f-autonomous: g4f {G4F_VERSION} changed {internal} ({detail}); "
            "Client(provider=AutonomousAI) still works. Please report it."
        )
        _debug_log(message)
        if not _stderr_used:
            _stderr_used = True
            print(message, file=sys.stderr)


def _debug_log(message: str) -> None:
    try:
        import g4f.debug

        g4f.debug.log(message)
    except Exception:  # the debug module is an internal too
        pass


# --- names the provider imports from g4f --------------------------------------------------
# provider.py and wire.py import these from here, so that a g4f without one of
# them (an old release, or a future one that moved it) costs a warning, not the import.

def _g4f_error(name: str, base: type[Exception]) -> type[Exception]:
    found = getattr(_errors, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    warn_changed(f"g4f.errors.{name}", "missing; the plugin raises a stand-in of the same name")
    return type(name, (base,), {"__module__": __name__})


if TYPE_CHECKING:  # to a type checker these are g4f's classes; at run time, possibly stand-ins
    from g4f.errors import (
        CloudflareError,
        ModelNotFoundError,
        ProviderNotWorkingError,
        RateLimitError,
        ResponseError,
        ResponseStatusError,
        TimeoutError,
    )
else:
    ResponseError = _g4f_error("ResponseError", Exception)
    ResponseStatusError = _g4f_error("ResponseStatusError", ResponseError)
    CloudflareError = _g4f_error("CloudflareError", ResponseStatusError)
    RateLimitError = _g4f_error("RateLimitError", ResponseStatusError)
    ModelNotFoundError = _g4f_error("ModelNotFoundError", Exception)
    ProviderNotWorkingError = _g4f_error("ProviderNotWorkingError", Exception)
    TimeoutError = _g4f_error("TimeoutError", Exception)  # g4f's name

try:
    from g4f.providers.response import FinishReason, JsonConversation, Usage
except ImportError as _error:  # these only decorate an answer: the text still flows without them
    warn_changed("g4f.providers.response", f"{_error}; finish reason and usage are not reported")

    class _Hidden(str):
        """An empty string to g4f's client: it adds nothing to the answer."""

        def __new__(cls, *args: Any, **kwargs: Any) -> _Hidden:
            return str.__new__(cls, "")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.thread_id = kwargs.get("thread_id")

    FinishReason = Usage = JsonConversation = _Hidden


# The provider's base classes and the debug log: the same on every supported g4f.
from g4f import debug  # noqa: E402
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin  # noqa: E402


def to_data_uri(data: Any, filename: str | None = None) -> str:
    """g4f's image-to-data-URI; imported on first use, as g4f.image is not needed to register."""
    from g4f.image import to_data_uri as convert

    return convert(data, filename)


# --- the provider registry -------------------------------------------------------------


def registry_layout(module: Any = None) -> str:
    """Which of the known registry layouts this g4f has, or "unknown"."""
    namespace = vars(module if module is not None else sys.modules["g4f.Provider"])
    loader = namespace.get("ProviderLoader")
    if loader is not None and isinstance(getattr(loader, "loaded", None), dict) \
            and isinstance(getattr(loader, "names", None), list) and callable(getattr(loader, "from_name", None)):
        return "ProviderLoader"
    if isinstance(namespace.get("_provider_names"), list) and isinstance(namespace.get("_loaded_providers"), dict):
        return "_provider_names"
    if isinstance(namespace.get("__map_paths__"), dict) and isinstance(namespace.get("_loaded_providers"), dict):
        return "__map_paths__"
    if type(namespace.get("__map__")) is dict and isinstance(namespace.get("__providers__"), list):
        return "__map__"
    return "unknown"


def register_provider(provider: type, module: Any = None) -> str:
    """Put ``provider`` where g4f looks providers up by name; returns the layout found. Idempotent."""
    if module is None:
        module = importlib.import_module("g4f.Provider")
    name = provider.__name__
    with _lock:
        try:
            layout = registry_layout(module)
            namespace = vars(module)
            if layout == "ProviderLoader":
                loader = namespace["ProviderLoader"]
                loader.loaded[name] = provider
                # g4f 8.7.2 on looks names up lower-cased without "-" and "_" too.
                loader.loaded[name.lower().replace("-", "").replace("_", "")] = provider
                _append_once(loader.names, name)
            elif layout == "_provider_names":
                namespace["_loaded_providers"][name] = provider
                _append_once(namespace["_provider_names"], name)
            elif layout == "__map_paths__":
                namespace["_loaded_providers"][name] = provider
                namespace["__map_paths__"][name] = provider  # a non-string entry is used as is
            elif layout == "__map__":
                namespace["__map__"][name] = provider
                if provider not in namespace["__providers__"]:
                    namespace["__providers__"].append(provider)
                setattr(module, name, provider)
            else:
                warn_changed("g4f.Provider's provider registry", "none of ProviderLoader, _provider_names, "
                             "__map_paths__, __map__ found: g4f cannot find 'AutonomousAI' by name")
                setattr(module, name, provider)  # at least g4f.Provider.AutonomousAI
            all_names = namespace.get("__all__")
            if isinstance(all_names, list):
                _append_once(all_names, name)  # dir(g4f.Provider) and star imports
            else:
                warn_changed("g4f.Provider.__all__", f"a {type(all_names).__name__}, not a list")
        except Exception as error:  # a shape we probed wrongly: never break g4f's import
            warn_changed("g4f.Provider's provider registry", f"{type(error).__name__}: {error}")
            layout = "unknown"
    return layout


def _append_once(names: list, name: str) -> None:
    if name not in names:
        names.append(name)


# --- model routing (no provider given) -------------------------------------------------


def add_model_routes(module: Any, provider: type, routes: dict[str, str]) -> bool:
    """Add ``public name -> provider model`` routes to g4f's model router (g4f.providers.any_provider)."""
    name = provider.__name__
    mixin = getattr(module, "AnyModelProviderMixin", None)
    model_map = getattr(mixin, "model_map", None)
    models = getattr(mixin, "models", None)
    vision = getattr(mixin, "vision_models", None)
    if not isinstance(model_map, dict) or not isinstance(models, list) or not isinstance(vision, list):
        warn_changed("g4f.providers.any_provider.AnyModelProviderMixin",
                     "model_map, models or vision_models changed: models without a provider are not routed here")
        return False
    with _lock:
        for public_name, model in routes.items():
            providers = model_map.setdefault(public_name, {})
            if not isinstance(providers, dict):
                warn_changed("g4f.providers.any_provider.AnyModelProviderMixin.model_map", "entries are not dicts")
                return False
            providers[name] = model
            if models and public_name not in models:
                models.append(public_name)
                _append_once(_routed_models, public_name)
            counts = getattr(mixin, "models_count", None)
            if isinstance(counts, dict):
                counts[public_name] = len(providers)
            if model in getattr(provider, "vision_models", ()) and public_name not in vision:
                vision.append(public_name)
    return True


def auto_model_supported() -> bool:
    """Whether g4f's own model lookup maps "auto" to the default model (8.2.7 on)."""
    from g4f.providers.base_provider import ProviderModelMixin

    class Probe(ProviderModelMixin):
        default_model = "the-default"
        models = ["the-default"]
        model_aliases: dict = {}

    try:
        return Probe.get_model("auto") == "the-default"
    except Exception:
        return False


def has_health_routes() -> bool:
    """Whether g4f's providers have ``get_health``, which g4f's api and gui health routes call (8.7.4 on)."""
    try:
        import g4f.providers.base_provider as base
    except Exception:
        return False
    return any(isinstance(value, type) and hasattr(value, "get_health") for value in vars(base).values())


# --- the web GUI's provider list -------------------------------------------------------

# How g4f's GUI describes a provider, key by key (the same rules on every version).
_GUI_VALUES: dict[str, Callable[[type], Any]] = {
    "name": lambda p: p.__name__,
    "label": lambda p: getattr(p, "label", p.__name__),
    "parent": lambda p: getattr(p, "parent", None),
    "image": lambda p: len(getattr(p, "image_models", None) or []),
    "audio": lambda p: len(getattr(p, "audio_models", None) or []),
    "video": lambda p: len(getattr(p, "video_models", None) or []),
    "vision": lambda p: getattr(p, "default_vision_model", None) is not None,
    "nodriver": lambda p: getattr(p, "use_nodriver", False),
    "hf_space": lambda p: getattr(p, "hf_space", False),
    "active_by_default": lambda p: bool(getattr(p, "active_by_default", False)),
    "auth": lambda p: getattr(p, "needs_auth", False),
    "login_url": lambda p: getattr(p, "login_url", None),
    "live": lambda p: getattr(p, "live", 0),
    "login": lambda p: hasattr(p, "login"),
}


def gui_entry(provider: type, keys: list[str] | None = None) -> dict[str, Any]:
    """``provider`` as g4f's GUI lists providers, with the keys g4f's own entries have."""
    entry = {}
    for key in keys if keys is not None else _GUI_VALUES:
        rule = _GUI_VALUES.get(key)
        if rule is None:
            warn_changed("g4f's GUI provider entries", f"new key {key!r}, given the attribute of that name or None")
            entry[key] = getattr(provider, key, None)
        else:
            entry[key] = rule(provider)
    return entry


def _ignored_by_g4f(name: str) -> bool:
    """Whether the user told g4f to leave this provider out (``--ignored-providers``, ``G4F_IGNORED_PROVIDERS``)."""
    registry = sys.modules.get("g4f.Provider")
    ignored = getattr(getattr(registry, "ProviderLoader", None), "ignored", None)
    return isinstance(ignored, (list, tuple, set)) and name in ignored


def _offered(provider: type) -> bool:
    return bool(getattr(provider, "working", False)) and not _ignored_by_g4f(provider.__name__)


def _wrap_once(owner: Any, name: str, kind: type[Any], wrap: Callable[[Callable], Callable], internal: str,
               loss: str) -> bool:
    """Replace method ``name`` of class ``owner`` by ``wrap(original)``, keeping its kind; once.

    ``kind`` is the kind expected: staticmethod, classmethod or FunctionType (a
    plain method). Any other shape is a changed g4f: one warning saying what the
    user loses (``loss``), and False. A method already wrapped is left alone.
    """
    raw: Any = vars(owner).get(name) if isinstance(owner, type) else None
    if type(raw) is not kind:
        warn_changed(internal, f"not a {kind.__name__}: {loss}")
        return False
    original = raw if kind is FunctionType else raw.__func__
    if not getattr(original, "_autonomous_ai", False):
        wrapper = functools.update_wrapper(wrap(original), original)
        wrapper._autonomous_ai = True  # type: ignore[attr-defined]  # our mark: wrap once
        setattr(owner, name, wrapper if kind is FunctionType else kind(wrapper))
    return True


def patch_gui_provider_list(module: Any, provider: type) -> bool:
    """Make g4f's GUI list ``provider``: its Api.get_providers may serve a list g4f saved without it."""
    api: Any = getattr(module, "Api", None)

    def wrap(original: Callable) -> Callable:
        def get_providers(*args: Any, **kwargs: Any) -> Any:
            providers = original(*args, **kwargs)
            if not _offered(provider) or not isinstance(providers, list):
                return providers
            entries = [p for p in providers if isinstance(p, dict)]
            if any(p.get("name") == provider.__name__ for p in entries):
                return providers
            keys = list(entries[0]) if entries else None
            return [*providers, gui_entry(provider, keys)]

        return get_providers

    if not _wrap_once(api, "get_providers", staticmethod, wrap, "g4f.gui.server.api.Api.get_providers",
                      "the GUI may not list AutonomousAI"):
        return False
    # The GUI's models per provider (Api.get_all_models, where it has the route) may come
    # from a file saved without the provider too.
    if "get_all_models" in vars(api):
        _wrap_once(api, "get_all_models", FunctionType, lambda original: _adding_models(original, provider),
                   "g4f.gui.server.api.Api.get_all_models", "the GUI may miss AutonomousAI's models")
    return True


def _adding_models(original: Callable, provider: type) -> Callable:
    def get_all_models(*args: Any, **kwargs: Any) -> Any:
        models = original(*args, **kwargs)
        if not isinstance(models, dict):
            return models
        models = _with_routed_models(models)
        if not _offered(provider) or provider.__name__ in models:
            return models
        return {**models, provider.__name__: list(getattr(provider, "models", None) or [])}

    return get_all_models


# --- what g4f saves: its own lists, never AutonomousAI -----------------------------------
# g4f's GUI saves the provider list it computed (and the models per provider) to
# files that outlive the process, some without expiry (a cache folder per g4f
# version; from 8.7.4 also providers.json inside g4f's package). What it computes
# includes every registered provider, so the plugin's entry is taken out of what
# is written, and put back by the readers above: the files stay exactly what g4f
# alone would write, and an uninstall leaves nothing naming AutonomousAI behind.


def without_provider(value: Any, name: str) -> Any:
    """``value`` as g4f saves it, less ``name``: a provider list without its entry, a map without its key."""
    if isinstance(value, list):
        return [item for item in value if not (isinstance(item, dict) and item.get("name") == name)]
    if isinstance(value, dict) and name in value:
        return {key: item for key, item in value.items() if key != name}
    return value


def _router_names() -> set[str]:
    """Names of g4f's model-router providers (AnyProvider, ...), whose model list carries the plugin's routes."""
    module = sys.modules.get("g4f.providers.any_provider")
    mixin = getattr(module, "AnyModelProviderMixin", None)
    if not isinstance(mixin, type):
        return set()
    return {name for name, value in vars(module).items() if isinstance(value, type) and issubclass(value, mixin)}


def _as_g4f_saves(value: Any, name: str) -> Any:
    """What g4f alone would save: no entry for the provider, no routed names in the router's model list."""
    value = without_provider(value, name)
    if isinstance(value, dict) and _routed_models:
        routers = _router_names()
        value = {key: [model for model in item if model not in _routed_models]
                 if key in routers and isinstance(item, list) else item for key, item in value.items()}
    return value


def _with_routed_models(models: dict) -> dict:
    """The router's model list as g4f holds it in memory, routed names included (they are not in its files)."""
    routers = _router_names()
    if not _routed_models or not any(isinstance(models.get(key), list) for key in routers):
        return models
    return {key: [*item, *(model for model in _routed_models if model not in item)]
            if key in routers and isinstance(item, list) else item for key, item in models.items()}


def keep_out_of_saved_lists(module: Any, provider: type) -> bool:
    """Take ``provider`` out of everything g4f's GUI module (g4f.gui.server.api) writes to disk.

    Returns whether the module saves lists at all (False: nothing to keep it out of).
    """
    name = provider.__name__
    patched = False
    storage = getattr(module, "storage", None)  # g4f's FileStorage: "<version>/providers", "<version>/all_models"
    if storage is not None:
        original_set = getattr(storage, "set", None)
        if not callable(original_set):
            warn_changed("g4f.gui.server.api.storage", "no set method: its saved lists may name AutonomousAI")
        elif not getattr(original_set, "_autonomous_ai", False):
            def set_without(key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
                return original_set(key, _as_g4f_saves(value, name), *args, **kwargs)

            set_without._autonomous_ai = True  # type: ignore[attr-defined]
            storage.set = set_without  # this one object, g4f's only storage of these lists
        patched = True
    api: Any = getattr(module, "Api", None)
    if isinstance(api, type) and "_write_providers_cache" in vars(api):  # 8.7.4 on: also g4f's providers.json
        def wrap(write: Callable) -> Callable:
            return lambda result, *args, **kwargs: write(without_provider(result, name), *args, **kwargs)

        _wrap_once(api, "_write_providers_cache", staticmethod, wrap, "g4f.gui.server.api.Api._write_providers_cache",
                   "g4f's providers.json may name AutonomousAI")
        patched = True
    return patched


# --- model discovery (8.8 on) ----------------------------------------------------------


def hide_from_model_discovery(module: Any, provider: type) -> bool:
    """Keep ``provider`` out of g4f's search for a model's providers (g4f.providers.provider_router).

    From 8.8 g4f also routes a model name to any registered provider that lists
    it (``ProviderRouter.all_providers``), map or no map. The plugin routes only
    what it puts into g4f's model map, so it stays out of that search; by name
    it stays reachable, as ``from_name`` is not involved.
    """
    def wrap(original: Callable) -> Callable:
        def all_providers(*args: Any, **kwargs: Any) -> Any:
            found = original(*args, **kwargs)
            return [p for p in found if p is not provider] if isinstance(found, list) else found

        return all_providers

    return _wrap_once(getattr(module, "ProviderRouter", None), "all_providers", classmethod, wrap,
                      "g4f.providers.provider_router.ProviderRouter.all_providers",
                      "g4f may still route models to AutonomousAI")
