"""Download throughput: models.downloads against a plain HTTP client, same file, same local server.

    .venv/bin/python tests/benchmarks/bench_downloads.py [--mb 256] [--runs 3]

Both fetch the file from tests/hfserver.py's fake Hub over loopback. downloads.py does more work
per byte (sha256, fsync, progress callbacks) and resolves through huggingface_hub first; the
ratio shows what that costs. Best of N runs each, to dampen noise on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.hfserver import HFServer  # noqa: E402

REPO, FILE = "bench/Big-GGUF", "big-Q8_0.gguf"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    data = os.urandom(args.mb * 2**20)
    server = HFServer()
    home = tempfile.mkdtemp(prefix="bench-dl-")
    os.environ["ASSISTANT_HOME"] = home
    os.environ["HF_ENDPOINT"] = server.url
    server.add_repo(REPO, {FILE: data})
    from assistant import paths
    from assistant.models import downloads

    cdn_url = f"{server.cdn}/cdn/{REPO}/{FILE}"
    out = Path(home) / "plain.bin"

    def ours() -> None:
        downloads.download_file(REPO, FILE).unlink()

    def plain_httpx() -> None:
        import httpx2

        with httpx2.stream("GET", cdn_url) as r, out.open("wb") as f:
            for chunk in r.iter_raw():
                f.write(chunk)
        out.unlink()

    def plain_httpx_sha() -> None:
        import httpx2

        h = hashlib.sha256()
        with httpx2.stream("GET", cdn_url) as r, out.open("wb") as f:
            for chunk in r.iter_raw():
                f.write(chunk)
                h.update(chunk)
        out.unlink()

    def plain_urllib() -> None:
        with urllib.request.urlopen(cdn_url) as r, out.open("wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        out.unlink()

    results = {}
    for name, fn in [
        ("urllib (plain)", plain_urllib),
        ("httpx2 (plain)", plain_httpx),
        ("httpx2 + sha256", plain_httpx_sha),
        ("assistant.models.downloads", ours),
    ]:
        best = min(_time(fn) for _ in range(args.runs))
        results[name] = len(data) / best / 1e6
    server.close()

    base = results["httpx2 (plain)"]
    print(f"{args.mb} MiB over loopback, best of {args.runs} (machine: {os.cpu_count()} cpus)")
    for name, mbps in results.items():
        print(f"  {name:<22} {mbps:8.1f} MB/s   ratio vs plain httpx2: {mbps / base:5.2f}")
    assert not list(paths.partial_dir().iterdir())


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
