"""One way to open a session for `charter run`, `generate`, `eval` and `serve`.

A session is what every command needs before its first record: the constitution (the example one
unless a path is given), the engines by role (one engine object per distinct spec, so a policy that
is also the judge loads once), and the run folder's store, opened with the run's identity (the
constitution's hash and every engine's fingerprint) so a folder never mixes two runs. `--new-run`
means the same everywhere: if the folder holds a different run, the first of OUT-2, OUT-3, ...
that accepts this one (or does not exist yet) is used, so rerunning the same command resumes it.

The session closes what it opened, engines last, on any exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from charter.shipped import example_constitution_path

if TYPE_CHECKING:  # the session's contents; imported lazily at run time (torch-free `--help`)
    from charter.constitution.model import Constitution
    from charter.engines.base import Engine
    from charter.store import RunStore


@dataclass
class Session:
    constitution: Constitution
    engines: dict[str, Engine]  # role -> engine; roles whose spec was None are absent
    store: RunStore | None  # None when no run folder was asked for
    extra: list[Engine] = field(default_factory=list)  # engines outside the identity (eval opponents)

    @property
    def folder(self) -> Path | None:
        return self.store.folder if self.store is not None else None


def load_constitution_or_example(path: Path | str | None):
    from charter.constitution import load_constitution

    return load_constitution(path or example_constitution_path())


def warn_if_prompt_too_long(constitution, engine) -> None:
    """Say so (with the numbers) when even the compact system prompt leaves an engine little room:
    stages that put the constitution in context would otherwise fail or truncate quietly."""
    import sys

    from charter.constitution.render import fit_for_engine

    fitted = fit_for_engine(constitution, engine, "compact")
    if fitted is not None and fitted.warning:
        print(f"warning: engine '{engine.name}': {fitted.warning}", file=sys.stderr, flush=True)


@contextmanager
def open_session(constitution: Path | str | None, engines: dict[str, str | None], out: Path | None = None, *,
                 new_run: bool = False, stage: str | None = None, params: dict | None = None,
                 fixed: tuple[str, ...] = (), extra_engines: list[str] = (),
                 executor=None) -> Iterator[Session]:
    """Load, make and open everything a command needs; close it all on exit.

    `engines` maps a role ("policy", "feedback", "judge", ...) to an engine spec; each role's
    fingerprint joins the run's identity. `extra_engines` are made too (each its own object, even
    when it repeats a spec) but stay out of the identity: eval's `--against` opponents.
    `stage`, `params`, `fixed`: see `RunStore.open`. `executor` (charter.executor.ExecutorSettings):
    with kind "ray" each engine is a pool of Ray actors; its fingerprint is its engines' own, so a
    run folder may be resumed under either executor."""
    from charter.executor import LOCAL, make_engine_for
    from charter.store import open_run

    executor = executor or LOCAL

    loaded = load_constitution_or_example(constitution)
    made: dict[str, object] = {}
    others: list = []
    try:
        by_role = {}
        for role, spec in engines.items():
            if spec is None:
                continue
            if spec not in made:
                made[spec] = make_engine_for(spec, executor)
            by_role[role] = made[spec]
        others.extend(make_engine_for(spec, executor) for spec in extra_engines)
        for engine in dict.fromkeys(by_role.values()):
            warn_if_prompt_too_long(loaded, engine)
        store = None
        if out is not None:
            store = open_run(out, new_run=new_run, constitution_hash=loaded.content_hash(),
                             engines={role: engine.fingerprint for role, engine in by_role.items()},
                             stage=stage, params=params, fixed=fixed)
        try:
            yield Session(loaded, by_role, store, others)
        finally:
            if store is not None:
                store.close()
    finally:
        for engine in [*made.values(), *others]:
            engine.close()
