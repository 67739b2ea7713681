"""Dataset generation on Ray Data: ``python -m data_gen`` or :func:`generate_dataset`.

:func:`ensure_dataset` is the door the sweep runner uses (sciml/ imports nothing else from here).
"""

from .directory import DatasetConflictError
from .pipeline import ensure_dataset, generate_dataset
from .request import GenerationRequest

__all__ = ["DatasetConflictError", "GenerationRequest", "ensure_dataset", "generate_dataset"]
