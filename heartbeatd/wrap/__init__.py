"""`heartbeatd exec`: run a job and report its start, output and exit status.

The wrapper sends `<url>/start?rid=…`, runs the command (no shell), copies its
stdout and stderr through as they arrive while keeping the last N bytes of the
combined output, and then POSTs that tail to `<url>/<exit status>?rid=…`.

Pings never block or fail the job: each ping is retried a bounded number of
times within `ping_timeout` seconds in all, and a ping that still fails costs
one warning line on stderr, never the job's exit code.

What lives where (import-linter keeps the order):

    run.py      run_wrapped and main: start ping, the job, its ending's ping;
                --every's loop; Job, through which the CLI forwards signals
    pinger.py   one run's pings: bounded retries and backoff within
                --ping-timeout, timed on the Clock; "unknown monitor" on a 404
    output.py   copying the job's stdout and stderr through, keeping the tail
    options.py  ExecOptions, Action (--on-*), and the monitor's URL from the
                command line (build_url)
"""

from heartbeatd.wrap.options import Action, ExecOptions, build_url
from heartbeatd.wrap.output import OutputTail
from heartbeatd.wrap.run import FORWARDED_SIGNALS, PREFIX, Job, WhileRunning, main, run_wrapped

__all__ = [
    "FORWARDED_SIGNALS",
    "PREFIX",
    "Action",
    "ExecOptions",
    "Job",
    "OutputTail",
    "WhileRunning",
    "build_url",
    "main",
    "run_wrapped",
]
