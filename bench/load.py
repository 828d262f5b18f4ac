"""Load test: concurrent clients on the Denoising tab, through the app's queue, as the app serves it.

    python bench/load.py                     # 8 clients for 2 minutes (about 2.5 minutes in all on 2 cores)
    python bench/load.py --quick             # 8 clients for 30 seconds
    python bench/load.py --clients 16 --seconds 300 --images 10 --steps 50

The whole app is served in this process on a free port by ``app.serve``, as ``app.main`` serves it
(2 jobs at a time, at most 64 waiting). Each client is a thread with its own ``gradio_client.Client`` calling the
Denoising tab's ``/denoise_grid`` endpoint in a loop — ddpm-mnist, DDIM, ``--images`` images, ``--steps`` steps, a
fresh seed each time — until ``--seconds`` have passed; the request in flight at the deadline is still awaited.
Latency is from submitting a request to having its result (queue wait + sampling + writing the run + the client
downloading the grid). Every answer is checked (the grid file exists, the text names the image count).

``unanswered`` counts requests that got no answer within ``--request-timeout`` seconds. Runs go to a temporary
folder (deleted afterwards) unless ``LAB_RUNS_DIR`` is set. Prints ONE JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")



def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(values, q)), 3)


def request_args(images: int, steps: int, seed: int) -> dict:
    return dict(model="ddpm-mnist", sampler="ddim", steps=steps, eta=0.0, lsteps=10, leps=2e-5, ldenoise=True,
                n=images, snapshots=min(10, steps + 1), seed=seed)


class Client(threading.Thread):
    """One browser-like client: its own connection, one request at a time until the deadline."""

    def __init__(self, index: int, url: str, args, start_at: float, deadline: float, seeds):
        super().__init__(daemon=True, name=f"client-{index}")
        self.index, self.url, self.args = index, url, args
        self.start_at, self.deadline, self.seeds = start_at, deadline, seeds
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.unanswered = 0
        self.started = 0

    def run(self) -> None:
        from gradio_client import Client as GradioClient

        try:
            client = GradioClient(self.url, verbose=False)
        except Exception as err:  # noqa: BLE001 — a client that cannot connect is an error, not a crash
            self.errors.append(f"connect: {type(err).__name__}: {err}")
            return
        time.sleep(max(0.0, self.start_at - time.monotonic()))
        while time.monotonic() < self.deadline:
            seed = next(self.seeds)
            self.started += 1
            began = time.monotonic()
            job = client.submit(**request_args(self.args.images, self.args.steps, seed), api_name="/denoise_grid")
            try:
                grid, _samples, info, *_ = job.result(timeout=self.args.request_timeout)
            except TimeoutError:
                self.unanswered += 1
                job.cancel()
                continue
            except Exception as err:  # noqa: BLE001 — counted and reported
                self.errors.append(f"{type(err).__name__}: {err}"[:300])
                continue
            latency = time.monotonic() - began
            if not (grid and Path(grid).is_file() and f"{self.args.images} images" in str(info)):
                self.errors.append(f"bad answer for seed {seed}: {str(info)[:200]}")
                continue
            self.latencies.append(latency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 seconds instead of 120")
    parser.add_argument("--seconds", type=float, default=None, help="how long the clients send requests (default 120)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--images", type=int, default=4, help="images per request")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps per request")
    parser.add_argument("--request-timeout", type=float, default=300.0,
                        help="seconds after which a request counts as unanswered")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args()
    seconds = args.seconds if args.seconds is not None else (30.0 if args.quick else 120.0)

    import itertools

    import torch

    torch.set_num_threads(args.threads)
    runs_tmp = None
    if not os.environ.get("LAB_RUNS_DIR"):
        runs_tmp = tempfile.mkdtemp(prefix="lab-load-runs-")
        os.environ["LAB_RUNS_DIR"] = runs_tmp

    from gradio_client import Client as GradioClient

    import app
    from lab.config import cpu_name
    from lab.device import resolve_device

    demo, url = app.serve(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        began = time.monotonic()  # warm-up: the first request loads the model
        GradioClient(url, verbose=False).predict(**request_args(args.images, args.steps, 0), api_name="/denoise_grid")
        warmup = time.monotonic() - began

        seeds = itertools.count(1)
        start_at = time.monotonic() + 2.0  # every client connected before the clock starts
        deadline = start_at + seconds
        clients = [Client(i, url, args, start_at, deadline, seeds) for i in range(args.clients)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=max(0.0, deadline - time.monotonic()) + args.request_timeout + 30)
        wall = time.monotonic() - start_at
    finally:
        demo.close()
        if runs_tmp:
            shutil.rmtree(runs_tmp, ignore_errors=True)

    latencies = sorted(x for c in clients for x in c.latencies)
    errors = [e for c in clients for e in c.errors]
    hung = sum(c.is_alive() for c in clients)  # a client still waiting after the join timeout
    out = {
        "clients": args.clients,
        "seconds": seconds,
        "requests": sum(c.started for c in clients),
        "answered": len(latencies),
        "errors": len(errors),
        "unanswered": sum(c.unanswered for c in clients) + hung,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p90_s": percentile(latencies, 90),
        "latency_p99_s": percentile(latencies, 99),
        "latency_max_s": round(latencies[-1], 3) if latencies else None,
        "latency_mean_s": round(sum(latencies) / len(latencies), 3) if latencies else None,
        "throughput_rps": round(len(latencies) / wall, 3) if wall > 0 else None,
        "images_per_s": round(len(latencies) * args.images / wall, 2) if wall > 0 else None,
        "wall_seconds": round(wall, 1),
        "warmup_seconds": round(warmup, 2),
        "request": f"/denoise_grid: ddpm-mnist, DDIM {args.steps} steps, {args.images} images, "
                   f"{request_args(args.images, args.steps, 0)['snapshots']} snapshots, a new seed each time",
        "queue": app.QUEUE,
        "device": str(resolve_device()),
        "threads": torch.get_num_threads(),
        "machine": cpu_name(),
        "error_samples": errors[:5],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
