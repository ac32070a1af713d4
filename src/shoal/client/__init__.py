"""Typed HTTP client of the shoal API (httpx, injectable transport)."""

from shoal.client.client import ShoalClient
from shoal.client.errors import ApiError, ApiUnreachable

__all__ = ["ApiError", "ApiUnreachable", "ShoalClient"]
