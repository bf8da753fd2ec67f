"""Documents: embeddings, indexing, retrieval at scale and retrieval quality, measured.

Four parts (``--part embed|index|scale|quality``, all by default), the CPU printed first.
llama-server refuses an input longer than the model's 512 tokens, and our engine cuts one when
asked (``truncate``, as the app asks): so llama-server is sent token ids, made and cut in this
process by the same model's tokenizer.

**embed**: texts per second through ``POST /v1/embeddings`` of ``assistant serve`` against
llama-server ``--embedding`` on the same GGUF (the built-in all-MiniLM-L6-v2, converted by us),
in the same run, alternating, medians of ``--rounds``; both must count the same tokens. The
passages are CPython's own documentation topics (``pydoc_data.topics``) cut as documents cut
them, sent in requests of 64 as the indexer sends them (goal: at least 0.95).

**index**: the whole indexing of those topics (one file each: read, cut, embed, store), in pages
of 3,000 characters per minute, with the embeddings from our engine and from llama-server.

**scale**: retrieval over 100,000 passages (this Python's standard library and packages, cut as
documents are, with random unit vectors: the vector search costs the same whatever they are):
the first search (the vectors read from SQLite), then the median of 50 (goal: under 50 ms),
and the database's size.

**quality**: recall@5 of keyword-only, vector-only and fused retrieval over the topics, for 40
questions written for this benchmark, each with the topic that answers it.

    python tests/benchmarks/bench_documents.py --llama-server build/bin/llama-server
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.benchmarks.bench_server import free_port, wait_health  # noqa: E402
from tests.benchmarks.cpu import cpu_line  # noqa: E402

GROUP = 64  # passages per request, as the indexer sends them
PAGE_CHARS = 3000

QUESTIONS = [
    ("How do I check a condition while debugging and raise an error if it is false?", "assert"),
    ("What happens when I unpack a tuple into several variables?", "assignment"),
    ("How do I define a coroutine function?", "async"),
    (
        "How can I control what happens when an attribute is looked up on my object?",
        "attribute-access",
    ),
    ("What does x += 1 do for mutable objects?", "augassign"),
    ("How does the bitwise and of two integers work?", "bitwise"),
    ("How do I leave a loop early?", "break"),
    ("How are keyword arguments matched to parameters in a function call?", "calls"),
    ("How do I write a class definition with base classes?", "class"),
    ("How are objects compared with less than and equality?", "comparisons"),
    ("What methods must an object have to be used in a with statement?", "context-managers"),
    ("How do I skip to the next iteration of a loop?", "continue"),
    ("How does __init__ or __repr__ customize a class?", "customization"),
    ("How can I step through my program with the Python debugger?", "debugger"),
    ("How do I delete a variable or an item of a list?", "del"),
    ("How do I write a dictionary display or comprehension?", "dict"),
    ("What happens when an exception is raised and not handled?", "exceptions"),
    ("How are names bound and resolved in blocks and scopes?", "execmodel"),
    ("How do I iterate over the items of a sequence?", "for"),
    ("How do I pad a number with zeros or align text in a format string?", "formatstrings"),
    ("How do I declare a function with default parameter values?", "function"),
    ("How do I assign to a module-level variable from inside a function?", "global"),
    ("How do I import a module or a name from a package?", "import"),
    ("How do I write a small anonymous function inline?", "lambda"),
    ("How do I rebind a variable of an enclosing function from a nested one?", "nonlocal"),
    ("How do I write hexadecimal or binary integer literals?", "integers"),
    ("Which operators bind more tightly than others?", "operator-summary"),
    ("How do I write a statement that does nothing?", "pass"),
    ("How do I raise an exception with a cause?", "raise"),
    ("What does a function give back when it has no return statement?", "return"),
    ("How do I take every second element of a list with a step?", "slicings"),
    ("How do I split a string on whitespace or change its case?", "string-methods"),
    ("How do I write raw strings and escape sequences?", "strings"),
    ("Which values count as false in an if statement?", "truth"),
    ("How do I run cleanup code whether or not an exception happened?", "try"),
    (
        "How do I get a value from a dictionary with a default if the key is missing?",
        "typesmapping",
    ),
    ("How do I append to a list or sort it in place?", "typesseq-mutable"),
    ("How do I repeat code as long as a condition holds?", "while"),
    ("How does a generator produce values lazily?", "yield"),
    ("How do I await the result of another coroutine?", "await"),
]


def topics_folder(folder: Path) -> Path:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name, text in topics.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def topic_passages() -> list[str]:
    from pydoc_data.topics import topics

    from assistant.documents.chunks import chunk
    from assistant.documents.reading import Segment

    return [c.text for t in topics.values() for c in chunk([Segment(t, line=1)])]


class Tokenizer:
    """The embedding model's own tokenizer, in this process: texts to token ids cut to the
    model's 512, so that llama-server (which refuses longer inputs) gets the same work."""

    def __init__(self, model: Path):
        from assistant.engine.embedder import Embedder

        self.embedder = Embedder(model, n_threads=1)

    def __call__(self, texts: list[str]) -> list[list[int]]:
        e = self.embedder
        return [e.truncate(e.tokenize(t)) for t in texts]


