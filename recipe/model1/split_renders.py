"""Arrange rendered images into train and test folders (symlinks) for ``bottlecheck train``/``evaluate``.

    python -m recipe.model1.split_renders --out /tmp/bc-data \
        --source /tmp/renders/v2:open --source /tmp/renders/v2fix

A ``--source DIR[:LABEL]`` is a render output folder (``labels-*.jsonl`` beside
``open/`` and ``closed/``); with ``:LABEL`` only that label is taken from it. Later
sources win for the same image index. Every image whose index is a multiple of
``--test-every`` goes to the test split, the rest to train, so the split is fixed by
the index alone and never changes as more images are rendered.

Writes ``OUT/train``, ``OUT/test`` and ``OUT/test-fill-against-label``: the test
images whose fill level contradicts what real photos teach (open bottles at least
half full, closed bottles at most a quarter full), to check that the model looks at
the cap, not at the beer.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", action="append", required=True)
    parser.add_argument("--test-every", type=int, default=10)
    args = parser.parse_args()

    chosen: dict[int, tuple[Path, dict]] = {}
    for source in args.source:
        folder, _, only = source.partition(":")
        folder = Path(folder)
        for labels_file in sorted(folder.glob("labels-*.jsonl")):
            for line in labels_file.read_text().splitlines():
                meta = json.loads(line)
                if only and meta["label"] != only:
                    continue
                if (folder / meta["path"]).exists():
                    chosen[meta["index"]] = (folder, meta)

    counts: dict[str, int] = {}
    for index, (folder, meta) in sorted(chosen.items()):
        split = "test" if index % args.test_every == 0 else "train"
        targets = [split]
        fill, label = meta["fill"], meta["label"]
        if split == "test" and ((label == "open" and fill >= 0.5) or (label == "closed" and fill <= 0.25)):
            targets.append("test-fill-against-label")
        for target in targets:
            destination = args.out / target / label / f"{index:06d}.jpg"
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.is_symlink() or destination.exists():
                destination.unlink()
            os.symlink((folder / meta["path"]).resolve(), destination)
            counts[f"{target}/{label}"] = counts.get(f"{target}/{label}", 0) + 1
    manifest = {"sources": args.source, "test_every": args.test_every, "counts": counts}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
