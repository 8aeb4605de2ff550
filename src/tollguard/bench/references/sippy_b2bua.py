"""Run sippy's simple B2BUA (``sippy.b2bua_simple``) as the benchmark reference.

Usage: ``python -m tollguard.bench.references.sippy_b2bua [--workers N] -f -l HOST -p PORT
-n GATEWAY:PORT``; every option but ``--workers`` goes to sippy unchanged.

sippy sends through a pool of threads (three by default) sharing one queue, so a 200
can leave before the 180 queued just ahead of it; SIPp then counts the call as failed
on the late 180. One sender thread (the default here) keeps responses in order, which
is also what RFC 3261 section 17.2.1 expects of a server transaction's responses.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    workers = 1
    if "--workers" in args:
        at = args.index("--workers")
        workers = int(args[at + 1])
        del args[at : at + 2]
    # Imported here: sippy is a test-only dependency, needed only when the reference runs.
    from sippy.Udp_server import Udp_server_opts

    Udp_server_opts.nworkers = workers
    from sippy.b2bua_simple import main_func

    sys.argv = [sys.argv[0], *args]
    main_func()
    return 0


if __name__ == "__main__":
    sys.exit(main())
