"""``tcompress push``: `dvc push --run-cache`, plus the objects of the run-cache's entries that it
leaves out, so that `dvc repro --pull` on another machine restores every stage this one ran.

DVC's run-cache entry of a stage names all of its outputs, and the local run-cache keeps a copy of
each, ``cache: false`` ones too (our metrics files, tracked in git). `dvc push --run-cache` sends
the entries and the cached outputs that dvc.lock names, but not the ``cache: false`` ones; a
machine that restores the stage from the remote then misses them and computes the stage again.
Here, after DVC's own push, every object of each entry whose outputs are all in the local cache goes
to the remote too (DVC skips what is there already).

Torch-free: workers run it after their shard.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def complete_entries(repo) -> list[tuple[str, str]]:
    """(key, value) of each local run-cache entry whose outputs are all in the local cache."""
    runs = Path(repo.stage_cache.cache_dir)
    entries = []
    for path in sorted(runs.glob("*/*/*")):
        try:
            outs = (yaml.safe_load(path.read_text()) or {}).get("outs", [])
        except yaml.YAMLError:
            continue
        if outs and all((repo.cache.local if o.get("hash") == "md5" else repo.cache.legacy).exists(o["md5"])
                        for o in outs):
            entries.append((path.parent.name, path.name))
    return entries


def push(remote: str | None = None, jobs: int | None = None, root: str = ".") -> tuple[int, int, int]:
    """DVC's push with the run-cache, then the entries' objects: (entries, objects sent, failed)."""
    from dvc.repo import Repo

    with Repo(root) as repo:
        repo.push(run_cache=True, remote=remote, jobs=jobs)
        entries = complete_entries(repo)
        used = repo.stage_cache.get_used_objs(entries)
        objects = set().union(*used.values()) if used else set()
        result = repo.cloud.push(objects, jobs=jobs, remote=remote)
    return len(entries), len(result.transferred), len(result.failed)
