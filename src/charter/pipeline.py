"""`charter run`: prompts -> data -> sft -> dpo -> export -> eval (base and trained) -> report.

Each stage records itself as done in the run folder's manifest when it finishes; a rerun skips
finished stages, and stages resume inside themselves (the data stages by unit-of-work keys, the
trainers from checkpoints), so killing `charter run` anywhere and running it again continues.

Two recipes make the data (see `recipes.py` for why the embedded model gets the first):
  contrastive  judge-free: context distillation and pairs labelled by construction
  critique     SL-CAI critique/revision and RLAIF labels from a feedback model
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from charter.errors import CharterError
from charter.executor import LOCAL, ExecutorSettings
from charter.run_layout import RunLayout

if TYPE_CHECKING:  # type names only: importing them here would load the libraries on `charter --help`
    from rich.progress import Progress

    from charter.constitution import Constitution
    from charter.store import RunStore

STAGES = ("prompts", "data", "datasets", "sft", "dpo", "export", "eval", "report")
# Settings a run folder keeps: resuming with another policy, feedback engine, recipe or seed would
# mix two runs' records, so the store refuses (and --new-run moves beside it). The engines are
# named by spec here; each stage's records carry the engine's fingerprint.
RUN_IDENTITY = ("policy", "base", "feedback", "recipe", "seed")
TRAINING_STAGES = ("sft", "dpo", "export", "eval")
Say = Callable[[str], None]


@dataclass(frozen=True)
class PipelineConfig:
    constitution: Path
    out: Path = Path("runs/example")
    policy: str = "llamacpp:embedded"  # engine that writes the data (and the model that is trained)
    base: str | None = None  # the model trained (a GGUF, a folder, a Hub name); None: the policy's own
    feedback: str | None = None  # engine for AI feedback (critique recipe); None: the policy
    judge: str | None = None  # LLM judge for evals; None: rule-based classifiers only
    judge_mode: str = "auto"  # how judges are asked: auto | prefill | letter | generate (data/judging.py)
    recipe: str = "auto"  # auto | contrastive | critique
    limit: int | None = 48  # harmful prompts
    safe_ratio: float = 2.0  # safe prompts per harmful prompt: answering them is what keeps refusals targeted
    dpo_safe_ratio: float = 1.5  # safe-prompt pairs per harmful-prompt pair in DPO (contrastive recipe)
    samples: int = 1  # contrastive pairs per prompt
    minimal_pairs: int = 0  # training-pool minimal pairs added, both sides (judge-free recipe)
    needless_refusals: str = "fixed"  # a safe prompt's constructed rejected refusal (recipes.NEEDLESS_REFUSAL_STYLES)
    max_tokens: int = 128  # tokens per generated answer
    rounds: int = 2  # critique/revision rounds (critique recipe)
    max_steps: int = 30  # optimizer steps per trainer
    # LoRA learning rates, measured on the embedded model (docs/training.md, "The embedded recipe"):
    # at TRL-typical rates (2e-4 SFT, 5e-5 DPO) 30 steps left harmful-prompt refusal at 0/40.
    sft_learning_rate: float = 1e-3
    dpo_learning_rate: float = 2e-4
    dpo_min_margin: float = 0.1  # DPO drops judged pairs whose preference is within this of 0.5
    dpo_sft_weight: float = 0.0  # DPO: weight of the chosen answers' NLL beside the preference loss (RPO)
    eval_limit: int | None = None  # prompts per eval suite; None: the whole shipped suite
    eval_max_tokens: int = 96
    suites: tuple[str, ...] = ("harmful", "overrefusal", "character", "conversations")
    conversation_limit: int | None = 10  # scenarios of the conversations suite (spread over kinds); None: all
    seed: int = 0
    stages: tuple[str, ...] = STAGES
    offline: bool = False  # no Hub downloads (also when the user sets HF_HUB_OFFLINE)
    executor: ExecutorSettings = LOCAL  # where data and eval engine calls run (charter/executor.py)

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise CharterError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
        for name in ("limit", "eval_limit", "max_steps", "samples", "max_tokens", "eval_max_tokens",
                     "conversation_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise CharterError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        for name in ("safe_ratio", "dpo_safe_ratio", "dpo_sft_weight"):
            if getattr(self, name) < 0:
                raise CharterError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        from charter.recipes import check_needless_refusal_style

        check_needless_refusal_style(self.needless_refusals)
        if self.recipe not in ("auto", "contrastive", "critique"):
            raise CharterError(f"unknown recipe '{self.recipe}'; choose auto, contrastive or critique")
        from charter.data.judging import JUDGE_MODES

        if self.judge_mode not in JUDGE_MODES:
            raise CharterError(f"unknown --judge-mode '{self.judge_mode}'; choose {', '.join(JUDGE_MODES)}")

    @property
    def trained_base(self) -> str:
        """The model SFT and DPO train: --base, else the policy engine's own model."""
        from charter.train.base_model import base_of_policy

        return self.base or base_of_policy(self.policy)

    @property
    def base_eval_engine(self) -> str:
        """The engine the "before" eval runs: the policy itself when it is the trained model."""
        from charter.train.base_model import engine_spec_for

        return self.policy if self.base is None else engine_spec_for(self.base)

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class RunContext:
    """What every stage receives: the settings, the loaded constitution, the open store, the
    folder's layout, and where to report progress."""

    config: PipelineConfig
    constitution: Constitution
    store: RunStore
    say: Say
    progress: Progress | None
    summaries: dict = field(default_factory=dict)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.config.out)


