"""`python -m bench.latency_alone`: the default worker's archive rate under Twilio latency, alone.

`python -m bench --only latency` measures four designs at two conditions, most of its time going
to the slow baselines. A change to the archive path is judged on one figure of it: recvault's
default worker at the Twilio-like condition (0.25 s before each answer, 2 MB/s). This runs just
that measurement (bench.latency's own, on its own stack) and prints it as one JSON line.

It uses the `recvault` and `bench` it imports, so the same command run in a checkout of another
release measures that release: run them alternately on one machine and compare the rates.
"""

from __future__ import annotations

import json

import recvault
from bench import latency
from bench.plan import PLANS
from bench.stack import running_stack
from recvault.simulator.recordings import Faults

TWILIO_LIKE = Faults(first_byte_seconds=latency.CONDITIONS[0][0], bytes_per_second=latency.CONDITIONS[0][1])


def main() -> None:
    plan = PLANS["full"]
    with running_stack() as stack:
        stack.fresh_s3()
        result = latency._recvault(stack, plan, TWILIO_LIKE, plan.latency_count, None)
    print(json.dumps({"recvault": recvault.__file__, **{k: v for k, v in result.items() if not isinstance(v, list)}}))


if __name__ == "__main__":
    main()
