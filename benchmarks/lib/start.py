#!/usr/bin/env python3
"""Start a server in the background and wait until it answers 200 on a URL.

    start.py URL LOGFILE TIMEOUT_S -- COMMAND [ARGS...]

Prints "PID READY_MS" on stdout: the child's pid and the milliseconds from just before the
process was spawned to the first 200 from URL (polled every millisecond over one keep-alive-less
connection per try). The child keeps running after this script exits; the caller stops it by
pid. Exits 1 (and kills the child) if the URL does not answer 200 within TIMEOUT_S.
Standard library only.
"""

import http.client
import os
import subprocess
import sys
import time
import urllib.parse


def main() -> int:
    if len(sys.argv) < 6 or sys.argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    url = urllib.parse.urlsplit(sys.argv[1])
    log = open(sys.argv[2], "ab")
    timeout = float(sys.argv[3])
    command = sys.argv[5:]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if child.poll() is not None:
            print(f"{command[0]} exited with {child.returncode} before answering", file=sys.stderr)
            return 1
        try:
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=0.5)
            connection.request("GET", url.path or "/")
            status = connection.getresponse().status
            connection.close()
            if status == 200:
                ready_ms = (time.perf_counter() - started) * 1000
                print(f"{child.pid} {ready_ms:.1f}")
                return 0
        except OSError:
            pass
        time.sleep(0.001)
    child.kill()
    print(f"{command[0]} did not answer 200 on {sys.argv[1]} within {timeout}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
