"""The README runs as written: every ```python block in README.md is run and the output it shows is compared.

Convention (it applies to sections added later too; nothing here lists the README's blocks):

* Every fenced ```python block is one test, named ``README.md:LINE`` (LINE: its opening fence), so a failure says
  where. Tracebacks and doctest reports give README line numbers.
* Blocks share one namespace per level-2 section (``## ...``; ``###`` subsections stay in their section), in
  document order: a block may use names an earlier block of its section defined. Each section starts from a fresh
  namespace, seeds 0 (``random``, NumPy's global state, torch) and a fresh temporary working directory, so nothing
  is written into the repository; the test of a later block first re-runs the earlier blocks of its section.
* A block whose first line starts with ``>>>`` is a doctest: what it shows is compared by :mod:`doctest` with
  ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` (write ``...`` where output varies, e.g. a long repr). A floating-point
  number shown with a decimal point or an exponent also matches a printed number of the same sign within a relative
  1e-12: a difference in the last few digits of a float64 repr (the ulps by which NumPy/SciPy releases differ) is
  not a failure; one in the first 12 significant digits is, and so is a float32 tensor's printed digit or sign.
* Any other ```python block is a script, run as is. Its comments are prose, never compared: a value a block shows
  goes in a doctest or in the output block below. If a ```text block follows a script with only blank lines
  between, it is the script's printed output and is compared with the same rules.
* Markers, an HTML comment on the line just before the opening fence (invisible on GitHub):
  ``<!-- readme-test: not compared -->`` the block is run but its output (doctest or following ```text block) is
  not compared, for output that is not deterministic (timings, training results); ``<!-- readme-test: slow -->``
  the block is skipped, with that reason, unless ACTLAB_README_SLOW=1 (prefer making the example small).
* A ```text block whose first line is ``$ actlab ...`` is a transcript: each ``$ actlab ...`` line is run (a
  subprocess, ``python -m actlab``, in a temporary directory, at most 60 s) and what it prints, stdout and stderr
  together, is compared with the lines below it by the same rules. With ``not compared`` it is not run.
* ```bash blocks are not run; the ``actlab`` subcommands they (and transcripts) name must exist
  (``actlab COMMAND --help`` exits 0, run in-process).
"""

from __future__ import annotations

