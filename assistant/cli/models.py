"""``assistant models ...``: list, search, show, pull and remove models from the terminal.

cli.main calls add_models_commands(subparsers); handlers return an exit code and
raise AssistantError for expected failures (cli.main prints it as one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from assistant.cli import EXIT_OK
from assistant.errors import AssistantError, DownloadCancelled, NetworkError, RepoNotFound
from assistant.hardware import machine
from assistant.models import catalog, downloads, fit, hub, library
from assistant.models.hub import ModelVariant
from assistant.models.split_files import split_info
from assistant.sizes import human_size

EXIT_INTERRUPTED = 130


def add_models_commands(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list, search, download and remove models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="installed models (and interrupted downloads)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)

    cat = sub.add_parser("catalog", help="curated models that work well (offline list)")
    cat.add_argument("--ctx", type=int, default=4096, help="context size for the fit estimate")
    cat.set_defaults(handler=cmd_catalog)

    search = sub.add_parser("search", help="search Hugging Face for GGUF models")
    search.add_argument("query", nargs="?", default="")
    search.add_argument("--sort", choices=sorted(hub.SORTS), default="downloads")
    search.add_argument("--limit", type=int, default=20)
    search.set_defaults(handler=cmd_search)

    show = sub.add_parser("show", help="a repository's variants with sizes and fit estimates")
    show.add_argument("repo", help="owner/name on Hugging Face")
    show.add_argument("--ctx", type=int, default=4096, help="context size for the fit estimate")
    show.set_defaults(handler=cmd_show)

    pull = sub.add_parser("pull", help="download a model (run again to resume)")
    pull.add_argument("spec", help="owner/repo[:QUANT] or owner/repo/FILE.gguf")
    pull.add_argument("--revision", default="main")
    pull.set_defaults(handler=cmd_pull)

    rm = sub.add_parser("rm", help="delete an installed model")
    rm.add_argument("name", help="file name as shown by `assistant models list`")
    rm.set_defaults(handler=cmd_rm)


# ---------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    library.ensure_starter_model()  # the starter model counts as installed once its package is
    models = library.installed_models()
    partials = downloads.pending()
    if args.json:
        print(
            json.dumps(
                {
                    "installed": [
                        {
                            "name": m.name,
                            "path": str(m.path),
                            "size": m.size,
                            "quantization": m.quantization,
                            "architecture": m.architecture,
                            "starter": m.is_starter,
                        }
                        for m in models
                    ],
                    "partial": [
                        {"repo": p.repo, "filename": p.filename, "size": p.size, "done": p.done}
                        for p in partials
                    ],
                },
                indent=1,
            )
        )
        return EXIT_OK
    if not models:
        print("No models installed. Try `assistant models catalog` or `assistant models pull`.")
    for m in models:
        extra = " (starter)" if m.is_starter else ""
        print(
            f"{m.name:<56} {human_size(m.size):>9}  {m.quantization or '?':<8} "
            f"{m.architecture or '?'}{extra}"
        )
    for p in partials:
        print(
            f"{p.filename:<56} {human_size(p.done):>9}  of {human_size(p.size)}, interrupted: "
            f"`assistant models pull {p.repo}/{p.filename}` resumes it"
        )
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    hw = machine.detect_in_child()
    for entry in catalog.entries():
        shape = fit.ModelShape.from_hint(entry.arch, entry.context_length) if entry.arch else None
        est = {
            v: fit.estimate_variant(v, shape, args.ctx, hw) if shape else None
            for v in entry.variants
        }
        best = fit.recommend(est)
        chosen = est[best] if best else None
        label = chosen.label if chosen else fit.FitVerdict.TOO_LARGE.label
        pick = (
            f"{best.quantization} ~{human_size(best.size or 0)}, {label}" if best else "too large"
        )
        print(f"{entry.name:<32} {entry.params:>5}  {entry.license:<13} {pick}")
        print(f"    {entry.description}")
        print(f"    assistant models pull {best.spec if best else entry.repo}")
    from assistant.models import recommend

    suggestion = recommend.recommend(catalog.entries(), hw, args.ctx)
    if suggestion is not None:
        print(f"\nRecommended for this computer: {suggestion.sentence()}")
        print(f"    assistant models pull {suggestion.variant.spec}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    hits = hub.search(args.query, sort=args.sort, limit=args.limit)
    if not hits:
        print("No GGUF models found.")
    for h in hits:
        gated = "  gated" if h.gated else ""
        when = h.last_modified.date().isoformat() if h.last_modified else ""
        print(
            f"{h.repo:<60} {h.downloads or 0:>10,} downloads {h.likes or 0:>6,} likes {when}{gated}"
        )
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    entry = catalog.find(args.repo)
    try:
        view = hub.repo_view(args.repo)
        variants, gated, license_ = list(view.variants), view.gated, view.license
        note = ""
    except NetworkError:
        if entry is None:
            raise
        variants, gated, license_ = list(entry.variants), entry.gated, entry.license
        note = "Hugging Face is unreachable: showing the built-in catalog (sizes approximate)."
    if not variants:
        raise RepoNotFound(f"{args.repo} has no GGUF model files.")
    hw = machine.detect_in_child()
    shape = _shape_for(args.repo, variants, entry)
    est = {v: fit.estimate_variant(v, shape, args.ctx, hw) if shape else None for v in variants}
    best = fit.recommend(est)

    print(args.repo + ("  (gated: needs a license click and a token)" if gated else ""))
    if license_:
        print(f"License: {license_}")
    if note:
        print(note)
    print(hw.why)
    print(f"Fit for a {args.ctx:,}-token context:")
    for v in variants:
        e = est[v]
        parts = f" ({v.split_parts} parts)" if v.is_split else ""
        approx = "~" if v.approx else ""
        star = "  <- recommended" if v == best else ""
        print(
            f"  {v.quantization:<10} {approx}{human_size(v.size or 0):>9}{parts:<11} "
            f"{e.label if e else 'unknown':<20}{star}"
        )
    if best is not None and est[best] is not None:
        print(est[best].detail)  # type: ignore[union-attr]
        print(f"Download: assistant models pull {best.spec}")
    return EXIT_OK


def _shape_for(repo: str, variants: list[ModelVariant], entry: catalog.CatalogEntry | None):
    """Model dimensions: the catalog's, else the GGUF header read with a Range request."""
    if entry is not None and entry.arch is not None:
        return fit.ModelShape.from_hint(entry.arch, entry.context_length)
    probe = hub.find_variant(variants, None)
    try:
        return fit.ModelShape.from_info(
            downloads.remote_header(repo, probe.filename, size=probe.size)
        )
    except AssistantError as exc:
        print(f"(No fit estimate: {exc})", file=sys.stderr)
        return None


