"""Function indexing: load function_app.py afresh and ask the app what it registered."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import BindingDirection

APP_MODULE = "function_app"


def load_app(app_dir: Path) -> func.FunctionRegister:
    """Execute app_dir/function_app.py afresh and return its one FunctionApp.

    A fresh module each time, because get_functions() may be called only once per app object
    (it raises on a second call) and a LocalHost may be started twice in one process."""
    path = app_dir / f"{APP_MODULE}.py"
    spec = importlib.util.spec_from_file_location(APP_MODULE, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[APP_MODULE] = module
    spec.loader.exec_module(module)
    return find_app(module)


def find_app(module: ModuleType) -> func.FunctionRegister:
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if len(apps) != 1:
        raise ValueError(f"{module.__file__} needs exactly one FunctionApp, not {len(apps)}")
    return apps[0]


def binding_attr(binding: Any, *names: str) -> Any:
    """A binding attribute by its snake_case name, or the camelCase one generic bindings use."""
    for name in names:
        value = getattr(binding, name, None)
        if value is not None:
            return value
    return None


@dataclass
class FunctionInfo:
    """One registered function, as the host sees it."""

    name: str
    trigger: Any
    user_function: Callable[..., Any]
    inputs: list[Any]  # input bindings besides the trigger
    outputs: list[Any]
    parameters: list[str]
    directory: str

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    def output(self, binding_type: str) -> list[Any]:
        return [b for b in self.outputs if b.type == binding_type]


def index_functions(app: func.FunctionRegister, directory: str) -> list[FunctionInfo]:
    """Ask the app what it registered. This is the one get_functions() call for this app."""
    infos = []
    for fn in app.get_functions():
        user_function, trigger = fn.get_user_function(), fn.get_trigger()
        bindings = [b for b in fn.get_bindings() if b is not trigger]
        outputs = [b for b in bindings if b.direction == BindingDirection.OUT.value]
        infos.append(
            FunctionInfo(
                name=fn.get_function_name(),
                trigger=trigger,
                user_function=user_function,
                inputs=[b for b in bindings if b not in outputs],
                outputs=outputs,
                parameters=list(inspect.signature(user_function).parameters),
                directory=directory,
            )
        )
        _check_context(infos[-1])
    return infos


def _check_context(info: FunctionInfo) -> None:
    """The worker's own check: a `context` parameter, if annotated, is annotated with a class
    named Context (not `Context | None`), or the function does not load."""
    if "context" not in info.parameters:
        return
    hint = typing.get_type_hints(info.user_function).get("context")
    if hint is not None and (not isinstance(hint, type) or hint.__name__ != "Context"):
        raise TypeError(
            f'{info.name}: the "context" parameter is expected to be of type '
            f"azure.functions.Context, got {hint!r}"
        )


def is_disabled(name: str) -> bool:
    """The app setting AzureWebJobs.<name>.Disabled switches a function off, as in Azure."""
    return os.environ.get(f"AzureWebJobs.{name}.Disabled", "").lower() in ("true", "1")
