"""The README runs as written: its commands, its Python, its sample output, its spec and its tables.

Every fenced ``bash`` block runs, in order, as one bash script each, and then
every ``python`` block, in a scratch folder laid out like a checkout whose
``studies/digits.toml``, ``studies/digits-mlp.toml`` and ``examples/fashion-resnet.toml`` are the
shipped specs with a budget of 2 trials per size (digits with one re-run of its best configuration
and 15 epochs at most; the example's ResNet trains 4 epochs at most). A block that shows a file of the checkout
(after ``<!-- file: PATH -->``) must be that file, as it is.
Three things are not run as written, each for a reason:

- ``bash scripts/setup.sh`` is skipped: it creates ``.venv`` and installs the
  project, and the tests already run in that environment (``.venv`` in the
  scratch folder points to it).
- A command running pytest only collects the tests (``--collect-only``): the
  suite cannot run inside itself, and collecting still checks that the command
  is right and every test module imports.
- A server (optuna-dashboard, ``scaling-optuna dashboard`` or ``proxy``) is
  started on a free port, and stopped once it answers.

Whatever the README says is what runs: a new command in a block is run too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from scaling_optuna.cli import main
from scaling_optuna.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# A sample output block is preceded by this comment; its lines are checked against a real run.
SAMPLE_MARK = "<!-- sample output"
# A block showing a file of the checkout is preceded by this comment and the file's path.
FILE_MARK = re.compile(r"<!-- file: (\S+) -->")
TINY_BUDGET = 2
# Epochs at most for the digits specs: enough to train, and the README's run stays quick.
TINY_EPOCHS = 15
# Specs whose budget the README run shrinks: lines replaced, each found once.
SHRUNK_SPECS = {
    # one re-run of the best configuration per size: the run shows re-measuring at little cost
    "studies/digits.toml": {
        r"trials_per_size = \d+": f"trials_per_size = {TINY_BUDGET}", r"top = \d+\nrepeats = \d+": "top = 1\nrepeats = 1",
        r"max_epochs = \d+": f"max_epochs = {TINY_EPOCHS}",
    },
    "studies/digits-mlp.toml": {
        r"trials_per_size = \d+": f"trials_per_size = {TINY_BUDGET}", r"top = \d+\nrepeats = \d+": "top = 1\nrepeats = 1",
        r"max_epochs = \d+": f"max_epochs = {TINY_EPOCHS}",
    },
    "examples/fashion-resnet.toml": {r"trials_per_size = \d+": f"trials_per_size = {TINY_BUDGET}", r"max_epochs = \d+": "max_epochs = 4"},
}
SERVERS = ("optuna-dashboard", "scaling-optuna dashboard", "scaling-optuna proxy")
NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced block of the README: its language tag, text, section and the line before it."""

    lang: str
    text: str
    heading: str
    before: str


def readme_blocks() -> list[Block]:
    blocks, heading, before = [], "", ""
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append(Block(line[3:].strip(), "\n".join(lines[i + 1 : end]) + "\n", heading, before))
            i = end
        elif line.strip():
            before = line.strip()
        i += 1
    return blocks


# --- What can be checked without running anything -------------------------------------------


def test_the_spec_example_is_the_shipped_digits_spec(tmp_path):
    (example,) = [b for b in readme_blocks() if b.lang == "toml" and b.heading == "The experiment spec"]
    path = tmp_path / "digits.toml"
    path.write_text(example.text)
    spec, shipped = load_spec(path), load_spec(ROOT / "studies" / "digits.toml")
    assert spec.compatibility_hash() == shipped.compatibility_hash(), "the README's spec drifted from studies/digits.toml"
    assert (spec.trials_per_size, spec.sampler, spec.pruner, spec.remeasure) == (shipped.trials_per_size, shipped.sampler, shipped.pruner, shipped.remeasure)


def test_blocks_that_show_a_file_are_that_file():
    shown = [(FILE_MARK.fullmatch(b.before), b) for b in readme_blocks()]
    shown = [(m.group(1), b) for m, b in shown if m]
    assert {path for path, _ in shown} >= {"examples/fashion_resnet/model.py", "examples/fashion-resnet.toml"}
    for path, block in shown:
        assert block.text == (ROOT / path).read_text(), f"the README's copy of {path} drifted from the file"


def test_the_users_own_model_and_data_take_at_most_25_lines():
    # The promise of "Your own model and data": a model and a dataset in 25 lines of the user's Python.
    lines = (ROOT / "examples" / "fashion_resnet" / "model.py").read_text().splitlines()
    assert len(lines) <= 25