def cmd_pull(args: argparse.Namespace) -> int:
    return pull(_parse_spec(args.spec, args.revision), args.revision)


def pull(variant: ModelVariant, revision: str, dest_dir: Path | None = None) -> int:
    """Download a variant with a progress bar (Ctrl+C pauses; the same command resumes)."""
    name = variant.filename.rsplit("/", 1)[-1]
    cancel = threading.Event()
    bar = _ProgressBar(sys.stderr)
    result: dict[str, object] = {}

    def work() -> None:
        try:
            result["path"] = downloads.download_variant(
                variant, revision=revision, progress=bar.update, cancel=cancel, dest_dir=dest_dir
            )
        except BaseException as exc:  # handed to the main thread
            result["error"] = exc

    # The transfer runs in a thread so Ctrl-C (delivered to the main thread) can pause it cleanly.
    worker = threading.Thread(target=work, name="pull", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        worker.join(10)
    bar.finish()
    error = result.get("error")
    if isinstance(error, DownloadCancelled) or (cancel.is_set() and "path" not in result):
        print(f"Paused {name}; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(error, BaseException):
        raise error
    print(f"Installed {result['path']}")
    return EXIT_OK


def _parse_spec(spec: str, revision: str) -> ModelVariant:
    """``owner/repo``, ``owner/repo:Q4_K_M`` or ``owner/repo/path/file.gguf`` -> a variant."""
    spec = spec.strip()
    if spec.lower().endswith(".gguf") and spec.count("/") >= 2:
        owner, name, filename = spec.split("/", 2)
        repo = f"{owner}/{name}"
        if split_info(filename) is None:
            quant = hub.quantization_from_filename(filename) or filename
            return ModelVariant(repo, quant, (hub.RemoteFile(filename, None, None),))
        return hub.find_variant(_variants(repo, revision), filename)
    repo, _, quant = spec.partition(":")
    if repo.count("/") != 1:
        raise RepoNotFound(f"{spec!r} is not owner/repo[:QUANT] or owner/repo/FILE.gguf.")
    return hub.find_variant(_variants(repo, revision), quant or None)


def _variants(repo: str, revision: str) -> list[ModelVariant]:
    try:
        return list(hub.repo_view(repo, revision=None if revision == "main" else revision).variants)
    except NetworkError:
        entry = catalog.find(repo)
        if entry is None:
            raise
        raise NetworkError(
            f"Hugging Face is unreachable, so {repo} cannot be downloaded now."
        ) from None


def cmd_rm(args: argparse.Namespace) -> int:
    freed = library.delete_model(args.name)
    print(f"Deleted {args.name} ({human_size(freed)} freed).")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------


class _ProgressBar:
    """One self-overwriting line on a terminal; a line every 10% when redirected to a file."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_decile = -1
        self.drawn = False
        self.last_draw = 0.0

    def update(self, p: downloads.Progress) -> None:
        pct = 100 * p.fraction
        speed = f"{p.speed / 1e6:.1f} MB/s" if p.speed else ""
        eta = _duration(p.eta) if p.eta is not None else ""
        part = f" part {p.part}/{p.parts}" if p.parts > 1 else ""
        status = {"checking": "checking", "retrying": "retrying"}.get(p.status, "")
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.1 and p.done < p.total:
                return
            self.last_draw = now
            width = 28
            filled = int(width * p.fraction)
            line = (
                f"\r{p.filename[:32]:<32}{part} [{'#' * filled}{'.' * (width - filled)}] "
                f"{pct:5.1f}% {human_size(p.done)}/{human_size(p.total)} {speed} {eta} {status}"
            )
            self.stream.write(line.ljust(110)[:130])
            self.drawn = True
        else:
            decile = int(pct // 10)
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(
                    f"{p.filename}{part}: {pct:.0f}% of {human_size(p.total)} "
                    f"{speed} {status}\n".replace("  ", " ")
                )
        self.stream.flush()

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
