"""atheris (libFuzzer) target for the image loader: any bytes in, an array or ImageError out.

Anything else (another exception, a crash, a hang, runaway memory) is a finding.
Run it with ``fuzz/run SECONDS`` (not in CI: a fuzzer's value grows with hours).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["bottlecheck"]):
    from bottlecheck.imaging import ImageError, load_image


def test_one_input(data: bytes) -> None:
    try:
        array = load_image(data)
    except ImageError:
        return
    assert array.shape == (224, 224, 3), array.shape


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
