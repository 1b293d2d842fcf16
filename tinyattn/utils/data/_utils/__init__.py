"""The DataLoader's internals, at PyTorch's paths: collate (default_collate, default_convert), fetch, worker."""
from . import collate, fetch, worker
from .worker import MP_STATUS_CHECK_INTERVAL, ExceptionWrapper

__all__ = ["collate", "fetch", "worker", "MP_STATUS_CHECK_INTERVAL", "ExceptionWrapper"]
