"""The spec's cross-field rules as CEL, for the CRD's ``x-kubernetes-validations``.

The pydantic validators beside each model stay the reference (they are what the webhook, the
operator and the trainer run); the rules here say the same for the API server, so that
``kubectl apply`` refuses such a spec, naming the field, even where the webhook is off or down.
Each rule's message is the validator's, and ``fieldPath`` points at the field the validator names.
Optional fields may be absent, so every rule guards its reads with ``has()``.
"""

from __future__ import annotations

from pydantic import ConfigDict
from pydantic.config import JsonDict

Rule = dict[str, str]


def validations(*rules: Rule) -> ConfigDict:
    """A model_config fragment carrying ``rules`` into the model's JSON schema."""
    listed: list[dict[str, str]] = list(rules)
    extra: JsonDict = {"x-kubernetes-validations": listed}  # type: ignore[dict-item]
    return ConfigDict(json_schema_extra=extra)


def rule(cel: str, message: str, field: str) -> Rule:
    return {"rule": cel, "message": message, "fieldPath": f".{field}"}


def present(path: str) -> str:
    """``has()`` for a dotted path below self, each level guarded (``has(a.b)`` fails without a)."""
    parts = path.split(".")
    return " && ".join(f"has(self.{'.'.join(parts[: n + 1])})" for n in range(len(parts)))


def is_true(path: str) -> str:
    return f"({present(path)} && self.{path})"


def differs(path: str, value: str) -> str:
    """The field is set to something other than ``value`` (its default)."""
    return f"({present(path)} && self.{path} != '{value}')"


def equals(path: str, value: str) -> str:
    return f"({present(path)} && self.{path} == '{value}')"


def both_message(first: str, second: str) -> str:
    return f"set either {first} or {second}, not both"


def neither_message(first: str, second: str) -> str:
    return f"set one of {first} or {second}"


def either(first: str, second: str, *, required: bool, unless: str | None = None) -> list[Rule]:
    """At most one of two fields (and, if ``required``, one), as ``base.one_of`` checks them;
    ``unless``: a CEL condition under which neither rule applies."""
    skip = f"{unless} || " if unless else ""
    rules = [rule(f"{skip}!({present(first)} && {present(second)})", both_message(first, second), second)]
    if required:
        rules.append(
            rule(f"{skip}{present(first)} || {present(second)}", neither_message(first, second), first)
        )
    return rules


def needs(condition: str, requirement: str, message: str, field: str) -> Rule:
    """When ``condition`` holds, ``requirement`` must too."""
    return rule(f"!({condition}) || ({requirement})", message, field)


def exactly_one(message: str, *fields: str) -> Rule:
    """One of ``fields`` exactly; the error names the object, as the model's validator does."""
    count = " + ".join(f"({present(f)} ? 1 : 0)" for f in fields)
    return {"rule": f"{count} == 1", "message": message}
