"""One replica of an MXTrain job that only does the rendezvous, the way
ps-lite does it, from the environment the MXNet operator gives its pods.

The scheduler listens on DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT. Servers and
workers connect to it and register ("register ROLE ID"); once
DMLC_NUM_SERVER servers and DMLC_NUM_WORKER workers have, the scheduler
answers each "ok", waits until every node has hung up, and exits 0. A
server or worker exits 0 as soon as it has its "ok". Every node also checks
MX_CONFIG against DMLC_ROLE, and records its pid for the test's teardown.
"""

import json
import os
import socket
import sys
import time

TIMEOUT = 30


def record_pid(role, index):
    path = os.environ.get("MXJOB_TEST_PIDS")
    if path:
        with open(path, "a") as f:
            f.write(f"{role} {index} {os.getpid()}\n")


def scheduler(host, port, servers, workers):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(16)
    listener.settimeout(TIMEOUT)
    registered = {"server": set(), "worker": set()}
    nodes = []
    while len(registered["server"]) < servers or len(registered["worker"]) < workers:
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        words = conn.makefile("r").readline().split()
        if len(words) != 3 or words[0] != "register" or words[1] not in registered:
            print(f"bad registration: {words}", flush=True)
            return 2
        registered[words[1]].add(words[2])
        nodes.append(conn)
        print(f"registered {words[1]} {words[2]}", flush=True)
    for conn in nodes:
        conn.sendall(b"ok\n")
    for conn in nodes:
        conn.recv(1)  # the node hangs up once it has its answer
        conn.close()
    print(f"all nodes registered: {servers} servers, {workers} workers", flush=True)
    return 0


def node(role, index, host, port):
    deadline = time.time() + TIMEOUT
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                print("the scheduler never answered", flush=True)
                return 3
            time.sleep(0.1)
    conn.settimeout(TIMEOUT)
    conn.sendall(f"register {role} {index}\n".encode())
    answer = conn.makefile("r").readline().strip()
    if answer != "ok":
        print(f"unexpected answer {answer!r}", flush=True)
        return 4
    print(f"{role} {index} registered", flush=True)
    conn.close()
    return 0


def main():
    role = os.environ["DMLC_ROLE"]
    config = json.loads(os.environ["MX_CONFIG"])
    index = config["task"]["index"]
    record_pid(role, index)
    if config["task"]["type"] != role:
        print(f"MX_CONFIG says {config['task']['type']}, DMLC_ROLE says {role}", flush=True)
        return 5
    if role == "worker" and os.environ.get("DMLC_WORKER_ID") != str(index):
        print("DMLC_WORKER_ID does not match the task index", flush=True)
        return 6
    host = os.environ["DMLC_PS_ROOT_URI"]
    port = int(os.environ["DMLC_PS_ROOT_PORT"])
    if config["cluster"]["scheduler"][0]["port"] != port:
        print("MX_CONFIG's scheduler port is not DMLC_PS_ROOT_PORT", flush=True)
        return 7
    if role == "scheduler":
        servers = int(os.environ["DMLC_NUM_SERVER"])
        workers = int(os.environ["DMLC_NUM_WORKER"])
        return scheduler(host, port, servers, workers)
    return node(role, index, host, port)


if __name__ == "__main__":
    sys.exit(main())
