"""In-memory examples and the model's input channels (SPEC section 4, ``sciml.core.layout.CHANNELS``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch

from sciml.core.layout import COEFF_COLUMNS
from sciml.core.statistics import example_statistics


@dataclass
class FieldSet:
    """Examples held as tensors, sorted by index: sources, coefficients, solutions."""

    index: torch.Tensor  # (N,) int64
    source: torch.Tensor  # (N, n, n) float32
    coeffs: torch.Tensor  # (N, 6) float32, COEFF_COLUMNS order
    solution: torch.Tensor  # (N, n, n) float32

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.source.shape[-1])

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> "FieldSet":
        # Sorting by (origin, index) makes the order independent of how Ray delivered blocks.
        origin = np.asarray(columns.get("origin", np.zeros(len(columns["index"]), np.int64)))
        order = np.lexsort((np.asarray(columns["index"]), origin))
        coeffs = np.stack([np.asarray(columns[c], dtype=np.float64) for c in COEFF_COLUMNS], axis=1)
        return cls(
            index=torch.from_numpy(np.asarray(columns["index"], dtype=np.int64)[order]),
            source=torch.from_numpy(np.ascontiguousarray(np.asarray(columns["source"], np.float32)[order])),
            coeffs=torch.from_numpy(coeffs[order].astype(np.float32)),
            solution=torch.from_numpy(np.ascontiguousarray(np.asarray(columns["solution"], np.float32)[order])),
        )

    @classmethod
    def from_batches(cls, batches: Iterable[Mapping[str, np.ndarray]]) -> "FieldSet":
        """Concatenate numpy batches (as Ray Data or pyarrow yield them)."""
        wanted = ("index", "source", "solution") + COEFF_COLUMNS
        parts: dict[str, list[np.ndarray]] = {k: [] for k in wanted + ("origin",)}
        for batch in batches:
            for k in wanted:
                parts[k].append(np.asarray(batch[k]))
            if "origin" in batch:
                parts["origin"].append(np.asarray(batch["origin"]))
        if not parts["origin"]:
            del parts["origin"]
        if not parts["index"]:
            raise ValueError("dataset is empty: no examples to load")
        return cls.from_columns({k: np.concatenate(v) for k, v in parts.items()})

    def subset(self, rows: torch.Tensor | slice) -> "FieldSet":
        return FieldSet(self.index[rows], self.source[rows], self.coeffs[rows], self.solution[rows])

    def inputs(self, rows: torch.Tensor | slice | None = None) -> torch.Tensor:
        """The model input (B, 7, n, n): f, then each constant coefficient broadcast."""
        rows = slice(None) if rows is None else rows
        return assemble_inputs(self.source[rows], self.coeffs[rows])

    def targets(self, rows: torch.Tensor | slice | None = None) -> torch.Tensor:
        rows = slice(None) if rows is None else rows
        return self.solution[rows].unsqueeze(1)

    def example_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per example rms(f) and |coefficients|, as the manifests compute them (SPEC section 5)."""
        columns = {"source": self.source.cpu().numpy()}
        coeffs = self.coeffs.cpu().double().numpy()
        columns.update({c: coeffs[:, j] for j, c in enumerate(COEFF_COLUMNS)})
        return example_statistics(columns)


def assemble_inputs(source: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Stack (B, n, n) sources and (B, 6) constant coefficients into (B, 7, n, n): core.layout.CHANNELS."""
    batch, n = source.shape[0], source.shape[-1]
    grid = coeffs[:, :, None, None].expand(batch, coeffs.shape[1], n, n)
    return torch.cat([source.unsqueeze(1), grid], dim=1)

