"""How many lines of src/ do what src/ did before this round's features (issue 8's count).

    python bench/lines.py            # from the repository root, in a full clone (it reads git history)

Issue 8 asks for what src/ did at 0b167db (5,373 lines, `wc -l` of its .py files) in at least 25% fewer lines,
counted before the other issues' features landed "or say how you separated them". They landed first, so the
features are separated here, in two ways:

- by blame, at the commit before issue 8's line cuts (CUTS_FROM): every line of src/ is the last commit's that
  wrote it; a line is a feature's when that commit is one of the features' (issues 9-13) and the house's (or the
  baseline's) otherwise; a module that exists only for a feature is the feature's whole;
- then, for each file, the cut is shared in proportion: the file's lines now times its share of the house's and
  the baseline's lines at CUTS_FROM (a file added since takes the share of the files it came from, the whole
  tree's share here). A line a feature commit wrote over a baseline line counts as the feature's; a line the house
  wrote over a feature's counts as the house's: the two errors run in opposite directions;
- a line of src/ now that a feature commit made after CUTS_FROM wrote (FEATURE_SINCE, blamed at HEAD) is the
  feature's and is left out before the share is applied (those commits rewrote some house lines too, so this
  errs toward the house by about as many lines).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

BASELINE = "0b167db"  # the count of issue 8 (5,373 lines)
CUTS_FROM = "7683d0e"  # main before issue 8's line cuts
# Commits of issue 8 before CUTS_FROM (the branch issue-8a and those made on main); every other commit after
# BASELINE is one of the features' (issues 9-13).
HOUSE = (
    "7683d0e", "3f12052", "83d91f7", "9c1f173", "f9a3a5a", "86587c9", "4632aaa", "0ba11e7", "03e17c3", "5fce1f4",
    "24bb1c4", "b039258", "48e29f9", "57d5ce4", "5ff2cd7", "303e40e", "9317b6e", "860465a", "fd83019", "ac99d0b",
)
# Issue 11's commits after the cuts began (the worker started ahead): the lines they wrote, as blamed now, are
# the feature's, not shared by their file's old proportion.
FEATURE_SINCE = ("5c2226c", "2cc8ffa", "20d3203", "45a8a7c")
# Modules that exist only for a feature.
FEATURE_MODULES = {
    "src/autoanim/activity.py", "src/autoanim/probe.py", "src/autoanim/backfill.py", "src/autoanim/targets.py",
    "src/autoanim/adapters/fc.py", "src/autoanim/adapters/local_probe.py", "src/autoanim/engine/fit.py",
    "src/autoanim/engine/probe.py", "src/autoanim/engine/segments.py",
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def py_files(rev: str) -> list[str]:
    return [f for f in git("ls-tree", "-r", "--name-only", rev, "src").split() if f.endswith(".py")]


def lines_at(rev: str, path: str) -> int:
    return len(git("show", f"{rev}:{path}").splitlines())


def blamed(rev: str, path: str) -> Counter:
    """How many lines of ``path`` at ``rev`` each commit last wrote."""
    return Counter(line.split()[0] for line in git("blame", "-w", "--line-porcelain", rev, "--", path).splitlines()
                   if len(line) > 40 and line[:40].isalnum() and line[40] == " ")


def blame_shares(rev: str, house: set[str], baseline: set[str]) -> dict[str, tuple[int, int]]:
    """(house-or-baseline lines, feature lines) of each file at rev."""
    shares = {}
    for path in py_files(rev):
        total = lines_at(rev, path)
        if path in FEATURE_MODULES:
            shares[path] = (0, total)
            continue
        commits = blamed(rev, path)
        ours = sum(n for c, n in commits.items() if c in house or c in baseline)
        shares[path] = (ours, total - ours)
    return shares


def main() -> int:
    baseline = set(git("rev-list", BASELINE).split())
    house = {git("rev-parse", c).strip() for c in HOUSE}
    base_total = sum(lines_at(BASELINE, f) for f in py_files(BASELINE))
    shares = blame_shares(CUTS_FROM, house, baseline)
    ours_before = sum(o for o, _ in shares.values())
    total_before = sum(o + f for o, f in shares.values())
    tree_share = ours_before / total_before
    now = {f: len(Path(f).read_text().splitlines()) for f in git("ls-files", "src").split() if f.endswith(".py")}
    since = {git("rev-parse", c).strip() for c in FEATURE_SINCE}
    estimate = 0.0
    for path, n in now.items():
        n -= sum(count for c, count in blamed("HEAD", path).items() if c in since)
        ours, feat = shares.get(path, (None, None))
        share = tree_share if ours is None else (ours / (ours + feat) if ours + feat else 0.0)
        estimate += n * share
    print(f"baseline {BASELINE}: {base_total} lines; 25% fewer is {int(base_total * 0.75)}")
    print(f"{CUTS_FROM} (before the cuts): {total_before} lines, of which the baseline's and the house's "
          f"{ours_before} ({tree_share:.0%}), the features' {total_before - ours_before}")
    print(f"now: {sum(now.values())} lines; what the baseline did: {estimate:.0f} "
          f"({estimate / base_total - 1:+.1%} against the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
