"""Numbers with honest error bars: bootstrap intervals, paired deltas, agreement, Bradley-Terry.

Everything is seeded, so the same inputs always give the same interval, and nothing needs scipy.
Values are per-item scores (1/0 for a rate, a 0..1 score otherwise); `None` means unscored (an
abstention) and is dropped before any statistic is taken, never counted as a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap interval; `n` scored items, `unscored` abstentions."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    unscored: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def scored(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None], dtype=float)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def mean_ci(values: Sequence[float | None], seed: int = 0, n_boot: int = N_BOOT) -> Estimate:
    """Mean of the scored values with a percentile bootstrap interval (resampling items)."""
    data = scored(values)
    unscored = len(values) - len(data)
    if len(data) == 0:
        return Estimate(None, None, None, 0, unscored)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(n_boot, len(data)))
    low, high = _percentiles(data[picks].mean(axis=1))
    return Estimate(float(data.mean()), low, high, len(data), unscored)


def paired_delta(
    before: dict[Hashable, float | None],
    after: dict[Hashable, float | None],
    seed: int = 0,
    n_boot: int = N_BOOT,
) -> Estimate:
    """after - before on the items both scored, with an interval from resampling those items.

    Pairing removes the prompt-to-prompt variance both runs share, so a real change shows up
    with far fewer prompts than comparing two independent means would need.
    """
    common = sorted(
        (k for k in before if k in after and before[k] is not None and after[k] is not None),
        key=str,
    )
    diffs = [after[k] - before[k] for k in common]
    unscored = len(set(before) | set(after)) - len(common)
    estimate = mean_ci(diffs, seed=seed, n_boot=n_boot)
    return Estimate(estimate.value, estimate.low, estimate.high, estimate.n, unscored)


def unpaired_delta(
    before: Sequence[float | None],
    after: Sequence[float | None],
    seed: int = 0,
    n_boot: int = N_BOOT,
) -> Estimate:
    """after - before for two independent samples (runs on different prompts)."""
    a, b = scored(before), scored(after)
    if len(a) == 0 or len(b) == 0:
        return Estimate(None, None, None, 0, len(before) + len(after) - len(a) - len(b))
    rng = np.random.default_rng(seed)
    boot_a = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1)
    boot_b = b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
    low, high = _percentiles(boot_b - boot_a)
    return Estimate(
        float(b.mean() - a.mean()),
        low,
        high,
        min(len(a), len(b)),
        len(before) + len(after) - len(a) - len(b),
    )


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> dict:
    """Raw agreement and Cohen's kappa over pairs both raters labelled (None: abstained)."""
    pairs = [(x, y) for x, y in zip(first, second) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return {"n": 0, "agreement": None, "kappa": None}
    observed = sum(x == y for x, y in pairs) / n
    labels = {x for x, _ in pairs} | {y for _, y in pairs}
    expected = sum(
        (sum(x == lab for x, _ in pairs) / n) * (sum(y == lab for _, y in pairs) / n)
        for lab in labels
    )
    # When both raters use a single label throughout, chance agreement is 1 and kappa is undefined.
    kappa = None if math.isclose(expected, 1.0) else (observed - expected) / (1 - expected)
    return {"n": n, "agreement": observed, "kappa": kappa}


# -- Bradley-Terry ratings ---------------------------------------------------------------------


def bradley_terry(
    models: Sequence[str],
    games: Sequence[tuple[str, str, float]],
    prior: float = 0.5,
    iterations: int = 500,
) -> dict[str, float]:
    """Strengths from pairwise games (a, b, score of a: 1 win, 0.5 tie, 0 loss), as Elo points.

    Fitted with Hunter's MM updates. `prior` adds that many virtual ties between every pair that
    met, so a model that won every game gets a large finite rating instead of infinity. Ratings
    are centred on a mean of 1000; 400 points is a 10:1 odds ratio, as in Elo.
    """
    index = {m: i for i, m in enumerate(models)}
    k = len(models)
    wins = np.zeros((k, k))
    for a, b, score in games:
        wins[index[a], index[b]] += score
        wins[index[b], index[a]] += 1 - score
    met = (wins + wins.T) > 0
    wins = wins + prior * met
    played = wins + wins.T
    strength = np.ones(k)
    for _ in range(iterations):
        total_wins = wins.sum(axis=1)
        denominators = (played / (strength[:, None] + strength[None, :])).sum(axis=1)
        updated = np.where(denominators > 0, total_wins / np.maximum(denominators, 1e-12), strength)
        updated = updated / np.exp(np.mean(np.log(np.maximum(updated, 1e-12))))
        if np.allclose(updated, strength, rtol=1e-9, atol=1e-12):
            strength = updated
            break
        strength = updated
    elo = 400 * np.log10(np.maximum(strength, 1e-12))
    elo = elo - elo.mean() + 1000
    return {m: float(elo[index[m]]) for m in models}


def bradley_terry_ci(
    models: Sequence[str], games: Sequence[tuple[str, str, float]], seed: int = 0, n_boot: int = 500
) -> dict[str, Estimate]:
    """Bradley-Terry ratings with bootstrap intervals from resampling the games."""
    point = bradley_terry(models, games)
    if not games:
        return {m: Estimate(point[m], None, None, 0) for m in models}
    rng = np.random.default_rng(seed)
    samples = {m: [] for m in models}
    for _ in range(n_boot):
        picks = rng.integers(0, len(games), size=len(games))
        ratings = bradley_terry(models, [games[i] for i in picks], iterations=200)
        for m in models:
            samples[m].append(ratings[m])
    counts = {m: sum(1 for a, b, _ in games if m in (a, b)) for m in models}
    return {m: Estimate(point[m], *_percentiles(np.array(samples[m])), counts[m]) for m in models}


# -- rates of yes/no outcomes: Wilson intervals, paired changes (McNemar), discrimination ----------

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """A rate with its Wilson score interval: honest at 0/n and n/n, where the percentile
    bootstrap collapses to a zero-width interval (0/40 is not "exactly 0")."""
    if n == 0:
        return Estimate(None, None, None, 0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def _binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (McNemar's exact test)."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedChange:
    """A yes/no outcome on the same items before and after: the change in its rate, with a Wilson
    interval of the difference of paired proportions (Newcombe's method 10) and McNemar's exact
    p-value from the discordant items (`gained`: no -> yes, `lost`: yes -> no)."""

    before: float | None
    after: float | None
    delta: float | None
    low: float | None
    high: float | None
    gained: int
    lost: int
    n: int
    p_value: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_change(before: dict[Hashable, bool | None], after: dict[Hashable, bool | None]) -> PairedChange:
    common = sorted((k for k in before if k in after and before[k] is not None and after[k] is not None), key=str)
    n = len(common)
    if n == 0:
        return PairedChange(None, None, None, None, None, 0, 0, 0, 1.0)
    yes_before = sum(bool(before[k]) for k in common)
    yes_after = sum(bool(after[k]) for k in common)
    gained = sum(1 for k in common if not before[k] and after[k])
    lost = sum(1 for k in common if before[k] and not after[k])
    both = sum(1 for k in common if before[k] and after[k])
    p1, p2 = yes_before / n, yes_after / n
    delta = p2 - p1
    w1, w2 = wilson(yes_before, n), wilson(yes_after, n)
    # Newcombe (1998) method 10: Wilson limits of each margin, with the paired correlation phi.
    neither = n - both - gained - lost
    a, b, c, d = both, lost, gained, neither  # before yes/after yes, yes/no, no/yes, no/no
    denominator = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    phi = (a * d - b * c) / denominator if denominator else 0.0
    dl1, du1 = p1 - w1.low, w1.high - p1
    dl2, du2 = p2 - w2.low, w2.high - p2
    low = delta - math.sqrt(max(0.0, dl2 ** 2 - 2 * phi * dl2 * du1 + du1 ** 2))
    high = delta + math.sqrt(max(0.0, du2 ** 2 - 2 * phi * du2 * dl1 + dl1 ** 2))
    return PairedChange(p1, p2, delta, max(-1.0, low), min(1.0, high), gained, lost, n,
                        _binomial_two_sided(min(gained, lost), gained + lost))


def discrimination(refused: dict[Hashable, bool], sides: dict[Hashable, str],
                   pairs: dict[Hashable, Hashable]) -> dict:
    """How well refusals separate unsafe from safe prompts: refusal on each side (Wilson), their
    difference, and per minimal pair whether the model refused the unsafe side and answered the
    safe one (`discriminated`), refused both, answered both, or the reverse (`inverted`)."""
    unsafe = [refused[k] for k in refused if sides[k] == "unsafe"]
    safe = [refused[k] for k in refused if sides[k] == "safe"]
    by_pair: dict[Hashable, dict[str, bool]] = {}
    for key, value in refused.items():
        by_pair.setdefault(pairs[key], {})[sides[key]] = value
    outcomes = {"discriminated": 0, "refused_both": 0, "answered_both": 0, "inverted": 0}
    for sides_of_pair in by_pair.values():
        if set(sides_of_pair) != {"safe", "unsafe"}:
            continue
        u, s = sides_of_pair["unsafe"], sides_of_pair["safe"]
        outcomes["discriminated" if u and not s else "refused_both" if u and s else
                 "answered_both" if not u and not s else "inverted"] += 1
    unsafe_rate, safe_rate = wilson(sum(unsafe), len(unsafe)), wilson(sum(safe), len(safe))
    gap = None if unsafe_rate.value is None or safe_rate.value is None else unsafe_rate.value - safe_rate.value
    complete = sum(outcomes.values())
    return {"refused_unsafe": unsafe_rate.as_dict(), "refused_safe": safe_rate.as_dict(), "gap": gap,
            "pairs": complete, **outcomes,
            "discriminated_rate": wilson(outcomes["discriminated"], complete).as_dict()}
