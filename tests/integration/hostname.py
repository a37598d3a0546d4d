"""``[core] hostname_callable`` of the topology test's cluster (tests/integration/topology.py).

Both Celery workers run on this one machine, so the host name cannot tell them apart: every
task instance records the name of the worker that ran it, from the worker's environment.
Imported by Airflow in every task process: it imports nothing of the tests (tests/conftest.py
would point the task at the test session's data folder).
"""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    return os.environ.get("SOCIALPULSE_TEST_WORKER") or socket.getfqdn()
