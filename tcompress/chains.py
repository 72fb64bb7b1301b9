"""Chains: a cell that starts from another cell's model (prune, then quantize; seed 000 §5's question).

A chain is written ``"agp:10-70-1-full > kmeans:4"``: links joined by ``>``, each a registered
method and its axis values in axis order, joined by ``-`` as in cell ids. A link after the first may
leave out its layer group: it takes the previous link's. The first link is an ordinary grid cell
(``agp-10-70-1-full``); each later link starts from the model of the chain before it, its parent,
whose output folder the chain's DVC stage depends on: changing the parent reruns the chain, and
nothing else. The chain's id joins the links' cell ids with ``_then_``.

Which methods may chain is said by the methods themselves: every link but the last must leave a
float model (``Method.float_output``: pruning), every link but the first must keep the parent's
zeros (``Method.keeps_zeros``; binarization has no zero). A method that ``continues_any`` (node
pruning: it reshapes a model without retraining) may follow any link. While a later link trains, the parent's
zeros are held at zero (``tcompress.runner``), and its quantization ranges are those of the
nonzero weights (symmetric and asymmetric ranges both include 0; k-means clusters the nonzeros).

Torch-free: resolve and plan import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcompress.methods import Cell, get
from tcompress.schema import ConfigError

SEPARATOR = "_then_"


@dataclass(frozen=True)
class Chain:
    spec: str
    links: tuple[Cell, ...]

    @property
    def id(self) -> str:
        return SEPARATOR.join(link.id for link in self.links)

    @property
    def parent_id(self) -> str:
        """The cell or chain whose model this chain's last link starts from."""
        return SEPARATOR.join(link.id for link in self.links[:-1])

    @property
    def last(self) -> Cell:
        return self.links[-1]

    def prefixes(self) -> list["Chain"]:
        """The chains this one continues (``a > b > c``: ``a > b``), longest last."""
        return [Chain(" > ".join(_link_text(c) for c in self.links[:n]), self.links[:n])
                for n in range(2, len(self.links))]


def _link_text(cell: Cell) -> str:
    return f"{cell.method}:{'-'.join(str(v) for _, v in cell.values)}"


def _value(axis, text: str, where: str):
    """``text`` as a value of ``axis``, or None where the axis refuses it."""
    if axis.kind is int:
        if not text.isdigit():
            return None
        text = int(text)
    try:
        return axis.validate(where, text)
    except ConfigError:
        return None


def _parses(axes: tuple, tokens: list[str], where: str) -> list[tuple]:
    """Every way to cut ``tokens`` (a link's values split at '-') into one value per axis that
    each axis accepts (a schedule such as 10-70-1 holds dashes itself)."""
    if not axes:
        return [()] if not tokens else []
    out = []
    for cut in range(1, len(tokens) + 1):
        value = _value(axes[0], "-".join(tokens[:cut]), where)
        if value is not None:
            out += [(value, *rest) for rest in _parses(axes[1:], tokens[cut:], where)]
    return out


def parse_link(text: str, where: str, group: str | None) -> Cell:
    """One link, ``method:values``; ``group``: the previous link's, for a link that leaves it out."""
    name, sep, values = text.strip().partition(":")
    if not sep or not name or not values:
        raise ConfigError(f"{where}: {text.strip()!r} is not 'method:values', e.g. agp:10-70-1-full")
    method = get(name.strip())
    tokens = values.strip().split("-")
    names = [a.name for a in method.axes]
    options = _parses(method.axes, tokens, where)
    if not options and group is not None and names and names[-1] == "group":
        options = [(*head, group) for head in _parses(method.axes[:-1], tokens, where)]
    if len(options) != 1:
        what = "no" if not options else "more than one"
        raise ConfigError(f"{where}: {text.strip()!r} gives {what} reading of {method.name}'s axes "
                          f"({', '.join(names)}; values joined by '-')")
    return Cell(method.name, tuple(zip(names, options[0])))


def parse_chain(spec: str, where: str = "chains") -> Chain:
    parts = spec.split(">")
    if len(parts) < 2:
        raise ConfigError(f"{where}: {spec!r} is not a chain; expected links joined by '>', "
                          "e.g. 'agp:10-70-1-full > kmeans:4'")
    links: list[Cell] = []
    for part in parts:
        group = links[-1].as_dict().get("group") if links else None
        links.append(parse_link(part, where, group))
    for i, link in enumerate(links):
        method = get(link.method)
        if i < len(links) - 1 and not method.float_output and not get(links[i + 1].method).continues_any:
            raise ConfigError(f"{where}: {spec!r}: {link.method} cannot start a chain link; a chain continues "
                              "from a float model (a pruning method: agp, imp, or another with float_output)")
        if i > 0 and not method.keeps_zeros:
            raise ConfigError(f"{where}: {spec!r}: {link.method} cannot continue a chain; it does not keep the "
                              "parent's zeros")
    return Chain(spec, tuple(links))


def parse_chains(specs: tuple[str, ...], where: str) -> list[Chain]:
    chains = [parse_chain(s, f"{where}[{i}]") for i, s in enumerate(specs)]
    ids = [c.id for c in chains]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: {next(i for i in ids if ids.count(i) > 1)} is listed twice")
    return chains
