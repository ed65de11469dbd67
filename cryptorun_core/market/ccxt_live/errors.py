"""Failures of the ccxt source: reason codes for venue exceptions and the errors it raises."""

from __future__ import annotations

import ccxt

from cryptorun_core.market.base import MarketDataError

#: Failures that say the venue, not the symbol, is in trouble: the rest of the batch is skipped.
VENUE_LEVEL_ERRORS = frozenset({"timeout", "venue_down", "rate_limited"})


class VenueUnavailable(MarketDataError):
    """A venue could not list its markets (after retries); ``reason`` is the reason code."""

    def __init__(self, venue: str, reason: str, detail: str):
        self.venue = venue
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


class FetchFailure(Exception):
    """An already classified failure: a reason code and a (redacted) sentence."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(detail)



def classify_error(exc: BaseException) -> tuple[str, bool, bool] | None:
    """``(reason, retryable, venue_fault)`` for an exception raised while talking to a venue.

    ccxt 4.5's hierarchy: RequestTimeout, ExchangeNotAvailable (→ OnMaintenance),
    DDoSProtection and RateLimitExceeded are *siblings* under NetworkError (RateLimitExceeded is
    no longer a DDoSProtection), BadResponse (→ NullResponse) sits under OperationFailed, and
    BadSymbol under BadRequest/ExchangeError. Order matters: specific classes first.
    Returns None for exceptions that are not about the venue (programming errors), which the
    caller re-raises.
    """
    if isinstance(exc, ccxt.BadSymbol):
        return "bad_symbol", False, False  # our request named something the venue lacks
    if isinstance(exc, ccxt.RequestTimeout):
        return "timeout", True, True
    if isinstance(exc, ccxt.RateLimitExceeded):
        return "rate_limited", True, True
    if isinstance(exc, ccxt.DDoSProtection):  # separate branch: not a RateLimitExceeded in 4.5
        return "rate_limited", True, True
    if isinstance(exc, ccxt.ExchangeNotAvailable):
        return "venue_down", True, True
    if isinstance(exc, ccxt.NetworkError):
        return "venue_down", True, True
    if isinstance(exc, ccxt.BadResponse):
        return "bad_response", True, True
    if isinstance(exc, ccxt.BaseError):
        return "bad_response", False, True  # the venue answered with an error of its own
    if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError)):
        return "bad_response", False, True  # ccxt choked while parsing a malformed payload
    return None
