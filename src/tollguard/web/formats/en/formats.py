"""English formats: ISO 8601 dates, and times to the second.

Operators compare CDR times with switch logs and SIP traces, which run to the second
(and the web app shows UTC throughout): Django's "March 1, 2026, 12:05 p.m." hides the
seconds and sorts badly. Numbers keep Django's English defaults.
"""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i:s"
