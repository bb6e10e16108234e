"""An ordinary torch training loop with a LayerNorm and weight decay, recorded with conformance.record.

    python examples/record_layernorm_loop.py traces/layernorm_wd                       # weight_decay=0.01
    python examples/record_layernorm_loop.py traces/layernorm_no_wd --weight-decay 0   # the same loop without
    python -m conformance replay traces/layernorm_wd

The loop is what a user would write; the only addition is the `with conformance.record(...)` block
(and, optionally, `trace.loss(loss)`). docs/traces.md shows the replay's output.
"""
from __future__ import annotations

import argparse

import torch

import conformance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the trace folder to write (must not exist)")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.GELU(),
                                torch.nn.Linear(16, 1))
    optimizer = torch.optim.Adamax(model.parameters(), lr=0.01, weight_decay=args.weight_decay)
    teacher = torch.randn(8, 1)
    with conformance.record(optimizer, args.out, model=model) as trace:
        for _ in range(args.steps):
            x = torch.randn(32, 8)
            y = torch.tanh(x @ teacher)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            trace.loss(loss)
            optimizer.step()
    print(f"recorded {trace.steps} steps into {args.out}; final loss {loss.item():.4g}")


if __name__ == "__main__":
    main()
