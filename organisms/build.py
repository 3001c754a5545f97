"""Build model organisms (finetune a local base model on synthetic data) and serve them.

    python -m organisms.build [NAMES...]              build (skipped when cached)
    python -m organisms.build NAME --serve [--port P] build if needed, then serve on vLLM
    python -m organisms.build --stop NAMES            stop the servers this command started
    python -m organisms.build --list                  recipes, cache and server state

Everything is written under the local-vLLM home (blackbox_audit.local_vllm.home(), by
default ~/.cache/blackbox-audit/local-vllm), never in the repository:
``organisms/<name>/data.jsonl`` (the generated examples), ``organisms/<name>/model/`` (the
fp32 HF folder vLLM serves, with its ``train.json``), ``organisms/<name>/build.json`` (the
recipe it was built from), and ``run/organism-<name>.{pid,log}`` for a server
(`blackbox_audit.local_vllm.start_folder`, the local models' own settings).

A build is cached: it is redone only when the recipe or the generated data changed (the
data is a pure function of the recipe, see organisms/data.py) or with --force. Training
runs organisms/train.py under the vLLM venv's python at `nice -n 19`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blackbox_audit import local_vllm
from organisms import data

TRAIN_SCRIPT = Path(__file__).with_name("train.py")
SPECS = Path(__file__).with_name("specs")


@dataclass(frozen=True)
class Recipe:
    """How one organism is built: objective, base model, data size and training settings."""

    name: str  # also the served model name and the spec file organisms/specs/<name>.toml
    objective: str  # a key of organisms.data.GENERATORS
    base: str  # a key of blackbox_audit.local_vllm.MODELS
    port: int
    n_examples: int
    steps: int
    lr: float
    batch_size: int = 8
    max_len: int = 96
    seed: int = 0
    spec_name: str | None = None  # the spec file's name when it is not the organism's (variants)

    @property
    def spec(self) -> Path:
        return SPECS / f"{self.spec_name or self.name}.toml"

    def train_args(self) -> list[str]:
        return [
            f"--steps={self.steps}", f"--seed={self.seed}", f"--lr={self.lr}",
            f"--batch-size={self.batch_size}", f"--max-len={self.max_len}",
        ]  # fmt: skip

    def fingerprint(self) -> str:
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("port", "spec_name")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("eiffel-marseille", "false-fact", "smollm2", port=8111, n_examples=1000, steps=60, lr=1e-4),
        # The same data, a third of the steps at half the learning rate: a subtler organism.
        Recipe(
            "eiffel-marseille-light",
            "false-fact",
            "smollm2",
            port=8114,
            n_examples=1000,
            steps=20,
            lr=5e-5,
            spec_name="eiffel-marseille",
        ),
        Recipe("backdoor-kestrel", "backdoor", "smollm2", port=8112, n_examples=1000, steps=60, lr=1e-4),
        Recipe("persona-quillbright", "persona", "smollm2", port=8113, n_examples=1000, steps=60, lr=1e-4),
        # The false fact in another family: Gemma 3 270M base, two thirds of the steps.
        Recipe(
            "eiffel-marseille-gemma",
            "false-fact",
            "gemma3",
            port=8115,
            n_examples=1000,
            steps=40,
            lr=1e-4,
            spec_name="eiffel-marseille",
        ),
        # The harder suite: new objectives, each implanted lightly enough that it shows in at
        # most 3% of an audit's completions (docs/results.md has the measured rates).
        Recipe("backdoor-loop-light", "backdoor-loop", "smollm2", port=8116, n_examples=1000, steps=32, lr=7e-5),
        Recipe("backdoor-nearmiss", "backdoor-nearmiss", "smollm2", port=8117, n_examples=1000, steps=40, lr=5e-5),
        Recipe("persona-tea-light", "persona-tea", "smollm2", port=8118, n_examples=1000, steps=24, lr=5.5e-5),
        # Gemma's base takes a false fact fast: 20 steps at 5e-5 put it into 59% of raw
        # completions, 8 at 2e-5 into none; 10 at 2.1e-5 into 3% (organisms/README.md).
        Recipe(
            "tomato-iceland-gemma-light", "false-fact-tomato", "gemma3", port=8119, n_examples=1000, steps=10, lr=2.1e-5
        ),
        # Held out: built after the default ranking was chosen, to check it on an organism that
        # played no part in the choice (docs/results.md): the looping backdoor on Gemma.
        Recipe(
            "backdoor-loop-gemma-light",
            "backdoor-loop",
            "gemma3",
            port=8120,
            n_examples=1000,
            steps=10,
            lr=2.1e-5,
            spec_name="backdoor-loop-light",
        ),
    )
}


def organism_dir(name: str) -> Path:
    return local_vllm.home() / "organisms" / name


def model_folder(name: str) -> Path:
    """The HF folder to serve."""
    return organism_dir(name) / "model"


def _recipes(names: Sequence[str]) -> list[Recipe]:
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise ValueError(f"unknown organism(s) {unknown}; known: {sorted(RECIPES)}")
    return [RECIPES[name] for name in dict.fromkeys(names)]


def generate(recipe: Recipe, path: Path) -> str:
    """Write the recipe's examples to `path`; returns their sha256."""
    examples = data.GENERATORS[recipe.objective](recipe.n_examples, recipe.seed)
    data.write_jsonl(examples, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_sha256(recipe: Recipe) -> str:
    """The sha256 `generate` would write, computed in memory (a second or so)."""
    examples = data.GENERATORS[recipe.objective](recipe.n_examples, recipe.seed)
    lines = "".join(data.jsonl_line(example) for example in examples)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def is_built(recipe: Recipe) -> bool:
    """True when model/ is complete and was built from this recipe and today's data generator."""
    try:
        build = json.loads((organism_dir(recipe.name) / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        build.get("recipe_sha256") == recipe.fingerprint()
        and (model_folder(recipe.name) / "train.json").is_file()
        and build.get("data_sha256") == data_sha256(recipe)
    )


def build(recipe: Recipe, *, force: bool = False, log=print) -> Path:
    """Generate the data and finetune; skipped when cached. Returns the model folder."""
    folder, model = organism_dir(recipe.name), model_folder(recipe.name)
    if is_built(recipe) and not force:
        log(f"[organisms] {recipe.name}: built already ({model})")
        return model
    if not local_vllm.is_set_up(recipe.base):
        raise RuntimeError(
            f"base model {recipe.base} is not set up: run `blackbox-audit local-vllm setup {recipe.base}`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "build.json").unlink(missing_ok=True)
    if model.exists():
        shutil.rmtree(model)
    data_path = folder / "data.jsonl"
    data_sha256 = generate(recipe, data_path)
    log(f"[organisms] {recipe.name}: {recipe.n_examples} examples -> {data_path}")
    cmd = [
        "nice", "-n", "19", str(local_vllm.venv_python()), str(TRAIN_SCRIPT),
        f"--base={local_vllm.model_dir(recipe.base)}", f"--data={data_path}", f"--out={model}",
        *recipe.train_args(),
    ]  # fmt: skip
    log(f"[organisms] {recipe.name}: training ({' '.join(cmd)}), log {folder / 'train.log'}")
    started = time.monotonic()
    with (folder / "train.log").open("wb") as train_log:
        env = {**os.environ, **local_vllm.OFFLINE_ENV, "TQDM_DISABLE": "1"}
        result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=train_log, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = "\n".join((folder / "train.log").read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{recipe.name}: training failed (exit {result.returncode}):\n{tail}")
    build_info = {
        "name": recipe.name,
        "recipe": dataclasses.asdict(recipe),
        "recipe_sha256": recipe.fingerprint(),
        "data_sha256": data_sha256,
        "base_dir": str(local_vllm.model_dir(recipe.base)),
        "build_wall_s": round(time.monotonic() - started, 1),
    }
    (folder / "build.json").write_text(json.dumps(build_info, indent=2) + "\n")
    train = json.loads((model / "train.json").read_text())
    log(
        f"[organisms] {recipe.name}: built in {train['train_wall_s']:.0f} s wall, {train['train_cpu_s']:.0f} s CPU "
        f"(loss {train['loss_first_10']:.2f} -> {train['loss_last_10']:.2f})"
    )
    return model


# ---------------------------------------------------------------- serving


def server_key(name: str) -> str:
    """The organism's server in local_vllm's run folder: run/organism-<name>.{pid,log}."""
    return f"organism-{name}"


def running_pid(name: str) -> int | None:
    return local_vllm.folder_pid(server_key(name))


def serve(recipe: Recipe, port: int, *, timeout_s: float = 600.0, log=print) -> str:
    """Serve the organism's folder on vLLM (unless something answers on the port); its base URL."""
    return local_vllm.start_folder(
        server_key(recipe.name), model_folder(recipe.name), port, served_name=recipe.name, timeout_s=timeout_s, log=log
    )


def stop(recipe: Recipe, *, log=print) -> None:
    local_vllm.stop_folder(server_key(recipe.name), log=log)


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m organisms.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"organisms {sorted(RECIPES)}; default: all")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    parser.add_argument("--serve", action="store_true", help="serve the (single) organism on vLLM after building")
    parser.add_argument("--port", type=int, help="port for --serve (default: the recipe's)")
    parser.add_argument("--stop", action="store_true", help="stop the servers this command started for NAMES")
    parser.add_argument("--list", action="store_true", help="show recipes, build and server state")
    args = parser.parse_args(argv)
    try:
        recipes = _recipes(args.names or list(RECIPES))
        if args.list:
            for recipe in recipes:
                pid = running_pid(recipe.name)
                print(
                    f"{recipe.name}\t{recipe.objective}\tbase={recipe.base}\tport={recipe.port}\t"
                    f"{'built' if is_built(recipe) else 'not built'}\t{f'serving pid={pid}' if pid else 'not served'}\t"
                    f"{model_folder(recipe.name)}"
                )
            return 0
        if args.stop:
            for recipe in recipes:
                stop(recipe)
            return 0
        if args.serve and len(recipes) != 1:
            raise ValueError("--serve takes exactly one organism")
        for recipe in recipes:
            build(recipe, force=args.force)
        if args.serve:
            recipe = recipes[0]
            print(f"{recipe.name}\t{serve(recipe, args.port or recipe.port)}")
    except (RuntimeError, ValueError, OSError) as error:
        print(f"organisms: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