class Embeddings:
    """POST /v1/embeddings of one server, base64 as the app asks for it; ``tokenize``: send
    token ids made here instead of texts."""

    def __init__(self, url: str, key: str, model: str, tokenize: Tokenizer | None = None):
        self.url, self.key, self.model = url, key, model
        self.tokenize = tokenize
        self.http = httpx.Client(timeout=600)

    def embed(self, texts: list[str] | list[list[int]]) -> np.ndarray:
        inputs = texts
        if self.tokenize is not None and texts and isinstance(texts[0], str):
            inputs = self.tokenize(texts)  # type: ignore[arg-type]
        r = self.http.post(
            self.url + "/v1/embeddings",
            json={
                "input": inputs,
                "model": self.model,
                "encoding_format": "base64",
                "truncate": True,
            },  # fmt: skip
            headers={"Authorization": f"Bearer {self.key}"},
        )
        r.raise_for_status()
        body = r.json()
        self.tokens = body["usage"]["prompt_tokens"]
        import base64

        return np.vstack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4")
                          for d in body["data"]])  # fmt: skip


def start_ours(home: Path, model: Path):
    from assistant.clients.supervisor import Supervisor

    os.environ["ASSISTANT_HOME"] = str(home)
    (home / "embedding-models").mkdir(parents=True, exist_ok=True)
    target = home / "embedding-models" / model.name
    if not target.exists():
        os.link(model, target)
    supervisor = Supervisor(announce=False, api_key="sk-bench-docs")
    supervisor.start()
    return supervisor, Embeddings(supervisor.url, "sk-bench-docs", model.name)