def _synopsis() -> dict[str, str]:
    """The command-line block: each command's line (continuation lines joined to it)."""
    (block,) = [b for b in readme_blocks() if b.heading == "Command line" and not b.lang]
    commands: dict[str, str] = {}
    last = ""
    for line in block.text.splitlines():
        if line.startswith("scaling-optuna "):
            last = line.split()[1]
            commands[last] = line
        elif line.strip():
            commands[last] += " " + line.strip()
    return commands


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_command_line_synopsis_matches_each_commands_help(capsys):
    synopsis = _synopsis()
    listed = re.findall(r"(?m)^ {4}([a-z][a-z-]*)\b", _help(capsys))  # argparse lists each command indented by 4
    assert sorted(synopsis) == sorted(listed), "the README's command-line block and the commands differ"
    for command, line in synopsis.items():
        accepted = set(re.findall(r"--[a-z][a-z-]*", _help(capsys, command)))
        stale = sorted(set(re.findall(r"--[a-z][a-z-]*", line)) - accepted)
        assert stale == [], f"README lists {stale} for '{command}', which does not accept them"


def test_the_shipped_experiments_table_counts_the_sizes_right():
    from scaling_optuna.data import load_dataset

    table = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)\.toml` \| [^|]* \| ([^|]*) \|", README.read_text(), re.M)}
    assert set(table) == {p.stem for p in (ROOT / "studies").glob("*.toml")}, "every shipped spec has its row"
    # digits is loaded offline in a second; the other pools are the ones their specs describe.
    pools = {
        "digits": load_dataset(load_spec(ROOT / "studies" / "digits.toml")).pool_size,
        "digits-mlp": load_dataset(load_spec(ROOT / "studies" / "digits-mlp.toml")).pool_size,
        "mnist1d": 16000,
        "cifar10": 40000,
        "fashion-mnist": 50000,
    }
    for name, pool in pools.items():
        sizes = load_spec(ROOT / "studies" / f"{name}.toml").sizes.resolve(pool)
        cell = table[name]
        first, last = (int(n) for n in re.match(r"(\d+) … (\d+)", cell).groups())
        assert (first, last) == (sizes[0], sizes[-1]), f"{name}: {cell}"
        assert f"{len(sizes)} sizes" in cell, f"{name}: {cell} (the spec has {len(sizes)} sizes)"
        doublings = re.search(r"(\d+) doublings", cell)
        assert doublings is None or int(doublings.group(1)) == len(sizes) - 1, f"{name}: {cell}"


def _shape(line: str) -> re.Pattern:
    """A sample line as a pattern: any number where it has a number, any text where it says '...'."""

    def literal(text: str) -> str:
        return r"\s+".join(re.escape(word) for word in re.split(r"\s+", text))

    def piece(text: str) -> str:
        parts = re.split(f"({NUMBER})", text)
        return "".join(NUMBER if i % 2 else literal(part) for i, part in enumerate(parts))

    return re.compile(".*".join(piece(p) for p in line.strip().split("...")))


def test_sample_shapes_accept_their_own_kind_of_line_only():
    row = _shape("      36     0     1.602     1.642   0.3788   19,754      0.3788        4      8      0       0  lr=0.01, ...")
    assert row.fullmatch("1151  9  0.03467  0.1166  0.03064  7,346  0.03343  10  2  0  0  lr=0.0813, momentum=0.2")
    assert not row.fullmatch("1151  9  0.03467  0.1166  0.03064  7,346  0.03343  10  2  0  lr=0.0813, momentum=0.2")
    progress = _shape("[0:00:30] 17/72 trials finished · 16 complete, 1 pruned, 0 failed, 2 running")
    assert progress.fullmatch("[0:01:02] 5/12 trials finished · 4 complete, 1 pruned, 0 failed, 1 running")
    assert not progress.fullmatch("[0:01:02] 5/12 trials finished · 4 complete, 1 pruned, 0 failed, 1 running, ETA 0:02")


# --- Running it --------------------------------------------------------------------------------

SERVE_BRIEFLY = '''
"""Start a server on a free port, wait until it answers over HTTP, stop it."""
import socket, subprocess, sys, time, urllib.error, urllib.request

argv = sys.argv[1:]
if "--port" not in argv:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        argv += ["--port", str(s.getsockname()[1])]
port = int(argv[argv.index("--port") + 1])
with open("server.log", "ab") as log:
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
answered, deadline = False, time.monotonic() + 120
while not answered and server.poll() is None and time.monotonic() < deadline:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
        answered = True
    except urllib.error.HTTPError:
        answered = True  # an HTTP answer, even an error page, is a server that runs
    except OSError:
        time.sleep(0.5)
print(f"{' '.join(argv)}: {'answered' if answered else 'did not answer'}")
server.terminate()
server.wait(30)
sys.exit(0 if answered else 1)
'''


def _scratch(tmp_path: Path) -> Path:
    """A folder laid out like a checkout, with a tiny-budget digits spec."""
    work = tmp_path / "checkout"
    work.mkdir()
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), f"the tests must run in a virtual environment ({venv} is none)"
    (work / ".venv").symlink_to(venv)
    for name in ("scripts", "tests", "scaling_optuna", "pyproject.toml"):
        (work / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "studies", work / "studies")
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    for relative, lines in SHRUNK_SPECS.items():
        spec = work / relative
        text = spec.read_text()
        for line, shrunk in lines.items():
            text, n = re.subn(f"(?m)^{line}", shrunk, text)
            assert n == 1, f"{relative} has no line {line!r} to shrink"
        spec.write_text(text)
    (tmp_path / "serve_briefly.py").write_text(SERVE_BRIEFLY)
    return work


def _runnable(block: str, serve: Path) -> str:
    """The block as a bash script, with the three substitutions of the module docstring."""
    lines = block.replace("\\\n", " ").splitlines()
    out = ["set -eo pipefail"]
    for line in lines:
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if not command or command.startswith("#"):
            continue
        steps = []
        for step in (s.strip() for s in command.split("&&")):
            if re.match(r"bash scripts/setup\.sh\b", step):
                steps.append("true")  # the environment the tests run in is the one setup.sh made
            elif re.search(r"-m pytest\b", step):
                steps.append(f"{step} -n 0 --collect-only -q")
            elif step.startswith(SERVERS):
                steps.append(f'"$README_PYTHON" {serve} {step}')
            else:
                steps.append(step)
        out.append(" && ".join(steps))
    return "\n".join(out) + "\n"


def _check_sample(sample: Block, output: str) -> None:
    real = [line.strip() for line in re.split(r"[\r\n]+", output) if line.strip()]
    for line in sample.text.splitlines():
        if line.strip() in ("", "..."):
            continue
        shape = _shape(line)
        assert any(shape.fullmatch(r) for r in real), f"README sample line not in a real run:\n{line}\nreal output:\n{output}"


def _documented_attributes(url: str) -> None:
    readme = README.read_text()
    undocumented = set()
    for summary in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        keys = set(study.user_attrs) | {k for t in study.trials for k in t.user_attrs}
        undocumented |= {k for k in keys if f"`{k}`" not in readme}
    assert not undocumented, f"attributes in the store that the README does not name: {sorted(undocumented)}"


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path):
    work = _scratch(tmp_path)
    serve = tmp_path / "serve_briefly.py"
    env = {k: v for k, v in os.environ.items() if k != "SCALING_OPTUNA_STORAGE"}
    # Decoded image folders are cached under $XDG_CACHE_HOME: the run's own, not the user's.
    env |= {"PYTHONUNBUFFERED": "1", "README_PYTHON": sys.executable, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    blocks = readme_blocks()
    outputs: list[tuple[Block, str]] = []
    for block in [b for b in blocks if b.lang == "bash"] + [b for b in blocks if b.lang == "python"]:
        if block.lang == "bash":
            argv = ["bash", "-c", _runnable(block.text, serve)]
        else:
            argv = [sys.executable, "-c", block.text]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        shown = f"$ {textwrap.indent(block.text, '  ')}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        assert done.returncode == 0, shown
        outputs.append((block, done.stdout))

    ran = "\n".join(out for block, out in outputs if "scaling-optuna run" in block.text)
    assert ran, "no README block runs 'scaling-optuna run'"
    for sample in [b for b in blocks if b.before.startswith(SAMPLE_MARK)]:
        _check_sample(sample, ran)
    for block, out in outputs:
        if "scaling-optuna status" in block.text:
            assert "digits-n0001151" in out  # study names as the README gives them
        if block.lang == "python" and "trials_dataframe" in block.text:
            assert "value_val_loss" in out  # the objective is named in Optuna's own table
        if block.lang == "python" and "best_model" in block.text and "fashion-resnet" in block.text:
            assert out.split() == ["Block"]  # best_model rebuilt the user's ResNet through its builder
        if any(server in block.text for server in SERVERS):
            assert "answered" in out
    _documented_attributes(f"sqlite:///{work / 'scaling-optuna.db'}")
