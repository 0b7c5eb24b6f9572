"""The lecture's CSV example (05_csv_reader.py) on the South African heart disease data, twice:

* TF1 style: ``string_input_producer`` -> ``TextLineReader(skip_header_lines=1)`` -> ``decode_csv``
  -> ``shuffle_batch``, driven by a ``Coordinator`` and ``start_queue_runners``;
* PyTorch style: ``CSVDataset`` -> ``DataLoader``.

Both train a logistic regression predicting ``chd`` from the nine other columns (``famhist``
Present/Absent mapped to 1/0) for a few epochs and print loss and accuracy. The default data is
the small synthetic sample shipped in examples/data (same schema as the real heart.csv)::

    python examples/heart_csv.py [path/to/heart.csv] [--epochs 5] [--style both|tf1|pytorch]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

import loaders

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "heart_sample.csv"
N_FEATURES = 9
BATCH_SIZE = 32
FAMHIST = {"Present": 1, "Absent": 0}
# Rounded mean and standard deviation of each feature of heart.csv, to standardize the inputs.
MEAN = torch.tensor([138.0, 3.6, 4.7, 25.0, 0.4, 53.0, 26.0, 17.0, 43.0])
STD = torch.tensor([20.0, 4.6, 2.0, 7.8, 0.5, 10.0, 4.2, 24.5, 14.6])

# As in the lecture: nine float features, famhist a string, the label an int.
RECORD_DEFAULTS: List[list] = [[1.0] for _ in range(N_FEATURES)]
RECORD_DEFAULTS[4] = [""]
RECORD_DEFAULTS.append([1])


class LogisticRegression(nn.Module):
    """P(chd | features) = sigmoid(w . standardized features + b)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(N_FEATURES, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits [B] for features [B, 9]."""
        return self.linear((features - MEAN) / STD).squeeze(1)


def make_model() -> Tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh logistic regression and its optimizer."""
    model = LogisticRegression()
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, features: torch.Tensor, labels: torch.Tensor) -> Tuple[float, int]:
    """One SGD step; returns the summed loss and the number of correct predictions."""
    labels = labels.float()
    logits = model(features)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item() * len(labels), int(((logits > 0).float() == labels).sum())


def show_first_record(path: Path) -> None:
    """The lecture's first look: one (key, value) from the reader, e.g. heart.csv:2."""
    filename_queue = loaders.string_input_producer([str(path)], num_epochs=1)
    reader = loaders.TextLineReader(skip_header_lines=1)
    key, value = reader.read(filename_queue)
    print(f"key {key.decode()}  value {value.decode()}")


def train_tf1(path: Path, epochs: int) -> float:
    """TF1 style: queues and threads feed shuffled batches; returns the last accuracy."""
    filename_queue = loaders.string_input_producer([str(path)], num_epochs=epochs)
    reader = loaders.TextLineReader(skip_header_lines=1)

    def read_example() -> list:
        """The op behind the batch: one CSV line read and decoded into [features, label]."""
        _, value = reader.read(filename_queue)
        content = loaders.decode_csv(value, record_defaults=RECORD_DEFAULTS)
        content[4] = torch.tensor(float(FAMHIST[content[4].decode()]))  # Present -> 1, Absent -> 0
        features = torch.stack(content[:N_FEATURES])
        return [features, content[-1]]

    data_batch = loaders.shuffle_batch(
        read_example, batch_size=BATCH_SIZE, capacity=20 * BATCH_SIZE, min_after_dequeue=10 * BATCH_SIZE,
        seed=0, allow_smaller_final_batch=True,
    )
    model, optimizer = make_model()
    coord = loaders.Coordinator()
    threads = loaders.start_queue_runners(coord=coord)
    step, loss_sum, correct, seen, accuracy = 0, 0.0, 0, 0, 0.0
    try:
        while not coord.should_stop():
            features, labels = data_batch()  # TF1: sess.run([data_batch, label_batch])
            batch_loss, batch_correct = train_step(model, optimizer, features, labels)
            step, loss_sum, correct, seen = step + 1, loss_sum + batch_loss, correct + batch_correct, seen + len(labels)
            if step % 10 == 0:
                accuracy = correct / seen
                print(f"[tf1] step {step:3d}: loss {loss_sum / seen:.4f}  accuracy {accuracy:.3f}")
                loss_sum, correct, seen = 0.0, 0, 0
    except loaders.OutOfRangeError:
        if seen:
            accuracy = correct / seen
            print(f"[tf1] step {step:3d}: loss {loss_sum / seen:.4f}  accuracy {accuracy:.3f}")
        print(f"[tf1] done: {epochs} epochs read, {reader.num_records_produced()} records")
    finally:
        coord.request_stop()
    coord.join(threads)
    return accuracy


def train_pytorch(path: Path, epochs: int) -> float:
    """PyTorch style: a streaming CSVDataset in a DataLoader; returns the last epoch's accuracy."""
    dataset = loaders.CSVDataset(path, label_column="chd", categories={"famhist": FAMHIST})
    loader = DataLoader(dataset, batch_size=BATCH_SIZE)
    model, optimizer = make_model()
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        loss_sum, correct, seen = 0.0, 0, 0
        for features, labels in loader:
            batch_loss, batch_correct = train_step(model, optimizer, features, labels)
            loss_sum, correct, seen = loss_sum + batch_loss, correct + batch_correct, seen + len(labels)
        accuracy = correct / seen
        print(f"[pytorch] epoch {epoch}: loss {loss_sum / seen:.4f}  accuracy {accuracy:.3f}")
    return accuracy


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Logistic regression on heart.csv, TF1 style and PyTorch style")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="a CSV in heart.csv's schema")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--style", choices=["both", "tf1", "pytorch"], default="both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    print(f"data: {args.path}")
    if args.style in ("both", "tf1"):
        show_first_record(args.path)
        train_tf1(args.path, args.epochs)
    if args.style in ("both", "pytorch"):
        train_pytorch(args.path, args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
