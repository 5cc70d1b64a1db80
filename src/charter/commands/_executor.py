"""The executor options every data and eval command shares, added by one decorator.

`@executor_options` adds --executor, --ray-address, --workers, --cpus-per-worker and
--gpus-per-worker to a command's signature (typer reads `__signature__`) and hands the command one
`executor: ExecutorSettings` argument in their place.
"""

from __future__ import annotations

import functools
import inspect
import typing

import typer

_OPTIONS = {
    "executor_kind": typer.Option("local", "--executor", envvar="CHARTER_EXECUTOR",
                                  help="Where engine calls run: local (this process) | ray (actors, "
                                       "each holding one engine; needs `pip install 'charter\\[ray]'`)"),
    "ray_address": typer.Option(None, "--ray-address",
                                help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray instance)"),
    "workers": typer.Option(2, "--workers", min=1, help="ray: actors per engine (work batches in flight)"),
    "cpus_per_worker": typer.Option(1.0, "--cpus-per-worker", help="ray: CPUs each actor reserves "
                                    "(llama.cpp uses as many threads)"),
    "gpus_per_worker": typer.Option(0.0, "--gpus-per-worker", help="ray: GPUs each actor reserves "
                                    "(1 for a vLLM or transformers engine on a GPU node)"),
}
_TYPES = {"executor_kind": str, "ray_address": str | None, "workers": int, "cpus_per_worker": float,
          "gpus_per_worker": float}


def executor_options(command):
    """Decorate a command that takes `executor: ExecutorSettings` (see the module docstring)."""
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command)  # resolved where the command was written
    kept = [p.replace(annotation=hints.get(name, p.annotation))
            for name, p in signature.parameters.items() if name != "executor"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                               annotation=_TYPES[name]) for name, default in _OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from charter.executor import ExecutorSettings

        settings = ExecutorSettings(kind=kwargs.pop("executor_kind"), address=kwargs.pop("ray_address"),
                                    workers=kwargs.pop("workers"), cpus_per_worker=kwargs.pop("cpus_per_worker"),
                                    gpus_per_worker=kwargs.pop("gpus_per_worker"))
        return command(*args, executor=settings, **kwargs)

    wrapper.__signature__ = signature.replace(
        parameters=[*(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept), *added])
    wrapper.__annotations__ = {**{p.name: p.annotation for p in kept}, **_TYPES,
                               "return": hints.get("return", None)}
    del wrapper.__wrapped__  # typer must read the new signature, not follow the original's
    return wrapper
