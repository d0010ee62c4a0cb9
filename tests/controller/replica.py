"""A stand-in replica for the controller tests: it records its pid (for the
test's teardown) and each run (in --count), optionally waits for a file to
appear and sleeps, then exits with the code of this run (--exits: the codes
of successive runs, the last one repeating).
"""

import argparse
import json
import os
import sys
import time

# A replica waiting for a file never outlives a test by much.
MAX_WAIT = 120


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sleep", type=float, default=0)
    parser.add_argument("--wait-file")
    parser.add_argument("--count")
    parser.add_argument("--exits", default="0")
    args = parser.parse_args()

    role = os.environ.get("DMLC_ROLE", "?")
    index = json.loads(os.environ.get("MX_CONFIG", "{}")).get("task", {}).get("index", 0)
    pids = os.environ.get("MXJOB_TEST_PIDS")
    if pids:
        with open(pids, "a") as f:
            f.write(f"{role} {index} {os.getpid()}\n")
    run = 1
    if args.count:
        with open(args.count, "a") as f:
            f.write(f"{os.getpid()}\n")
        with open(args.count) as f:
            run = len(f.read().splitlines())
    print(f"{role} {index} run {run} started", flush=True)
    if args.wait_file:
        deadline = time.time() + MAX_WAIT
        while not os.path.exists(args.wait_file):
            if time.time() > deadline:
                return 3
            time.sleep(0.05)
    if args.sleep:
        time.sleep(args.sleep)
    codes = [int(code) for code in args.exits.split(",")]
    code = codes[min(run, len(codes)) - 1]
    print(f"{role} {index} run {run} exits {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
