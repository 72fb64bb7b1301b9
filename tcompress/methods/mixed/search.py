"""The mixed-precision search: a greedy path of bit assignments, the candidates decoded along it,
and the choice of the smallest one within the BLEU budget. Torch-free; the method (``__init__``)
supplies the measurements.

The path starts with every Linear at the widest width and lowers one Linear by one width per step:
the Linear whose next width costs the least sensitivity per byte saved,

    (Δ(l, next) − Δ(l, current)) / (numel_l · (current − next) / 8),

Δ being the ``sensitivity`` stage's validation-loss increase (ties: the Linear first by name). It
ends with every Linear at the narrowest width, so its code bytes fall at every step. A greedy path,
not an integer program: Δ is measured one Linear at a time and does not add up exactly over
Linears, so an exact optimum of the sum would be optimal for a proxy anyway; the candidates' BLEU,
decoded for real, is what decides.
"""

from __future__ import annotations

from typing import Mapping

from tcompress.compress.packing import packed_bytes


def code_bytes(assignment: Mapping[str, int], numels: Mapping[str, int]) -> int:
    """The weights' codes at their widths, bit-packed (``tcompress.compress.packing``)."""
    return sum(packed_bytes(numels[name], bits) for name, bits in assignment.items())


def greedy_path(deltas: Mapping[str, Mapping[int, float]], numels: Mapping[str, int],
                widths: tuple[int, ...]) -> list[dict[str, int]]:
    """Every assignment (Linear -> bits) of the greedy path, from all-widest to all-narrowest."""
    lower = dict(zip(widths, widths[1:]))   # each width's next narrower one
    current = {name: widths[0] for name in sorted(deltas)}
    path = [dict(current)]

    def cost(name: str) -> float:
        bits, nxt = current[name], lower[current[name]]
        return (deltas[name][nxt] - deltas[name][bits]) / (numels[name] * (bits - nxt) / 8)

    while True:
        movable = [name for name in current if current[name] in lower]
        if not movable:
            return path
        name = min(movable, key=lambda n: (cost(n), n))
        current[name] = lower[current[name]]
        path.append(dict(current))


def candidate_steps(path_bytes: list[int], count: int) -> list[int]:
    """``count`` steps of the path (its first and last included) at evenly spaced code bytes: for each
    target, the first step at or below it; repeats dropped, in path order."""
    if count < 2:
        raise ValueError("count: a search needs at least 2 candidates (the path's two ends)")
    hi, lo = path_bytes[0], path_bytes[-1]
    steps = []
    for k in range(count):
        target = hi - (hi - lo) * k / (count - 1)
        steps.append(next(i for i, b in enumerate(path_bytes) if b <= target + 1e-9))
    return sorted(set(steps))


def choose(candidates: list[dict], reference_bleu: float, budget: float) -> int:
    """The index of the candidate with the fewest ``file_bytes`` whose ``valid_bleu`` is at most
    ``budget`` below ``reference_bleu``; if none is, the first (the path's widest start)."""
    within = [i for i, c in enumerate(candidates) if reference_bleu - c["valid_bleu"] <= budget]
    return min(within, key=lambda i: (candidates[i]["file_bytes"], i)) if within else 0


def bits_summary(assignment: Mapping[str, int], numels: Mapping[str, int]) -> dict:
    """How many modules (Linears and tables) at each width, and the mean width weighted by parameters."""
    counts: dict[str, int] = {}
    for bits in assignment.values():
        counts[str(bits)] = counts.get(str(bits), 0) + 1
    total = sum(numels[name] for name in assignment)
    return {"modules_at": dict(sorted(counts.items(), key=lambda kv: -int(kv[0]))),
            "mean_bits": round(sum(numels[n] * b for n, b in assignment.items()) / total, 4)}
