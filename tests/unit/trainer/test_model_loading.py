"""Loading the model and tokenizer: chat templates kept or replaced, dtype, and models that
need their own code."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from kubesft_api import exit_codes
from testing.tinymodel import chat_rows, write_jsonl
from tests.support.trainer import last_stderr_line, run_trainer, trainer_config, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "chat.jsonl", chat_rows(40))


def test_the_models_own_template_is_kept_an_inline_one_used_and_dtype_honoured(
    model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from kubesft_api.model import ModelSource
    from kubesft_trainer.model.loading import ModelLocation, load_model, load_tokenizer, prepare_tokenizer

    own = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    chat_model = tmp_path / "chat-model"
    shutil.copytree(model, chat_model)
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    tokenizer.chat_template = own
    tokenizer.save_pretrained(chat_model)
    location = ModelLocation(path=str(chat_model), field="model.uri", description=str(chat_model))
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]

    kept = load_tokenizer(ModelSource(uri=str(chat_model)), location)
    setup = prepare_tokenizer(kept, ModelSource(uri=str(chat_model)))
    assert kept.chat_template == own and setup.eos_token is None
    assert str(kept.apply_chat_template(conversation, tokenize=False)).startswith(
        "<|im_start|>user\nhi<|im_end|>"
    )

    inline = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|end|>\n{% endfor %}"
    source = ModelSource.model_validate({"uri": str(chat_model), "chatTemplate": inline})
    replaced = load_tokenizer(source, location)
    setup = prepare_tokenizer(replaced, source)
    text = "user: hi<|end|>\nassistant: hello<|end|>\n"
    assert replaced.apply_chat_template(conversation, tokenize=False) == text
    # The end of turn comes from the template; it becomes one token, and the EOS the model learns.
    assert setup.eos_token == "<|end|>" and setup.added_tokens[0] == "<|end|>"
    assert replaced.convert_ids_to_tokens(replaced("hello<|end|>")["input_ids"])[-1] == "<|end|>"

    import torch

    for dtype, expected in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        source = ModelSource(uri=str(chat_model), dtype=dtype)
        assert load_model(source, location, replaced, dtype).dtype == expected


def test_an_eos_token_the_template_never_writes_fails_and_the_models_own_template_only_warns(
    model: Path, chat_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kubesft_api.model import ModelSource
    from kubesft_trainer.errors import ConfigError
    from kubesft_trainer.model.loading import ModelLocation, load_tokenizer, prepare_tokenizer

    location = ModelLocation(path=str(model), field="model.uri", description=str(model))
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    source = ModelSource.model_validate(
        {"uri": str(model), "chatTemplate": template, "eosToken": "<|im_end|>"}
    )
    with pytest.raises(
        ConfigError, match=r"model.eosToken: the chat template does not write <\|im_end\|> right"
    ):
        prepare_tokenizer(load_tokenizer(source, location), source)

    # A model's own template that ends turns with another token than the tokenizer's EOS.
    own = tmp_path / "own"
    shutil.copytree(model, own)
    location = ModelLocation(path=str(own), field="model.uri", description=str(own))
    tokenizer = load_tokenizer(ModelSource(uri=str(own)), location)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}"
    tokenizer.save_pretrained(own)
    with caplog.at_level(logging.WARNING):
        prepare_tokenizer(tokenizer, ModelSource(uri=str(own)))
    assert "does not write <|endoftext|> right after an assistant turn; set model.eosToken" in caplog.text
    fixed = ModelSource(uri=str(own), eos_token="<|im_end|>")
    assert prepare_tokenizer(load_tokenizer(fixed, location), fixed).eos_token == "<|im_end|>"

    raw = trainer_config(own, chat_data, tmp_path / "out")
    raw["model"] = {"uri": str(own), "eosToken": "<|im_end|>"}
    result = run_trainer(write_config(tmp_path / "own.yaml", raw), tmp_path / "work", "--validate")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "⟧" in result.stdout


def _model_with_its_own_code(model: Path, directory: Path) -> Path:
    """The tiny model as a hub repository with custom code would ship it: ``auto_map`` classes."""
    shutil.copytree(model, directory)
    (directory / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyConfig(LlamaConfig):\n"
        '    model_type = "kubesft-tiny"\n'
    )
    (directory / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n"
    )
    config = json.loads((directory / "config.json").read_text())
    config.update(
        model_type="kubesft-tiny",
        architectures=["TinyForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
    )
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_model_with_its_own_code_loads_only_with_trust_remote_code(
    model: Path, chat_data: Path, tmp_path: Path
) -> None:
    custom = _model_with_its_own_code(model, tmp_path / "custom-model")
    raw = trainer_config(custom, chat_data, tmp_path / "out")
    refused = run_trainer(write_config(tmp_path / "refused.yaml", raw), tmp_path / "work", "--validate")
    assert refused.returncode == exit_codes.INVALID_DATA, refused.stderr[-3000:]
    line = last_stderr_line(refused)
    assert f"model.uri: the model of {custom} needs its own Python code to load" in line
    assert "model.trustRemoteCode: true" in line

    raw["model"]["trustRemoteCode"] = True
    trusted = run_trainer(write_config(tmp_path / "trusted.yaml", raw), tmp_path / "work", "--validate")
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    # The config class came from the model's own file, run as transformers runs remote code
    # (--validate loads the config, not the weights).
    modules = tmp_path / "work" / "hf" / "modules" / "transformers_modules"
    assert list(modules.rglob("configuration_tiny.py")), "the model's code was not loaded"
