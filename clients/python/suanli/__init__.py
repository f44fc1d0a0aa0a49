"""The Suanli buyer's client: `suanli.Client` for Python, `suanli` on the command line."""

from suanli.client import ApiError, Client

__all__ = ["ApiError", "Client"]
__version__ = "0.1.0"
