"""Browse runs: an overview of ASR with intervals, every transcript, filters, search, a two-run
diff, and human labels (exported from the page, stored with `python -m harness labels import`).

    python -m harness view results/runs/smollm2/advbench/prefill/none        # one run
    python -m harness view results/sweeps/default --out results/view          # a sweep
    python -m harness view results --serve                                    # a whole tree, served on loopback

The site is a static folder (no network, no build step): open <out>/index.html from disk,
copy it anywhere, or serve it (--serve, http://127.0.0.1:PORT/).
"""

from __future__ import annotations

import argparse
import errno
import functools
import http.server
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.cli.exits import exits_cleanly
from harness.errors import HarnessError
from harness.view.collect import load_runs
from harness.view.site import CHUNK, build, check_out

log = logging.getLogger("harness.view")


class Server(http.server.ThreadingHTTPServer):
    allow_reuse_port = False  # never share a port another program listens on


def listen(folder: Path, port: int) -> Server:
    """The server for the site, bound to 127.0.0.1:port (before the site is built: a busy port fails fast)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    try:
        return Server(("127.0.0.1", port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise HarnessError(f"port {port} on 127.0.0.1 is in use; choose another with --port, "
                               "or --port 0 for a free one") from exc
        raise HarnessError(f"cannot listen on port {port} on 127.0.0.1 ({exc.strerror}); choose another with "
                           "--port, or --port 0 for a free one") from exc


def serve(server: Server, folder: Path) -> None:
    print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def shown(path: Path) -> str:
    """A path for the page's default title: as given, or relative to the working folder, never this machine's
    absolute path (the site is meant to be copied)."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd())) or "."
    except ValueError:
        return path.name or str(path)


def make_parser() -> argparse.ArgumentParser:
    """The command's arguments (also what the docs test parses the guides' commands with)."""
    parser = argparse.ArgumentParser(prog="python -m harness view", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run folders, sweep folders or a results/ tree")
    parser.add_argument("--out", type=Path, default=Path("results/view"),
                        help="the site's folder: new, empty, or a site built here before (default results/view)")
    parser.add_argument("--title", default="", help="the page title (default: the paths)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="transcripts per lazily loaded data file")
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 after building it")
    parser.add_argument("--port", type=int, default=8000, help="the port for --serve (0: a free one)")
    return parser


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    # every argument checked before anything is read or written
    if args.chunk < 1:
        raise HarnessError(f"--chunk {args.chunk}: give at least 1 transcript per data file (default {CHUNK})")
    if not 0 <= args.port <= 65535:
        raise HarnessError(f"--port {args.port}: give a port from 0 to 65535 (0: a free one)")
    check_out(args.out, args.paths)
    server = listen(args.out, args.port) if args.serve else None
    try:
        start = time.perf_counter()
        runs = load_runs(args.paths)
        summary = build(runs, args.out, title=args.title or " ".join(map(shown, args.paths)), chunk=args.chunk)
        print(f"{summary['samples']} samples of {summary['runs']} runs -> {args.out}/index.html "
              f"({summary['chunks']} chunks, {time.perf_counter() - start:.1f} s)")
        if server is not None:
            serve(server, args.out)
    finally:
        if server is not None:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
