"""Browse runs: an overview of ASR with intervals, every transcript, filters, search, a two-run
diff, and human labels (exported from the page, stored with `python -m harness.labels import`).

    python -m harness.view results/runs/smollm2/advbench/prefill/none        # one run
    python -m harness.view results/sweeps/default --out results/view          # a sweep
    python -m harness.view results --serve                                    # a whole tree, served on loopback

The site is a static folder (no network, no build step): open <out>/index.html from disk,
copy it anywhere, or serve it (--serve, http://127.0.0.1:PORT/).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.cli import exits_cleanly
from harness.view.collect import load_runs
from harness.view.site import CHUNK, build

log = logging.getLogger("harness.view")


def serve(folder: Path, port: int) -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
        server.serve_forever()


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.view", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, sweep folders or a results/ tree")
    parser.add_argument("--out", type=Path, default=Path("results/view"), help="the site's folder (default results/view)")
    parser.add_argument("--title", default="", help="the page title (default: the paths)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="transcripts per lazily loaded data file")
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 after building it")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    start = time.perf_counter()
    runs = load_runs(args.paths)
    summary = build(runs, args.out, title=args.title or " ".join(map(str, args.paths)), chunk=max(1, args.chunk))
    print(f"{summary['samples']} samples of {summary['runs']} runs -> {args.out}/index.html "
          f"({summary['chunks']} chunks, {time.perf_counter() - start:.1f} s)")
    if args.serve:
        try:
            serve(args.out, args.port)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
