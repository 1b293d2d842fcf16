"""Move a trained tinyattn model to PyTorch: the path for users who outgrow tinyattn.

    python examples/export_to_torch.py [--checkpoint runs/reverse/reverse.npz]

tinyattn's layers use PyTorch's parameter names (Linear, LayerNorm, Embedding,
MultiheadAttention, TransformerEncoderLayer), so exporting is writing the state_dict under
those names to a plain .npz (`export_for_torch`) and loading it into the twin torch.nn
model (`load_into_torch`). The script rebuilds the examples/reverse.py model in PyTorch,
loads the weights and checks that both give the same outputs. It needs torch
(`pip install torch==2.13.0` installs a CPU build).
"""
import argparse
import os
import sys

import numpy as np

import tinyattn as ta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reverse import ReverseTransformer  # noqa: E402


def export_for_torch(model, path):
    """Write model.state_dict() as a plain .npz whose keys are PyTorch parameter names."""
    arrays = {name: t.numpy() for name, t in model.state_dict().items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return sorted(arrays)


def load_into_torch(torch_model, path):
    """Load an export_for_torch file into a torch.nn.Module (strict: every name must match)."""
    import torch

    with np.load(path, allow_pickle=False) as archive:
        state = {k: torch.from_numpy(archive[k].copy()) for k in archive.files}
    torch_model.load_state_dict(state, strict=True)
    return torch_model


def torch_reverse_model(vocab=16, seq_len=32, d_model=64, nhead=4, num_layers=2, dim_feedforward=256):
    """The examples/reverse.py model written with torch.nn, with the same parameter names."""
    import torch
    from torch import nn

    def gelu_tanh(x):
        return nn.functional.gelu(x, approximate="tanh")  # tinyattn's GELU is the tanh form

    class SinusoidalTable(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("pe", torch.zeros(seq_len, d_model))  # filled by the export

        def forward(self, x):
            return x + self.pe[: x.shape[1]]

    class TorchReverse(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.pos = SinusoidalTable()
            self.layers = nn.ModuleList(
                nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0, activation=gelu_tanh,
                                           batch_first=True, norm_first=True)
                for _ in range(num_layers)
            )
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab)

        def forward(self, tokens):
            x = self.pos(self.embed(tokens))
            for layer in self.layers:
                x = layer(x)
            return self.head(self.norm(x))

    return TorchReverse().to(torch.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="runs/reverse/reverse.npz",
                   help="from examples/reverse.py (random weights if absent)")
    p.add_argument("--out", default="runs/reverse/reverse_torch.npz")
    args = p.parse_args(argv)
    import torch

    model = ReverseTransformer()
    if os.path.exists(args.checkpoint):
        model.load_state_dict(ta.load(args.checkpoint)["model"])
        print(f"loaded {args.checkpoint}")
    else:
        print(f"{args.checkpoint} not found: exporting an untrained model")
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    names = export_for_torch(model, args.out)
    twin = load_into_torch(torch_reverse_model().eval(), args.out)
    tokens = np.random.default_rng(0).integers(0, 16, size=(8, 32))
    with ta.no_grad():
        ours = model(ta.tensor(tokens)).numpy()
    with torch.no_grad():
        theirs = twin(torch.from_numpy(tokens)).numpy()
    diff = float(np.abs(ours - theirs).max())
    print(f"exported {len(names)} tensors to {args.out}; max |tinyattn - torch| on the logits: {diff:.2e}")
    return diff


if __name__ == "__main__":
    main()
