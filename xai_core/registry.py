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
from .adapter import ModelAdapter
from .errors import PluginError, UnknownMethodError, UnknownMetricError, XaiError

BACKEND_GROUP = "xai_core.backends"
EXPLAINER_GROUP = "xai_core.explainers"
METRIC_GROUP = "xai_core.metrics"
ENGINE_GROUP = "xai_core.engines"
GROUPS = (BACKEND_GROUP, EXPLAINER_GROUP, METRIC_GROUP, ENGINE_GROUP)
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
        #: per kind ("explainer", "metric"): name -> (class, plugin name), rebuilt on change
        self._tables: dict[str, dict[str, tuple[type, str]]] = {}
        self._adapt_cache: list[Any] | None = None
        self._clashes: dict[str, dict[str, list[str]]] = {}

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
        self._tables, self._adapt_cache = {}, None

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
            self._tables, self._adapt_cache = {}, None
            clashing = [
                (n, kind)
                for kind in _KINDS
                for n, plugins in self.clashes(kind).items()
                if record.name in plugins
            ]
            if clashing:  # refused now, not on first use
                error = self._clash_error(*clashing[0])
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
            self._tables, self._adapt_cache = {}, None

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

    def _adapt_order(self) -> list[Any]:
        """The backends' `xai_adapt` implementations in call order, kept until a plugin is
        registered or unregistered (pluggy copies its list on every `get_hookimpls`)."""
        order = self._adapt_cache
        if order is None:
            order = self._adapt_cache = list(reversed(self.pm.hook.xai_adapt.get_hookimpls()))
        return order

    def adapt(self, model: Any) -> Any:
        """The first adapter a backend offers; a backend that raises, or answers with
        something that is not a `ModelAdapter`, is recorded (`xai plugins`) and skipped."""
        # pluggy's call order: last registered first, tryfirst before the others
        for impl in self._adapt_order():
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
        return self._table("explainer")

    def metric_table(self) -> dict[str, tuple[type, str]]:
        """name -> (Metric class, plugin name): `explainer_table` for the metrics."""
        return self._table("metric")

    def _table(self, kind: str) -> dict[str, tuple[type, str]]:
        table = self._tables.get(kind)
        if table is not None:
            return table
        with self._lock:
            if kind in self._tables:
                return self._tables[kind]
            hook, base = _KINDS[kind]
            table: dict[str, tuple[type, str]] = {}
            clashes: dict[str, list[str]] = {}
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                plugin_name = impl.plugin_name.split(":", 1)[-1]
                try:
                    classes = list(impl.function() or [])
                except Exception as exc:  # noqa: BLE001
                    self._mark_failed(impl.plugin_name, exc, f"{hook} raised")
                    continue
                for cls in classes:
                    name = getattr(cls, "name", None)
                    if not (isinstance(cls, type) and issubclass(cls, base())):
                        self._mark_failed(
                            impl.plugin_name,
                            PluginError(f"{cls!r} is not an xai_core.{base().__name__} subclass"),
                            hook,
                        )
                        continue
                    if not isinstance(name, str) or not name:
                        self._mark_failed(
                            impl.plugin_name, PluginError(f"{cls!r} has no string `name`"), hook
                        )
                        continue
                    if name in clashes:
                        clashes[name].append(plugin_name)
                    elif name in table and table[name][0] is not cls:
                        clashes[name] = [table.pop(name)[1], plugin_name]
                    else:
                        table[name] = (cls, plugin_name)
            self._clashes[kind] = clashes
            self._tables[kind] = dict(sorted(table.items()))
            return self._tables[kind]

    def clashes(self, kind: str = "explainer") -> dict[str, list[str]]:
        """Names of `kind` offered by more than one plugin (disabled), with those plugins."""
        self._table(kind)
        return dict(self._clashes[kind])

    def _clash_error(self, name: str, kind: str = "explainer") -> PluginError:
        plugins = self._clashes[kind][name]
        return PluginError(
            f"two {kind}s are named {name!r}: from plugins "
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
        return self._class("explainer", method, UnknownMethodError)

    def metric_class(self, metric: str) -> type:
        return self._class("metric", metric, UnknownMetricError)

    def engine_table(self) -> dict[str, tuple[type, str]]:
        return self._table("engine")

    def engine_class(self, engine: str) -> type:
        return self._class("engine", engine, UnknownMethodError)

    def _class(self, kind: str, name: str, error: type[Exception]) -> type:
        table = self._table(kind)
        if name in self._clashes[kind]:
            raise self._clash_error(name, kind)
        if name not in table:
            installed = ", ".join(table) or "none"
            raise error(
                f"unknown {'method' if kind == 'explainer' else kind} {name!r}. Installed "
                f"{kind}s: {installed}. Run `xai plugins` to see every plugin and any that "
                "failed to load."
            )
        return table[name][0]


def _explainer_base() -> type:
    from .explainer import Explainer

    return Explainer


def _metric_base() -> type:
    from .metric import Metric

    return Metric


def _engine_base() -> type:
    from .engine import Engine

    return Engine


#: plugin kinds with a name table: kind -> (hook name, base class getter)
_KINDS = {
    "explainer": ("xai_explainers", _explainer_base),
    "metric": ("xai_metrics", _metric_base),
    "engine": ("xai_engines", _engine_base),
}


REGISTRY = Registry()