def quiet_libraries(offline: bool = False) -> None:
    """Keep the terminal to charter's own progress bars: libraries' bars and advisories go quiet.
    With `offline`, no library reaches the Hub (a user's own HF_HUB_OFFLINE is kept either way).

    Environment variables, not logging calls, so it works before the libraries are imported."""
    import os
    import warnings

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    for name, value in (("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_VERBOSITY", "error"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                        ("TOKENIZERS_PARALLELISM", "false"),
                        # transformers' GGUF dequantization draws a bare tqdm bar; charter draws its own
                        ("TQDM_DISABLE", "1")):
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft|torch)\b")


def run_pipeline(config: PipelineConfig, say: Say = print, progress=None, new_run: bool = False) -> Path:
    """Run (or resume) the pipeline; return the report's path.

    With `new_run`, a folder that holds another run is left alone and OUT-2, OUT-3, ... is used
    (charter.session); the run's stages make their own engines, so none is opened here."""
    quiet_libraries(config.offline)
    from charter.pipeline_stages import STAGE_FUNCTIONS
    from charter.recipes import choose_recipe
    from charter.session import open_session

    recipe = choose_recipe(config.recipe, config.policy, config.feedback)
    # Which model is trained is settled before any data is made: a policy that cannot be trained in
    # place (a server) needs --base, and finding that out after the data stage would waste it.
    base = config.trained_base if set(config.stages) & set(TRAINING_STAGES) else config.base
    params = {**config.to_json(), "base": base, "recipe": recipe}
    with open_session(config.constitution, {}, config.out, new_run=new_run, stage="pipeline",
                      params=params, fixed=RUN_IDENTITY) as session:
        if session.folder != config.out:
            say(f"[yellow]{config.out} holds a different run; using {session.folder}[/]")
            config = replace(config, out=session.folder)
        ctx = RunContext(config, session.constitution, session.store, say, progress)
        ctx.summaries["recipe"] = recipe
        for name in STAGES:
            if name in config.stages:
                _run_stage(ctx, name, STAGE_FUNCTIONS[name])
    return ctx.layout.report


def _run_stage(ctx: RunContext, name: str, function) -> None:
    marker = f"pipeline:{name}"
    if ctx.store.stage_done(marker):
        ctx.say(f"[dim]{name}: done in an earlier run, skipped[/]")
        return
    started = time.perf_counter()
    ctx.say(f"[bold]{name}[/] ...")
    summary = function(ctx) or {}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    ctx.store.set_stage_done(marker, summary)
    ctx.say(f"[green]{name}[/] done in {summary['seconds']:.0f}s")
