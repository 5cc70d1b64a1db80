"""One user-facing error base class: the CLI turns any CharterError into one line and an exit code."""

from __future__ import annotations


class CharterError(Exception):
    """An error the user can fix. Its message says what was wrong, where, and what to do."""

    exit_code = 2


class ConstitutionError(CharterError):
    """A constitution or overlay file is invalid. Carries every problem found, each with a location."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s); run `charter lint` to see all)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}")

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def field(self) -> str:
        return self.problems[0].field


class LayerError(CharterError):
    """An overlay tried to do something its layer may not (touch a hard line, switch a locked default)."""

    def __init__(self, clause_id: str, layer: str, reason: str):
        self.clause_id = clause_id
        self.layer = layer
        self.reason = reason
        super().__init__(f"{layer} overlay refused at clause '{clause_id}': {reason}")


class EngineError(CharterError):
    """An engine could not be created or could not do what was asked."""


class GenerationCancelled(EngineError):
    """A generation given a `cancel` event stopped because the event was set (its client left)."""


class UnitsFailed(EngineError):
    """Some requests of one engine call failed past their retries (a lost worker, an endpoint down).

    `failed` holds the indices of the requests that failed; `results` the completions of the
    others where the engine has them (None in place of each failed one), else None: the caller
    keeps what succeeded and records the rest as failed units, retried by the next run."""

    def __init__(self, message: str, failed: list[int], results: list | None = None, attempts: int = 1):
        super().__init__(message)
        self.failed = list(failed)
        self.results = results
        self.attempts = attempts
        self.keys: list[str] = []  # the failed units' keys, where the caller knows them (run_steps)


class StageIncomplete(CharterError):
    """A stage did all the work it could, but some units failed past their retries; they are
    recorded in the run folder and the same command retries them."""


class StoreError(CharterError):
    """A run folder is unusable for the requested run."""


class Problem:
    """One located problem in a file: `file:line: field: message`."""

    __slots__ = ("file", "line", "field", "message", "severity")

    def __init__(self, file: str, line: int, field: str, message: str, severity: str = "error"):
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        self.severity = severity

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r}, severity={self.severity!r})"
