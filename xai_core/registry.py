"""Finds, loads and records plugins: the only place that talks to pluggy.

Plugins load lazily, once, on first need (never as a side effect of
`import xai_core`). We iterate entry points ourselves instead of calling
`PluginManager.load_setuptools_entrypoints`, which stops at the first plugin
that fails to import: here a broken plugin is recorded and shown by
`xai plugins` while the others keep working.
"""

from __future__ import annotations

import os
import threading
import traceback
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, UnknownMethodError

BACKEND_GROUP = "xai_core.backends"
EXPLAINER_GROUP = "xai_core.explainers"
GROUPS = (BACKEND_GROUP, EXPLAINER_GROUP)
#: Comma-separated plugin names that must not load (like tox's PYTEST_DISABLE_PLUGIN_AUTOLOAD).
DISABLE_ENV = "XAI_CORE_DISABLE_PLUGINS"

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)


@dataclass
class PluginRecord:
    """What `plugins()` reports about one plugin."""

    name: str
    group: str
    value: str
    distribution: str | None
    version: str | None
    status: str  # "loaded", "failed", "disabled", "registered"
    error: str | None = None
    hooks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Registry:
    """Owns the `PluginManager` and the explainer table built from it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._records: dict[tuple[str, str], PluginRecord] = {}
        self._explainers: dict[str, tuple[type, str]] | None = None
        self._clashes: dict[str, list[str]] = {}

    # -- loading -----------------------------------------------------------
    @property
    def pm(self) -> pluggy.PluginManager:
        pm = self._pm  # loaded once: later calls skip the lock (double-checked below)
        if pm is not None:
            return pm
        with self._lock:
            if self._pm is None:
                pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
                pm.add_hookspecs(hookspecs)
                self._pm = pm
                self._load_entry_points()
            return self._pm

    def _load_entry_points(self) -> None:
        disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
        for group in GROUPS:
            for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
                dist = getattr(ep, "dist", None)
                record = PluginRecord(
                    name=ep.name,
                    group=group,
                    value=ep.value,
                    distribution=dist.metadata["Name"] if dist is not None else None,
                    version=dist.version if dist is not None else None,
                    status="loaded",
                )
                self._records[(group, ep.name)] = record
                if ep.name in disabled:
                    record.status = "disabled"
                    record.error = f"blocked by {DISABLE_ENV}"
                    continue
                try:
                    plugin = ep.load()
                    self._register(plugin, f"{group}:{ep.name}", record)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - sys.exit() at import included:
                    # a broken plugin must not break the rest (or end the process)
                    record.status = "failed"
                    record.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    def _register(self, plugin: object, key: str, record: PluginRecord) -> None:
        assert self._pm is not None
        if self._pm.is_registered(plugin):
            # one module offered under both groups: record it, register once
            record.hooks = [h.name for h in self._pm.get_hookcallers(plugin) or []]
            return
        self._pm.register(plugin, name=key)
        try:
            self._pm.check_pending()  # catches misspelled hook names
        except Exception:
            self._pm.unregister(plugin)
            raise
        record.hooks = sorted(h.name for h in self._pm.get_hookcallers(plugin) or [])
        self._explainers = None

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object at run time (notebooks, tests); returns its key."""
        if plugin is None or isinstance(plugin, (bool, int, float, str, bytes)):
            raise PluginError(
                f"register() takes a module or an object with hook functions "
                f"(xai_adapt, xai_explainers), not {plugin!r}."
            )
        with self._lock:
            pm = self.pm
            key = f"runtime:{name or getattr(plugin, '__name__', None) or id(plugin)}"
            record = PluginRecord(
                name=key.split(":", 1)[1],
                group="runtime",
                value=repr(plugin),
                distribution=None,
                version=None,
                status="registered",
            )
            try:
                self._register(plugin, key, record)
            except Exception as exc:
                if pm.is_registered(plugin):
                    pm.unregister(plugin)
                raise PluginError(f"cannot register plugin {record.name!r}: {exc}") from exc
            self._records[("runtime", record.name)] = record
            self._explainers = None
            clashing = [n for n, plugins in self.clashes().items() if record.name in plugins]
            if clashing:  # refused now, not on first use
                error = self._clash_error(clashing[0])
                self.unregister(plugin)
                raise error
            return key

    def unregister(self, plugin: object) -> None:
        with self._lock:
            pm = self.pm
            name = pm.get_name(plugin)
            if name is None:
                return
            pm.unregister(plugin)
            if name.startswith("runtime:"):
                self._records.pop(("runtime", name.split(":", 1)[1]), None)
            self._explainers = None

    # -- queries -----------------------------------------------------------
    def records(self) -> list[PluginRecord]:
        self.pm  # noqa: B018 - loads the plugins on first use
        return list(self._records.values())

    def backend_names(self) -> list[str]:
        names = []
        for plugin_name, plugin in self.pm.list_name_plugin():
            if any(h.name == "xai_adapt" for h in self.pm.get_hookcallers(plugin) or []):
                names.append(plugin_name.split(":", 1)[1])
        return sorted(names)

    def backend_failures(self) -> list[PluginRecord]:
        return [r for r in self.records() if r.group == BACKEND_GROUP and r.status == "failed"]

    def adapt(self, model: Any) -> Any:
        """The first adapter a backend offers; a backend that raises, or answers with
        something that is not a `ModelAdapter`, is recorded (`xai plugins`) and skipped."""
        from .adapter import ModelAdapter
        from .errors import XaiError

        # pluggy's call order: last registered first, tryfirst before the others
        for impl in reversed(self.pm.hook.xai_adapt.get_hookimpls()):
            try:
                adapter = impl.function(model=model)
            except XaiError:
                raise  # a backend's own clear refusal (e.g. Keras on another backend)
            except Exception as exc:  # noqa: BLE001 - one bad backend must not break the rest
                self._mark_failed(impl.plugin_name, exc, "xai_adapt raised")
                continue
            if adapter is None:
                continue
            if not isinstance(adapter, ModelAdapter):
                self._mark_failed(
                    impl.plugin_name,
                    PluginError(f"returned a {type(adapter).__name__}, not a ModelAdapter"),
                    "xai_adapt",
                )
                continue
            return adapter
        return None

    def explainer_table(self) -> dict[str, tuple[type, str]]:
        """name -> (Explainer class, plugin name), for the names exactly one plugin offers.

        Two plugins offering one name disable that name only (using it raises a
        `PluginError` naming both, see `clashes`); something that is not an `Explainer`
        subclass is recorded as its plugin's failure and left out.
        """
        table = self._explainers
        if table is not None:
            return table
        with self._lock:
            if self._explainers is not None:
                return self._explainers
            from .explainer import Explainer

            table: dict[str, tuple[type, str]] = {}
            clashes: dict[str, list[str]] = {}
            for impl in self.pm.hook.xai_explainers.get_hookimpls():
                plugin_name = impl.plugin_name.split(":", 1)[-1]
                try:
                    classes = list(impl.function() or [])
                except Exception as exc:  # noqa: BLE001
                    self._mark_failed(impl.plugin_name, exc, "xai_explainers raised")
                    continue
                for cls in classes:
                    name = getattr(cls, "name", None)
                    if not (isinstance(cls, type) and issubclass(cls, Explainer)):
                        self._mark_failed(
                            impl.plugin_name,
                            PluginError(f"{cls!r} is not an xai_core.Explainer subclass"),
                            "xai_explainers",
                        )
                        continue
                    if not isinstance(name, str) or not name:
                        self._mark_failed(
                            impl.plugin_name,
                            PluginError(f"{cls!r} has no string `name`"),
                            "xai_explainers",
                        )
                        continue
                    if name in clashes:
                        clashes[name].append(plugin_name)
                    elif name in table and table[name][0] is not cls:
                        clashes[name] = [table.pop(name)[1], plugin_name]
                    else:
                        table[name] = (cls, plugin_name)
            self._clashes = clashes
            self._explainers = dict(sorted(table.items()))
            return self._explainers

    def clashes(self) -> dict[str, list[str]]:
        """Explainer names offered by more than one plugin (disabled), with those plugins."""
        self.explainer_table()
        return dict(self._clashes)

    def _clash_error(self, name: str) -> PluginError:
        plugins = self._clashes[name]
        return PluginError(
            f"two explainers are named {name!r}: from plugins "
            f"{' and '.join(map(repr, plugins))}, so neither is used. Uninstall one, or "
            f"block one with {DISABLE_ENV}=<its name>."
        )

    def _mark_failed(self, key: str, exc: BaseException, where: str = "") -> None:
        group, _, name = key.partition(":")
        record = self._records.get((group, name))
        if record is not None:
            record.status = "failed"
            record.error = f"{where + ': ' if where else ''}{type(exc).__name__}: {exc}"

    def explainer_class(self, method: str) -> type:
        table = self.explainer_table()
        if method in self._clashes:
            raise self._clash_error(method)
        if method not in table:
            installed = ", ".join(table) or "none"
            raise UnknownMethodError(
                f"unknown method {method!r}. Installed explainers: {installed}. "
                "Run `xai plugins` to see every plugin and any that failed to load."
            )
        return table[method][0]


REGISTRY = Registry()
