"""SIP status codes and their reason phrases (RFC 3261 §21 and extensions)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["StatusCode", "reason_phrase"]


class StatusCode(IntEnum):
    """Registered SIP response codes; ``phrase`` is the default reason phrase."""

    TRYING = 100
    RINGING = 180
    CALL_IS_BEING_FORWARDED = 181
    QUEUED = 182
    SESSION_PROGRESS = 183
    EARLY_DIALOG_TERMINATED = 199
    OK = 200
    ACCEPTED = 202
    NO_NOTIFICATION = 204
    MULTIPLE_CHOICES = 300
    MOVED_PERMANENTLY = 301
    MOVED_TEMPORARILY = 302
    USE_PROXY = 305
    ALTERNATIVE_SERVICE = 380
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    PAYMENT_REQUIRED = 402
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    PROXY_AUTHENTICATION_REQUIRED = 407
    REQUEST_TIMEOUT = 408
    GONE = 410
    CONDITIONAL_REQUEST_FAILED = 412
    REQUEST_ENTITY_TOO_LARGE = 413
    REQUEST_URI_TOO_LONG = 414
    UNSUPPORTED_MEDIA_TYPE = 415
    UNSUPPORTED_URI_SCHEME = 416
    UNKNOWN_RESOURCE_PRIORITY = 417
    BAD_EXTENSION = 420
    EXTENSION_REQUIRED = 421
    SESSION_INTERVAL_TOO_SMALL = 422
    INTERVAL_TOO_BRIEF = 423
    BAD_LOCATION_INFORMATION = 424
    USE_IDENTITY_HEADER = 428
    PROVIDE_REFERRER_IDENTITY = 429
    FLOW_FAILED = 430
    ANONYMITY_DISALLOWED = 433
    BAD_IDENTITY_INFO = 436
    UNSUPPORTED_CERTIFICATE = 437
    INVALID_IDENTITY_HEADER = 438
    FIRST_HOP_LACKS_OUTBOUND_SUPPORT = 439
    MAX_BREADTH_EXCEEDED = 440
    BAD_INFO_PACKAGE = 469
    CONSENT_NEEDED = 470
    TEMPORARILY_UNAVAILABLE = 480
    CALL_TRANSACTION_DOES_NOT_EXIST = 481
    LOOP_DETECTED = 482
    TOO_MANY_HOPS = 483
    ADDRESS_INCOMPLETE = 484
    AMBIGUOUS = 485
    BUSY_HERE = 486
    REQUEST_TERMINATED = 487
    NOT_ACCEPTABLE_HERE = 488
    BAD_EVENT = 489
    REQUEST_PENDING = 491
    UNDECIPHERABLE = 493
    SECURITY_AGREEMENT_REQUIRED = 494
    SERVER_INTERNAL_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    SERVER_TIMEOUT = 504
    VERSION_NOT_SUPPORTED = 505
    MESSAGE_TOO_LARGE = 513
    PUSH_NOTIFICATION_SERVICE_NOT_SUPPORTED = 555
    PRECONDITION_FAILURE = 580
    BUSY_EVERYWHERE = 600
    DECLINE = 603
    DOES_NOT_EXIST_ANYWHERE = 604
    GLOBAL_NOT_ACCEPTABLE = 606
    UNWANTED = 607
    REJECTED = 608

    @property
    def phrase(self) -> str:
        return _PHRASES.get(self.value) or self.name.replace("_", " ").title()


# Phrases whose spelling the title-cased member name would get wrong.
_PHRASES: dict[int, str] = {
    100: "Trying",
    181: "Call Is Being Forwarded",
    200: "OK",
    204: "No Notification",
    302: "Moved Temporarily",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    416: "Unsupported URI Scheme",
    428: "Use Identity Header",
    439: "First Hop Lacks Outbound Support",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    488: "Not Acceptable Here",
    504: "Server Time-out",
    505: "Version Not Supported",
    555: "Push Notification Service Not Supported",
    604: "Does Not Exist Anywhere",
}

# RFC 3261 §21: an unknown code is treated like the x00 code of its class.
_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(code: int) -> str:
    """The default reason phrase for ``code`` (a generic one for unregistered codes)."""
    try:
        return StatusCode(code).phrase
    except ValueError:
        return _CLASS_PHRASES.get(code // 100, "Unknown")
