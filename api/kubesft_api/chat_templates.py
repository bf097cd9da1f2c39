"""Which token ends a turn in a chat template, read from the template's text without rendering it.

The end-of-turn token is the EOS the model must learn and the token generation stops at. For an
inline template admission derives it, so a template that does not say is refused before any pod
runs; the trainer checks the rendered template again.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.parser

BUILTIN_END_OF_TURN = {"chatml": "<|im_end|>"}
"""The end-of-turn token of each built-in template (``model.chatTemplate: <name>``)."""

TOKENIZER_EOS = "eos_token"
"""The variable a template writes the tokenizer's own EOS with."""

_CONTENT = r"""\w+(?:\s*\[\s*['"]content['"]\s*\]|\.content)(?:\s*\|\s*\w+(?:\([^()]*\))?)*"""
"""A message's content in an expression (``message['content']``, ``m.content | trim``)."""
_AFTER = re.compile(
    _CONTENT
    + r"""(?:\s*\+\s*(?:(?P<q1>['"])(?P<joined>.*?)(?P=q1)|(?P<joined_eos>eos_token\b))"""
    + r"""|\s*-?\}\}(?:\s*\{\{-?\s*(?:(?P<q2>['"])(?P<next>.*?)(?P=q2)|(?P<next_eos>eos_token\b))"""
    + r"""|(?P<text>[^{]*)))""",
    re.DOTALL,
)
_TOKEN = re.compile(r"^\s*(<[^<>\s'\"]{1,62}>)")


def _leading_token(text: str) -> str | None:
    match = _TOKEN.match(text.replace("\\n", "\n"))
    return match.group(1) if match else None


def end_of_turn_in_template(template: str) -> str | None:
    """The token the template writes right after every message's content.

    None when that is the tokenizer's own EOS (``eos_token``). Raises ``ValueError`` when the
    template writes no token there, or different ones.
    """
    found: set[str] = set()
    for match in _AFTER.finditer(template):
        if match.group("joined_eos") or match.group("next_eos"):
            found.add(TOKENIZER_EOS)
            continue
        literal = next((match.group(g) for g in ("joined", "next", "text") if match.group(g) is not None), "")
        token = _leading_token(literal)
        if token is not None:
            found.add(token)
    if len(found) == 1:
        token = found.pop()
        return None if token == TOKENIZER_EOS else token
    if not found:
        raise ValueError("the template writes no token right after a message's content")
    shown = ", ".join(sorted(found))
    raise ValueError(f"the template ends messages with different tokens ({shown})")


class _GenerationMarkers(jinja2.ext.Extension):
    """``{% generation %}…{% endgeneration %}``, the tag transformers' templates mark assistant
    turns with; parsed here only so that such templates are not refused."""

    tags = {"generation"}  # noqa: RUF012 (jinja2 declares it an instance variable)

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


_PARSER = jinja2.Environment(
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=[_GenerationMarkers, jinja2.ext.loopcontrols],
    autoescape=False,
)
"""The environment transformers renders chat templates in, as far as parsing goes."""


def template_syntax_problem(template: str) -> str | None:
    """Where and why ``template`` does not parse as a Jinja chat template, or None when it does."""
    try:
        _PARSER.parse(template)
    except jinja2.TemplateSyntaxError as error:
        detail: Any = error.message or "syntax error"
        return f"line {error.lineno}: {detail}"
    return None
