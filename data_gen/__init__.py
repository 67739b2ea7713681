"""Dataset generation on Ray Data: ``python -m data_gen`` or :func:`generate_dataset`."""

from .directory import DatasetConflictError
from .pipeline import generate_dataset
from .request import GenerationRequest

__all__ = ["DatasetConflictError", "GenerationRequest", "generate_dataset"]
