"""`cnnlab export`: ONNX / TorchScript with the preprocessing inside, checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import (
    console,
    print_error,
)

EXPORT_EPILOG = """\
examples:
  cnnlab export runs/lenet5/checkpoint.pt --format onnx lenet5.onnx
  cnnlab export runs/lenet5/checkpoint.pt lenet5.pt      format from the suffix (.onnx, .pt, .ts)
  python -c "import onnxruntime as ort; s = ort.InferenceSession('lenet5.onnx'); \\
      print(s.get_modelmeta().custom_metadata_map['cnnlab'])"     the metadata

The exported model takes float32 NCHW images in [0, 1] (gray, or RGB in that order):
the checkpoint's normalisation is inside the graph, so do not normalise again. It
returns logits; the batch size is free. Classes, input shape, mean/std and the
preprocessing travel in the file (ONNX metadata_props["cnnlab"], TorchScript extra
file cnnlab.json). Before OUT is written, the export is loaded back (onnxruntime,
torch.jit.load) and must match PyTorch's fp32 logits within 1e-4 on test images of
the checkpoint's dataset (random images when it cannot be found); otherwise the
command fails with the measured difference and writes nothing. ONNX needs
pip install -e '.[export]'; TorchScript (torch.jit) is deprecated upstream, so prefer
ONNX unless the consumer is libtorch.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as ONNX or TorchScript, checked against PyTorch",
        description="Export a checkpoint's model with its preprocessing metadata, then load "
        "the export back and check that it computes what PyTorch does.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt")
    p.add_argument("out", type=Path, metavar="OUT", help="the file to write")
    p.add_argument(
        "--format",
        choices=["onnx", "torchscript"],
        default=None,
        help="default: from OUT's suffix (.onnx; .pt or .ts for TorchScript)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the checkpoint's dataset is, for the check (default $CNNLAB_DATA)",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from cnnlab.inference.export import ExportCheckError, export_checkpoint

    try:
        with console.status(f"exporting {args.checkpoint} ..."):
            result = export_checkpoint(args.checkpoint, args.out, args.format, args.data_dir)
    except ExportCheckError as exc:
        # Not a usage problem (status 2): the export itself is wrong.
        print_error(exc)
        return 1
    meta = result.metadata
    size = result.path.stat().st_size
    shape = "x".join(str(d) for d in meta["input"]["shape"])
    console.print(
        f"wrote {result.path} ({result.format}, {size / 1024:,.0f} KiB): input "
        f"'{meta['input']['name']}' float32 {shape} in [0, 1], normalisation inside; output "
        f"'{meta['output']['name']}' {len(meta['classes'])} logits",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"checked on {result.checked_on}: max |export - PyTorch| = {result.max_abs_diff:.2e} "
        f"(tolerance {result.tolerance:.0e})",
        highlight=False,
        soft_wrap=True,
    )
    return 0
