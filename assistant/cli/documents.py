"""``assistant docs ...``: collections of the person's files, searched to answer from them.

``add`` indexes files and folders into a collection (through this machine's engine, which
embeds the passages), ``update`` brings one up to date (new, changed and removed files, and
whatever an interrupted run left), ``list`` shows them, ``search`` finds passages, ``rm``
deletes a collection or takes a file or folder out of it. ``assistant chat --docs NAME`` answers
from a collection.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from assistant.cli import EXIT_OK
from assistant.errors import AssistantError
from assistant.settings import Settings

EXIT_INTERRUPTED = 130


def add_documents_commands(subparsers: argparse._SubParsersAction) -> None:
    docs = subparsers.add_parser("docs", help="your documents: collections to answer from")
    sub = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add files or folders to a collection and index them")
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add.add_argument("--to", metavar="NAME", help="collection (default: the first folder's name)")
    add.add_argument("--model", help="embedding model GGUF (default: built-in all-MiniLM-L6-v2)")
    add.set_defaults(handler=cmd_add)

    update = sub.add_parser("update", help="re-read changed files, drop removed ones, go on")
    update.add_argument("name")
    update.set_defaults(handler=cmd_update)

    ls = sub.add_parser("list", help="collections, with their files and skipped files")
    ls.add_argument("-v", "--verbose", action="store_true", help="list skipped files and why")
    ls.set_defaults(handler=cmd_list)

    search = sub.add_parser("search", help="the passages of a collection that match a question")
    search.add_argument("name")
    search.add_argument("query", nargs="+")
    search.add_argument("-n", "--limit", type=int, default=5)
    search.add_argument("--mode", choices=("fused", "vector", "keyword"), default="fused")
    search.set_defaults(handler=cmd_search)

    models = sub.add_parser("models", help="embedding models: the built-in one and the catalog's")
    models.set_defaults(handler=cmd_models)

    pull = sub.add_parser("pull", help="download a catalog embedding model (REPO[:QUANT])")
    pull.add_argument("spec", metavar="REPO[:QUANT]")
    pull.set_defaults(handler=cmd_pull)

    rm = sub.add_parser("rm", help="delete a collection, or take a file or folder out of it")
    rm.add_argument("name")
    rm.add_argument("path", nargs="?", type=Path, help="only this file or folder")
    rm.set_defaults(handler=cmd_rm)


def cmd_add(args: argparse.Namespace) -> int:
    from assistant.documents import embedding_models
    from assistant.documents.index import DocumentIndex

    sources = []
    for path in args.paths:
        resolved = path.expanduser().resolve()
        if not resolved.exists():
            raise AssistantError(f"No such file or folder: {path}")
        sources.append(resolved)
    name = args.to or (sources[0].name if sources[0].is_dir() else sources[0].stem)
    with DocumentIndex() as index:
        try:
            collection = index.collection(name)
        except AssistantError:
            collection = index.create(name, _embedding_model(args.model, embedding_models))
        for source in sources:
            index.add_source(collection, source)
        return _index(index, index.collection(name))


def cmd_update(args: argparse.Namespace) -> int:
    from assistant.documents.index import DocumentIndex

    with DocumentIndex() as index:
        return _index(index, index.collection(args.name))


def _embedding_model(wanted: str | None, embedding_models) -> str:  # noqa: ANN001
    if wanted:
        path = Path(wanted).expanduser()
        if path.is_file():  # a GGUF elsewhere: installed beside the built-in one
            from assistant import paths

            target = paths.embedding_models_dir() / path.name
            if not target.exists():
                target.write_bytes(path.read_bytes())
            return target.name
        names = [p.name for p in embedding_models.installed()]
        for name in names:
            if wanted in (name, name.removesuffix(".gguf")):
                return name
        raise AssistantError(
            f"No embedding model named '{wanted}' (installed: {', '.join(names) or 'none'})."
        )
    builtin = embedding_models.ensure_builtin()
    if builtin is None:
        raise AssistantError(
            "No embedding model: the built-in one comes from a package that is not installed. "
            f"Install it with `{embedding_models.BUILTIN_HINT}`, or name a GGUF with --model."
        )
    return builtin.name


def _index(index, collection) -> int:  # noqa: ANN001
    from assistant.cli.chat import local_engine
    from assistant.documents import embedding_models
    from assistant.documents.indexer import Indexer, Progress

    if collection.embedding_model == embedding_models.BUILTIN_FILE:
        embedding_models.ensure_builtin()
    stop = threading.Event()
    tty = sys.stderr.isatty()

    def show(p: Progress) -> None:
        if p.path and (tty or p.done % 100 == 0):
            line = f"Indexing {collection.name}: {p.done + 1}/{p.total} {Path(p.path).name}"
            print(("\r" + line[:100].ljust(100)) if tty else line, end="" if tty else "\n",
                  file=sys.stderr, flush=True)  # fmt: skip

    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with local_engine(Settings.load()) as (client, _supervisor):
            embed = embedding_models.passage_embedder(client.embed, collection.embedding_model)
            indexer = Indexer(index, embed, progress=show, stop=stop)
            result = indexer.run(collection)
    finally:
        signal.signal(signal.SIGINT, previous)
        if tty:
            print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
    after = index.collection(collection.name)
    print(f"{after.name}: {after.indexed} files indexed ({after.chunks} passages), "
          f"{after.skipped} skipped, {after.pending} to go")  # fmt: skip
    if result.removed:
        print(f"  {result.removed} files no longer there were dropped")
    for path, reason in result.skipped:
        print(f"  skipped {path}: {reason}")
    for source in result.missing_sources:
        print(f"  not found now (kept as it was): {source}")
    if result.stopped:
        print(f"Stopped. `assistant docs update {after.name}` goes on where this left off.",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from assistant.documents.index import DocumentIndex

    with DocumentIndex() as index:
        collections = index.collections()
        if not collections:
            print("No collections yet. Add one with `assistant docs add FOLDER`.")
            return EXIT_OK
        for c in collections:
            print(f"{c.name}: {c.indexed} files, {c.chunks} passages, {c.skipped} skipped, "
                  f"{c.pending} to go ({c.embedding_model})")  # fmt: skip
            for source in c.sources:
                print(f"  {source}")
            if args.verbose:
                for state in index.file_states(c).values():
                    if state.status == "skipped":
                        print(f"  skipped {state.path}: {state.reason}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.cli.chat import local_engine
    from assistant.documents import retrieval
    from assistant.documents.index import DocumentIndex

    query = " ".join(args.query)
    with DocumentIndex() as index:
        collection = index.collection(args.name)
        vector = None
        if args.mode != "keyword":
            from assistant.documents.embedding_models import prefixes

            before, _ = prefixes(collection.embedding_model)
            with local_engine(Settings.load()) as (client, _):
                model = collection.embedding_model
                vector = client.embed([before + query], model, interactive=True)[0]
        hits = retrieval.search(index, [collection], query, vector, args.limit, args.mode)
    if not hits:
        print("Nothing found.")
    for n, hit in enumerate(hits, 1):
        where = f", {hit.passage.where}" if hit.passage.where else ""
        print(f"[{n}] {hit.passage.path}{where}")
        text = " ".join(hit.passage.text.split())
        print(f"    {text[:300]}{'...' if len(text) > 300 else ''}")
    return EXIT_OK


def cmd_rm(args: argparse.Namespace) -> int:
    from assistant.documents.index import DocumentIndex

    with DocumentIndex() as index:
        if args.path is None:
            index.remove_collection(args.name)
            print(f"Deleted the collection {args.name}, with its passages.")
            return EXIT_OK
        collection = index.collection(args.name)
        path = args.path.expanduser().resolve()
        count = index.remove_source(collection, path)
        print(f"Took {path} out of {args.name} ({count} files).")
    return EXIT_OK


def cmd_models(_args: argparse.Namespace) -> int:
    from assistant.documents import embedding_models
    from assistant.sizes import human_size

    installed = {p.name for p in embedding_models.installed()}
    builtin = embedding_models.BUILTIN_FILE
    state = (
        "installed"
        if builtin in installed
        else (
            "made at first use" if embedding_models.builtin_source() else "its package is missing"
        )
    )
    print(f"{embedding_models.BUILTIN_NAME} (built-in, English, 384 dimensions): {state}")
    for model in embedding_models.catalog_models():
        e = model.entry
        print(f"{e.repo}  {e.name}, {e.params}, {model.languages}, {model.dimensions} dimensions, "
              f"{e.license}")  # fmt: skip
        print(f"    {e.description}")
        for v in e.variants:
            file = v.files[0].filename.rsplit("/", 1)[-1]
            mark = "installed" if file in installed else f"~{human_size(v.size or 0)}"
            print(f"    {e.repo}:{v.quantization}  {mark}")
    others = sorted(installed - {builtin} - {
        f.filename.rsplit("/", 1)[-1] for m in embedding_models.catalog_models()
        for v in m.entry.variants for f in v.files
    })  # fmt: skip
    for name in others:
        print(f"{name} (installed by you)")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    from assistant import paths
    from assistant.cli.models import pull
    from assistant.documents import embedding_models
    from assistant.models import hub

    repo, _, quant = args.spec.partition(":")
    model = embedding_models.find(repo)
    if model is None:
        names = ", ".join(m.entry.repo for m in embedding_models.catalog_models())
        raise AssistantError(f"{repo} is not in the embedding catalog ({names}).")
    variant = hub.find_variant(model.entry.variants, quant or None)
    return pull(variant, "main", paths.embedding_models_dir())
