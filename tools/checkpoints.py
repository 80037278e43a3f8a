"""Random-weight Whisper checkpoints for offline runs, tests and benchmarks.

No weights can be downloaded on CI machines, so tests build a checkpoint of the real architecture with random
weights and load it by path through the same `whisper.load_model` call that loads official models.
Random weights give random text: use these to test mechanics and speed, never accuracy.

    python -m tools.checkpoints build/tiny-random.pt                  # very small: fast tests
    python -m tools.checkpoints build/tiny.pt --dims tiny             # the shape of the official `tiny`
    python -m tools.checkpoints build/turbo.pt --dims large-v3-turbo  # the shape of `turbo` (GPU benchmarks)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

# Official shapes (from the published checkpoints' "dims"), plus "test": the smallest model that still has
# the real vocabulary, mel layout, 30 s context and timestamp tokens.
DIMS = {
    "test": dict(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
        n_vocab=51865, n_text_ctx=96, n_text_state=64, n_text_head=2, n_text_layer=2,
    ),
    "tiny": dict(
        n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4,
        n_vocab=51865, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4,
    ),
    "large-v3": dict(
        n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
        n_vocab=51866, n_text_ctx=448, n_text_state=1280, n_text_head=20, n_text_layer=32,
    ),
    "large-v3-turbo": dict(
        n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20, n_audio_layer=32,
        n_vocab=51866, n_text_ctx=448, n_text_state=1280, n_text_head=20, n_text_layer=4,
    ),
}  # fmt: skip


def build_checkpoint(path: str | Path, dims: str = "test", seed: int = 0) -> Path:
    """Write a random-weight checkpoint in openai-whisper's format and return its path."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model_dims = ModelDimensions(**DIMS[dims])
    model = Whisper(model_dims)
    # openai-whisper allocates this with torch.empty (the real weights overwrite it): give it finite values,
    # or leftover memory (seen: 1e24) overflows into NaN logits
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}
    torch.save({"dims": dataclasses.asdict(model_dims), "model_state_dict": state}, path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("path", help="where to write the .pt checkpoint")
    parser.add_argument("--dims", choices=sorted(DIMS), default="test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_checkpoint(args.path, args.dims, args.seed))


if __name__ == "__main__":
    main()
