"""Chain specs: parsing against the registry's axes, ids, parents, and the catalog and selection they
make (tcompress.chains, tcompress.grid)."""

import pytest

from conftest import TINY, tiny_params
from tcompress.chains import parse_chain
from tcompress.grid import catalog_chains, cells_file_text, selected_cells, selected_chains
from tcompress.params import params_from_dict
from tcompress.schema import ConfigError


def test_a_link_reads_each_axis_and_inherits_the_group():
    chain = parse_chain("agp:10-70-1-full > qat:sym-4")
    assert [link.id for link in chain.links] == ["agp-10-70-1-full", "qat-sym-4-full"]
    assert chain.links[1].as_dict() == {"mode": "sym", "bits": 4, "group": "full"}
    assert chain.id == "agp-10-70-1-full_then_qat-sym-4-full" and chain.parent_id == "agp-10-70-1-full"
    # a group of its own wins; a union of groups is one value
    assert parse_chain("agp:45-70-3-ff+att > kmeans:2-att").last.id == "kmeans-2-att"
    assert parse_chain("imp:full > kmeans_ptq:8").last.as_dict() == {"bits": 8, "group": "full"}


def test_a_longer_chain_continues_its_prefix():
    chain = parse_chain("agp:10-70-1-full > agp:45-70-3 > kmeans:4")
    assert [p.id for p in chain.prefixes()] == ["agp-10-70-1-full_then_agp-45-70-3-full"]
    assert chain.parent_id == "agp-10-70-1-full_then_agp-45-70-3-full"


@pytest.mark.parametrize("spec, message", [
    ("agp:10-70-1-full", "is not a chain"),
    ("agp 10-70-1-full > kmeans:4", "is not 'method:values'"),
    ("agp:10-70-1-full > kmeans:4-full-x", "gives no reading of kmeans's axes"),
    ("agp:10-70-1-full > bsflex:flex-att", "bsflex cannot continue a chain"),
    ("qsgd:8-att > kmeans:4", "qsgd cannot start a chain link"),
])
def test_bad_chains_say_why(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_chain(spec)


def test_selecting_a_chain_selects_its_start_and_its_control():
    chains = [*TINY["catalog"]["chains"], "agp:10-70-1-full > kmeans:4"]
    params = params_from_dict(tiny_params(methods=["ptq"], chains=["agp:10-70-1-full > kmeans:4"],
                                          catalog={"chains": chains}))
    ids = {c.id for c in selected_cells(params)}
    assert {"agp-10-70-1-full", "kmeans-control"} <= ids and not any(i.startswith(("kmeans-4", "agp-control")) for i in ids)
    assert [c.id for c in selected_chains(params)] == ["agp-10-70-1-full_then_kmeans-4-full"]
    # every catalog chain has a stage, selected or not, with its parent named for the dependency
    assert len(catalog_chains(params)) == len(chains) == 2
    assert "agp-10-70-1-full_then_qat-sym-4-full:\n    parent: agp-10-70-1-full" in cells_file_text(params)