def start_llama_server(binary: Path, model: Path, threads: int, tokenize: Tokenizer):
    port = free_port()
    # As llama.cpp's embedding example serves: one physical batch per sequence of up to 512
    # tokens (the model's length), several sequences in a batch.
    proc = subprocess.Popen(
        [str(binary), "-m", str(model), "--embedding", "--pooling", "mean", "-c", "4096",
         "-b", "512", "-ub", "512", "-np", "8", "-t", str(threads), "--host", "127.0.0.1",
         "--port", str(port), "--api-key", "bench"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_health(f"http://127.0.0.1:{port}")
    return proc, Embeddings(f"http://127.0.0.1:{port}", "bench", model.name, tokenize)


def timed_pass(server: Embeddings, passages: list[list[int]]) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = 0
    for i in range(0, len(passages), GROUP):
        server.embed(passages[i : i + GROUP])
        tokens += server.tokens
    return time.perf_counter() - started, tokens


def embed_part(ours: Embeddings, theirs: Embeddings, rounds: int) -> None:
    assert theirs.tokenize is not None
    passages = theirs.tokenize(topic_passages())  # the same token ids to both
    ours.embed(passages[:8])  # warm both up (the embedding model loads on first use)
    theirs.embed(passages[:8])
    mine, ref = [], []
    for _ in range(rounds):
        t_ref, tok_ref = timed_pass(theirs, passages)
        t_ours, tok_ours = timed_pass(ours, passages)
        assert tok_ref == tok_ours, f"unequal work: {tok_ours} tokens against {tok_ref}"
        ref.append(t_ref)
        mine.append(t_ours)
    n = len(passages)
    a, b = n / statistics.median(mine), n / statistics.median(ref)
    print(f"\n[embed] {n} passages ({tok_ours} tokens), requests of {GROUP}, {rounds} rounds")
    print(f"  assistant serve {a:7.1f} passages/s ({a * tok_ours / n:7.0f} tokens/s)")
    print(f"  llama-server    {b:7.1f} passages/s ({b * tok_ref / n:7.0f} tokens/s)")
    print(f"  ratio {a / b:.3f} (goal >= 0.95)")


def index_part(ours: Embeddings, theirs: Embeddings, work: Path, rounds: int) -> None:
    from assistant.documents.index import DocumentIndex
    from assistant.documents.indexer import Indexer

    folder = topics_folder(work / "topics")
    chars = sum(p.stat().st_size for p in folder.iterdir())
    pages = chars / PAGE_CHARS
    results: dict[str, list[float]] = {"ours": [], "llama-server": []}
    for r in range(rounds):
        for label, server in (("llama-server", theirs), ("ours", ours)):
            db = work / f"index-{label}-{r}.db"
            with DocumentIndex(db) as index:
                c = index.create("topics", server.model)
                index.add_source(c, folder)
                started = time.perf_counter()
                result = Indexer(index, server.embed).run(index.collection("topics"))
                results[label].append(time.perf_counter() - started)
                assert result.done == len(list(folder.iterdir()))
    a = pages / statistics.median(results["ours"]) * 60
    b = pages / statistics.median(results["llama-server"]) * 60
    print(f"\n[index] {len(list(folder.iterdir()))} files, {pages:.0f} pages of {PAGE_CHARS} "
          f"characters, {rounds} rounds (read, cut, embed, store)")  # fmt: skip
    print(f"  embeddings from assistant serve {a:6.1f} pages/min")
    print(f"  embeddings from llama-server    {b:6.1f} pages/min   ratio {a / b:.3f}")


def many_passages(count: int) -> list[str]:
    """``count`` distinct real passages: this Python's standard library and installed packages
    (source, docstrings, their documents), cut as documents are cut."""
    import sysconfig

    from assistant.documents.chunks import chunk
    from assistant.documents.reading import Segment

    roots = {Path(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib")}
    out: list[str] = []
    for root in sorted(roots):
        for path in sorted(root.rglob("*")):
            if path.suffix not in (".py", ".pyi", ".txt", ".rst", ".md") or not path.is_file():
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            out.extend(c.text for c in chunk([Segment(text, line=1)]))
            if len(out) >= count:
                return out[:count]
    return out


def scale_part(work: Path, count: int) -> None:
    from assistant.documents import retrieval
    from assistant.documents.chunks import Chunk
    from assistant.documents.index import DocumentIndex

    passages = many_passages(count)
    db = work / "scale.db"
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    with DocumentIndex(db) as index:
        c = index.create("big", "all-MiniLM-L6-v2.F16.gguf")
        per_file = 100
        for f in range(count // per_file):
            file_id = index.set_pending(c, f"/docs/file{f}.txt", 1, 1)
            chunks = [
                Chunk(passages[(f * per_file + i) % len(passages)], None, i + 1, i + 1)
                for i in range(per_file)
            ]  # fmt: skip (repeats only if too few)
            vectors = rng.standard_normal((per_file, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            index.store_file(c, file_id, chunks, vectors)
    built = time.perf_counter() - started
    size = sum(p.stat().st_size for p in work.glob("scale.db*"))
    queries = [q for q, _ in QUESTIONS]
    with DocumentIndex(db) as index:
        c = index.collection("big")
        query = rng.standard_normal(384).astype(np.float32)
        t = time.perf_counter()
        retrieval.search(index, [c], queries[0], query, limit=5)
        first = time.perf_counter() - t
        times = []
        for i in range(50):
            t = time.perf_counter()
            hits = retrieval.search(index, [c], queries[i % len(queries)], query, limit=5)
            times.append(time.perf_counter() - t)
        assert len(hits) == 5
    print(f"\n[scale] {c.chunks if False else count:,} passages (stored in {built:.0f} s); "
          f"database {size / 2**20:.0f} MiB ({size / count:.0f} bytes per passage)")  # fmt: skip
    print(f"  first search (vectors read from SQLite) {first * 1000:.0f} ms")
    print(f"  search, median of 50 {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms (goal < 50 ms)")  # fmt: skip


def quality_part(server: Embeddings, work: Path) -> None:
    from assistant.documents import retrieval
    from assistant.documents.index import DocumentIndex
    from assistant.documents.indexer import Indexer

    folder = topics_folder(work / "topics")
    with DocumentIndex(work / "quality.db") as index:
        c = index.create("topics", server.model)
        index.add_source(c, folder)
        Indexer(index, server.embed).run(index.collection("topics"))
        c = index.collection("topics")
        found = {mode: 0 for mode in retrieval.MODES}
        for question, topic in QUESTIONS:
            vector = server.embed([question])[0]
            for mode in retrieval.MODES:
                hits = retrieval.search(index, [c], question, vector, limit=5, mode=mode)
                if any(Path(h.passage.path).stem == topic for h in hits):
                    found[mode] += 1
    print(f"\n[quality] recall@5, {len(QUESTIONS)} questions over {c.indexed} topics "
          f"({c.chunks} passages) of pydoc_data.topics:")  # fmt: skip
    for mode in ("keyword", "vector", "fused"):
        print(f"  {mode:8s} {found[mode] / len(QUESTIONS):.3f} ({found[mode]}/{len(QUESTIONS)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", type=Path, default=os.environ.get("LLAMA_SERVER"))
    parser.add_argument("--part", choices=("all", "embed", "index", "scale", "quality"),
                        default="all")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passages", type=int, default=100_000)
    args = parser.parse_args()
    from assistant.documents import embedding_models
    from assistant.hardware import machine

    print(cpu_line())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = embedding_models.builtin_source()
        assert source is not None, embedding_models.BUILTIN_HINT
        model = embedding_models.convert_zip(source, work / embedding_models.BUILTIN_FILE)
        if args.part in ("all", "scale"):
            scale_part(work, args.passages)
        if args.part == "scale":
            return 0
        supervisor, ours = start_ours(work / "home", model)
        proc = None
        try:
            if args.part in ("all", "embed", "index"):
                if args.llama_server is None:
                    parser.error("--llama-server PATH is required for embed and index")
                proc, theirs = start_llama_server(
                    args.llama_server, model, machine.math_cores(), Tokenizer(model)
                )
                if args.part in ("all", "embed"):
                    embed_part(ours, theirs, args.rounds)
                if args.part in ("all", "index"):
                    index_part(ours, theirs, work, max(1, args.rounds - 1))
            if args.part in ("all", "quality"):
                quality_part(ours, work)
        finally:
            supervisor.stop()
            if proc is not None:
                proc.terminate()
                proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