import contextlib
import doctest
import io
import math
import os
import random
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SRC = README.parent / "src"
MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")
KNOWN_MARKERS = {"not compared", "slow"}
PY_LANGS = ("python", "py", "pycon")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)(.*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    section: str
    markers: set[str] = field(default_factory=set)
    output: Block | None = None  # the ```text block right after a script: its expected stdout

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"

    @property
    def is_doctest(self) -> bool:
        return self.source.lstrip().startswith(">>>")


def parse_readme(text: str) -> list[Block]:
    """Every fenced block of ``text`` with its section and markers; a script's output block is attached to it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = "(top)"
    i = 0
    previous_end = -1  # index of the closing fence of the last block
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        m = FENCE.match(line)
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        body = [ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1 : j]]
        markers: set[str] = set()
        k = i - 1
        while k >= 0 and MARKER.match(lines[k]):
            markers.add(MARKER.match(lines[k]).group(1))
            k -= 1
        block = Block(i + 1, lang, "\n".join(body) + "\n", section, markers)
        prev = blocks[-1] if blocks else None
        if (
            prev is not None
            and lang == "text"
            and prev.lang in PY_LANGS
            and not prev.is_doctest
            and all(not ln.strip() for ln in lines[previous_end + 1 : i])
        ):
            prev.output = block
        blocks.append(block)
        previous_end = j
        i = j + 1
    return blocks


def marker_problems(text: str) -> list[str]:
    """Markers that would silently do nothing: unknown, or not right above an opening fence (``line: reason``)."""
    lines = text.splitlines()
    problems = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        if m.group(1) not in KNOWN_MARKERS:
            problems.append(f"README.md:{i + 1}: unknown readme-test marker {m.group(1)!r} (known: {KNOWN_MARKERS})")
        k = i + 1
        while k < len(lines) and MARKER.match(lines[k]):
            k += 1
        if k == len(lines) or not FENCE.match(lines[k]):
            problems.append(f"README.md:{i + 1}: a readme-test marker must be right above an opening ``` fence")
    return problems


BLOCKS = parse_readme(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.lang in PY_LANGS]

# --------------------------------------------------------------------------- comparison
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?(?![\w.])")
_REL = 1e-12


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.copysign(1.0, x) != math.copysign(1.0, y):
        return False  # -0.0 and 0.0 print differently and a reader sees the sign
    return x == y or abs(x - y) <= _REL * max(abs(x), abs(y))


class ReadmeChecker(doctest.OutputChecker):
    """doctest's checker, where a float that agrees to a relative 1e-12 counts as the one shown."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        if optionflags & doctest.NORMALIZE_WHITESPACE:
            want, got = " ".join(want.split()), " ".join(got.split())
        # `want` as a pattern: its numbers become number groups, `...` (with ELLIPSIS) anything, the rest literal.
        parts, shown, last = [], [], 0
        splitter = re.compile(_NUMBER.pattern + (r"|\.\.\." if optionflags & doctest.ELLIPSIS else ""))
        for m in splitter.finditer(want):
            parts.append(re.escape(want[last : m.start()]))
            if m.group() == "...":
                parts.append(".*?")
            else:
                parts.append(f"({_NUMBER.pattern})")
                shown.append(m.group())
            last = m.end()
        parts.append(re.escape(want[last:]))
        if not shown:
            return False
        m = re.fullmatch("".join(parts), got, re.DOTALL)
        return m is not None and all(_close(w, g) for w, g in zip(shown, m.groups()))


class _AnyOutput(doctest.OutputChecker):
    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return True


FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(0)


def _run(block: Block, ns: dict, compare: bool) -> None:
    """Run ``block`` in ``ns``; when ``compare``, fail on any difference from the output it shows."""
    compare = compare and "not compared" not in block.markers
    if block.is_doctest:
        test = doctest.DocTestParser().get_doctest(block.source, ns, block.id, str(README), block.line)
        report = io.StringIO()
        # Not comparing, doctest still runs every example and still fails on an exception the block does not show.
        checker = ReadmeChecker() if compare else _AnyOutput()
        runner = doctest.DocTestRunner(checker=checker, optionflags=FLAGS, verbose=False)
        runner.run(test, out=report.write, clear_globs=False)
        ns.update(test.globs)  # DocTest ran in a copy of ns; later blocks of the section see its names
        if runner.failures:
            what = "shows something else than the code prints" if compare else "failed"
            pytest.fail(f"{block.id}: the README block {what}\n{report.getvalue()}")
        return
    # Padding the source keeps README line numbers in tracebacks.
    code = compile("\n" * block.line + block.source, str(README), "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, ns)
    if compare and block.output is not None:
        want = block.output.source
        if not ReadmeChecker().check_output(want, out.getvalue(), FLAGS):
            diff = ReadmeChecker().output_difference(doctest.Example("", want), out.getvalue(), FLAGS)
            pytest.fail(f"{block.id}: its output block at README.md:{block.output.line} differs\n{diff}")


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_readme_python_block(block: Block, tmp_path, monkeypatch, capfd) -> None:
    # capfd: file descriptor 1 is not a terminal while the blocks run (also under `pytest -s`), as when their
    # output is piped, so rich tables are laid out as the README shows them, not to this terminal's width.
    if "slow" in block.markers and os.environ.get("ACTLAB_README_SLOW") != "1":
        pytest.skip(f"{block.id} is marked slow in the README; run with ACTLAB_README_SLOW=1")
    earlier = [b for b in PYTHON[: PYTHON.index(block)] if b.section == block.section]
    for b in earlier:
        if "slow" in b.markers and os.environ.get("ACTLAB_README_SLOW") != "1":
            pytest.skip(f"{block.id} needs {b.id}, marked slow in the README; run with ACTLAB_README_SLOW=1")
    if any(re.search(r"\btorch\b", b.source) for b in (*earlier, block)):
        pytest.importorskip("torch", reason="the README example needs the torch extra")
    monkeypatch.chdir(tmp_path)
    _seed()
    ns: dict = {"__name__": "__readme__"}
    for b in earlier:
        _run(b, ns, compare=False)
    _run(block, ns, compare=True)


def test_readme_has_python_blocks_and_valid_markers() -> None:
    # The parser must see the README's examples: a changed fence syntax would otherwise test nothing.
    assert len(PYTHON) >= 5
    assert any(b.is_doctest for b in PYTHON) and any(b.output is not None for b in PYTHON)
    assert marker_problems(README.read_text(encoding="utf-8")) == []


def test_parser_and_checker_on_a_sample() -> None:
    sample = (
        "## A\n<!-- readme-test: not compared -->\n```python\nprint(1)\n```\n\n```text\n1\n```\n"
        "## B\n```python\n>>> 1\n1\n```\n<!-- readme-test: typo -->\ntext\n"
    )
    a, out, b = parse_readme(sample)
    assert (a.line, a.section, a.markers, a.output, a.is_doctest) == (3, "A", {"not compared"}, out, False)
    assert (b.line, b.section, b.is_doctest, b.output) == (11, "B", True, None)
    assert len(marker_problems(sample)) == 2
    check = ReadmeChecker().check_output
    assert check("(1.4142135623730951, ...)\n", "(1.414213562373095, 2.0)\n", FLAGS)  # one ulp
    assert check("(1.4142135623730951, ...)\n", "(1.4142135623731, 2.0)\n", FLAGS)  # 3.5e-15 relative
    assert not check("(1.4142135623730951, ...)\n", "(1.41421356237, 2.0)\n", FLAGS)  # 2.2e-12 relative
    assert not check("tensor([ 0.0000e+00])\n", "tensor([-0.0000e+00])\n", FLAGS)  # the sign of zero
    assert not check("[1, 2]\n", "[1, 3]\n", FLAGS)  # integers compare as text
    ns: dict = {}
    _run(Block(1, "python", ">>> y = 2\n", "S"), ns, compare=False)
    _run(Block(5, "python", ">>> y + 1\n3\n", "S"), ns, compare=True)  # a section's blocks share names
    raising = ">>> 1 / 0\nTraceback (most recent call last):\n  ...\nZeroDivisionError: division by zero\n"
    _run(Block(1, "python", raising, "S"), {}, compare=True)
    _run(Block(1, "python", raising.replace("division", "nothing"), "S"), {}, compare=False)  # run as set-up
    with pytest.raises(pytest.fail.Exception, match="README.md:1"):
        _run(Block(1, "python", raising.replace("division", "nothing"), "S"), {}, compare=True)
    with pytest.raises(pytest.fail.Exception, match="README.md:1"):
        _run(Block(1, "python", ">>> 1 / 0\n", "S"), {}, compare=False)  # an exception the block does not show


# --------------------------------------------------------------------------- transcripts and commands named
def _transcripts() -> list[tuple[Block, int, str, str]]:
    """(block, line, command, shown output) for each ``$ actlab`` line of a ```text transcript block."""
    found = []
    for block in BLOCKS:
        lines = block.source.splitlines()
        if block.lang != "text" or not lines or not lines[0].startswith("$ actlab "):
            continue
        starts = [i for i, ln in enumerate(lines) if ln.startswith("$ ")] + [len(lines)]
        for a, b in zip(starts, starts[1:]):
            found.append((block, block.line + 1 + a, lines[a][2:], "\n".join(lines[a + 1 : b]) + "\n"))
    return found


TRANSCRIPTS = _transcripts()


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=lambda t: f"README.md:{t[1]}")
def test_readme_transcript(transcript, tmp_path) -> None:
    block, line, command, want = transcript
    if "not compared" in block.markers:
        pytest.skip(f"README.md:{line} is marked not compared")
    if "slow" in block.markers and os.environ.get("ACTLAB_README_SLOW") != "1":
        pytest.skip(f"README.md:{line} is marked slow in the README; run with ACTLAB_README_SLOW=1")
    argv = shlex.split(command)
    assert argv[0] == "actlab"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    try:
        # stdout is a pipe, not a terminal: tables are laid out as when the output is redirected.
        run = subprocess.run(
            [sys.executable, "-m", "actlab", *argv[1:]],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md:{line}: `{command}` ran over 60 s; make it smaller or mark the block slow")
    if not ReadmeChecker().check_output(want, run.stdout, FLAGS):
        diff = ReadmeChecker().output_difference(doctest.Example("", want), run.stdout, FLAGS)
        pytest.fail(f"README.md:{line}: `{command}` printed something else (exit status {run.returncode})\n{diff}")


def _commands() -> dict[tuple[str, ...], int]:
    """``actlab`` argv prefixes (subcommand, and a sub-subcommand word) named in bash/text blocks -> first line."""
    found: dict[tuple[str, ...], int] = {}
    for block in BLOCKS:
        if block.lang not in ("bash", "sh", "shell", "console", "text"):
            continue
        for offset, raw in enumerate(block.source.splitlines()):
            line = raw.strip()
            if block.lang == "text":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            for part in re.split(r"&&|;|\|", line.split("#", 1)[0]):
                try:
                    words = shlex.split(part)
                except ValueError:
                    continue
                if len(words) < 2 or words[0] != "actlab" or words[1].startswith("-"):
                    continue
                argv = [words[1]]
                if len(words) > 2 and re.fullmatch(r"[a-z_]+", words[2]):
                    argv.append(words[2])  # e.g. `bench lstm`; `plot gelu --help` exits 0 as well
                found.setdefault(tuple(argv), block.line + 1 + offset)
    return found


COMMANDS = _commands()


@pytest.mark.parametrize("argv", list(COMMANDS), ids=lambda a: f"README.md:{COMMANDS[a]}:{' '.join(a)}")
def test_readme_commands_exist(argv: tuple[str, ...], capsys) -> None:
    from actlab.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    out = capsys.readouterr()
    assert exit_info.value.code == 0, f"README.md:{COMMANDS[argv]}: `actlab {' '.join(argv)} --help` failed\n{out.err}"
