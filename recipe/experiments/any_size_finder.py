"""Re-export a two-stage model's finder so it takes the photo's own shape, not a square.

    python -m recipe.experiments.any_size_finder model /var/tmp/bc/m22 --version 2.2.0

The finder is fully convolutional, but a model exported with a square 320x320 input spends 40% of
its time on the grey bands a 1080x1920 phone photo leaves. This copies a model, rebuilds its finder
for inputs of any height and width (multiples of 16) with the *same weights*, and records in the
metadata that the photo is padded only to a multiple of 16 (``input.pad_to_multiple``). The judge
is copied as it is. Answers can move a little (the network sees less grey near the photo's edges),
so measure the new model before shipping it (``recipe/experiments/compare_models.py``, ``bottlecheck evaluate
--record``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bottlecheck.artifact import TOPS, load_artifact, write_metadata
from bottlecheck.tfquiet import import_tensorflow
from bottlecheck.training.model import artifact_identity
from bottlecheck.training.tops_model import export_finder, finder_input_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a two-stage model directory")
    parser.add_argument("out", type=Path)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    import_tensorflow()
    import keras

    import bottlecheck.layers  # noqa: F401  (a finder already exported this way loads too)

    source = load_artifact(args.source)
    if source.kind != TOPS:
        parser.error(f"{args.source} is not a two-stage model")
    args.out.mkdir(parents=True, exist_ok=True)
    old = keras.models.load_model(source.file("keras", "finder"), compile=False)
    export_finder(old.get_layer("finder_head"), args.out)
    for name in ("judge.keras", "judge.tflite"):
        shutil.copy2(args.source / name, args.out / name)
    metadata = dict(source.metadata)
    metadata.update(artifact_identity(metadata["name"], args.version))
    # Same size and resizing as the source (its weights learnt them): only the padding changes.
    spec = finder_input_spec(source.stage("finder")["input"]["size"], reducing_gap=None)
    metadata["input"] = spec
    metadata["stages"]["finder"]["input"] = spec
    metadata["training"] = {
        **metadata["training"],
        "finder_any_size": f"the finder of {source.metadata['version']}, same weights, re-exported for inputs of "
        "any size by recipe/experiments/any_size_finder.py",
    }
    # Photo-level results depend on the input: measure them again (bottlecheck evaluate --record).
    metadata["metrics"] = {k: v for k, v in metadata.get("metrics", {}).items() if k in ("finder", "judge")}
    write_metadata(args.out, metadata)
    print(f"wrote {args.out} (version {args.version})")


if __name__ == "__main__":
    main()
