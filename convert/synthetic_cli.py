"""`scripts/make-synthetic-model` (python -m convert.synthetic_cli): write a
preset of `convert.presets` in F16, then quantize it through llama.cpp."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from convert.presets import PRESETS, write_preset
from convert.synthetic import FILE_TYPES


def main(argv: Sequence[str] | None = None) -> int:
    """scripts/make-synthetic-model: write a preset in F16, then quantize it."""
    from convert.metadata import read_gguf_info
    from convert.quantize import quantize, target_type
    from runtime.errors import ModelComposeError

    parser = argparse.ArgumentParser(
        prog="make-synthetic-model",
        description="Write a random-weight GGUF with a real model's shapes, for benchmarks "
        "and tests (its text is meaningless). Presets: "
        + "; ".join(f"{name}: {preset.about}" for name, preset in PRESETS.items())
        + ".",
    )
    parser.add_argument("output", type=Path, metavar="OUT.gguf")
    parser.add_argument("--preset", choices=list(PRESETS), default="smollm3-3b")
    parser.add_argument(
        "--quant", default="Q4_K_M", help="a llama.cpp type, or F16/F32 (default Q4_K_M)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-f16", action="store_true", help="keep the F16 file too")
    args = parser.parse_args(argv)
    try:
        quant = target_type(args.quant)
        started = time.monotonic()
        unquantized = quant in FILE_TYPES
        source = args.output if unquantized else args.output.with_suffix(".f16.gguf")
        write_preset(
            source,
            args.preset,
            file_type=quant if unquantized else "F16",
            seed=args.seed,
            progress=_Meter("writing"),
        )
        info = read_gguf_info(source)
        print(
            f"wrote {source}: {_describe(info.file_size, info.quantization)}, "
            f"{_parameters(info.parameter_count)}, {time.monotonic() - started:.0f} s"
        )
        if not unquantized:
            started = time.monotonic()
            info = quantize(source, args.output, quant, progress=_Meter("quantizing"))
            print(
                f"wrote {args.output}: {_describe(info.file_size, info.quantization)}, "
                f"{time.monotonic() - started:.0f} s"
            )
            if not args.keep_f16:
                source.unlink()
    except ModelComposeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


def _describe(size: int, quantization: str | None) -> str:
    size_text = f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"
    return f"{quantization}, {size_text}"


def _parameters(n: int) -> str:
    return f"{n / 1e6:.1f}M parameters" if n < 1e9 else f"{n / 1e9:.2f}B parameters"


class _Meter:
    """A percentage on one terminal line (nothing when stderr is not a terminal)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if not sys.stderr.isatty() or percent == self._shown:
            return
        self._shown = percent
        end = "\n" if done >= total else ""
        print(f"\r{self._label} {percent:3d}%", end=end, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
