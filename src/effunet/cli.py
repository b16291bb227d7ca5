"""The `effunet` command: `effunet predict MODEL INPUT OUTPUT` applies a trained model to new images."""

from __future__ import annotations

import argparse
import logging
import sys

from effunet.errors import EffunetError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="effunet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="segment an image or a folder of images")
    predict.add_argument("model", help="a trained model.keras (results/<dataset>/<model>/seed<seed>/)")
    predict.add_argument("input", help="an image file or a folder of images (PNG, TIFF, JPEG, GIF)")
    predict.add_argument("output", help="folder for <name>_mask.png (0/255, each image's own size)")
    predict.add_argument("--threshold", type=float, default=0.5)
    predict.add_argument("--probabilities", action="store_true",
                         help="also write <name>_prob.png (16-bit, probability x 65535)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        from effunet.predict import predict_files

        written = predict_files(args.model, args.input, args.output, args.threshold, args.probabilities)
    except EffunetError as error:
        print(f"effunet: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} mask(s) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
