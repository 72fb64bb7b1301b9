"""One source of defaults: each value params.yaml gives equals its dataclass's default.

params.yaml is what a run uses and the dataclasses (``tcompress.config``, each method's ``params``)
are what a key left out of it gets; when the two disagree, deleting a line of params.yaml changes
the results. The comparison is general, so it keeps holding when either side changes:

- every fixed section (``model``, ``train``, …) and every registered method's section, key by key;
  a key params.yaml leaves out has its default by definition and is not compared;
- a value given per corpus (``{synthetic: 2, multi30k: 1, files: 1}``) is compared by its
  ``synthetic`` entry: ``synthetic`` is the default ``data``, so a key left out changes nothing for
  the default run (the other corpora's budgets have no default of their own: params.yaml is the
  only place they live);
- the top-level grid keys (``bits``, ``modes``, ``groups``, ``chains``), ``data`` and ``seeds``
  against ``Params``. Two top-level keys have defaults that are not a value: ``methods`` left out
  selects every registered method (so tcompress.params names none), and ``catalog`` left out (or a
  method left out of it) takes each method's own ``Method.catalog``; neither is compared here.
"""

import dataclasses
from pathlib import Path

import pytest
import yaml

from tcompress.methods import registered
from tcompress.params import Params
from tcompress.schema import CORPORA, plain

REPO = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((REPO / "params.yaml").read_text())
TOP_LEVEL = ("data", "seeds", "bits", "modes", "groups", "chains")


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


SECTIONS = {f.name: type(_default(f)) for f in dataclasses.fields(Params) if dataclasses.is_dataclass(_default(f))}
SECTIONS |= {m.name: m.params for m in registered()}


def _per_corpus(value) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= set(CORPORA)


def _same(given, default) -> bool:
    """YAML's view of a value against a default: lists for tuples, 1.0e-3 for 0.001, 3 for 3.0."""
    default = plain(default)
    if isinstance(default, list) and not isinstance(given, list):
        given = [given]   # a grid key given one value
    if isinstance(given, list) and isinstance(default, list):
        return len(given) == len(default) and all(map(_same, given, default))
    if isinstance(given, bool) or isinstance(default, bool):
        return given is default
    if isinstance(given, (int, float)) and isinstance(default, (int, float)):
        return float(given) == float(default)
    return given == default


def differences(section: str) -> list[str]:
    """``key: params.yaml has X, the default is Y`` for each key of the section that disagrees."""
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    out = []
    for key, value in (RAW.get(section) or {}).items():
        given = value["synthetic"] if _per_corpus(value) else value
        default = _default(fields[key])
        if not _same(given, default):
            where = f"{section}.{key}" + (".synthetic" if _per_corpus(value) else "")
            out.append(f"{where}: params.yaml has {given!r}, {SECTIONS[section].__name__} defaults to "
                       f"{plain(default)!r}")
    return out


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_each_value_in_params_yaml_is_its_dataclass_default(section):
    found = differences(section)
    assert not found, "params.yaml and the defaults disagree (make them equal):\n" + "\n".join(found)


def test_the_top_level_values_are_the_defaults():
    fields = {f.name: f for f in dataclasses.fields(Params)}
    found = [f"{key}: params.yaml has {RAW[key]!r}, Params defaults to {plain(_default(fields[key]))!r}"
             for key in TOP_LEVEL if key in RAW and not _same(RAW[key], _default(fields[key]))]
    assert not found, "\n".join(found)


def test_the_comparison_sees_a_changed_default(monkeypatch):
    """The rule itself: a plain value, a per-corpus value and a grid key that disagree are each named."""
    monkeypatch.setitem(RAW, "qat", {"per_channel": False, "epochs": {"synthetic": 3, "multi30k": 1},
                                     "bits": 4, "lr": 2.0e-4})
    assert [d.split(":")[0] for d in differences("qat")] == ["qat.per_channel", "qat.epochs.synthetic"]
