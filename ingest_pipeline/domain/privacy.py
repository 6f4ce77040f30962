"""Privacy: personal fields pseudonymized (or dropped) before they reach the normalized layer.

Rules kept here:
- What is personal is configured in the tenants file: per source instance `pii: [fields]` and
  `pii_drop: [fields]`, fields of its normalized entity (`ip`, `author_name`, `text`, ...); for
  the landed kinds the same under the tenant's `landing:` block (`landing: {events: {pii: [ip]},
  logs: {pii: [message]}}`). The tenant's `pii_key_env` names the environment variable holding
  its secret key; rules without it leave the instance out of the file (named, with why), and an
  unset variable fails the instance's run (MissingSecretError): never a load in clear.
- A token is `pii_` and the first 32 hex digits of HMAC-SHA256(tenant key, value): the same value
  gives the same token in every run, so the anti-gaming rules (one view per ip and item within 10
  minutes) and every join work on tokens as on the values; another tenant's key gives another
  token. A token is recognized and never pseudonymized again: applying the rules twice changes
  nothing.
- An identifier listed in `pii` (ip, author, author_id, author_name, actor_id, ...) is replaced
  whole; IP addresses in canonical form (`ipaddress`) and e-mail addresses lower-cased, so one
  address is one token however it was written. A free-text field (`FREE_TEXT`: title, summary,
  text, message, attributes, properties) keeps its text, with every e-mail address and IP address
  inside it replaced by its token: the same token as the whole value gets, so an address in a log
  message joins the `ip` column of an event. A field in `pii_drop` becomes null.
- Raw (pulled sources): unless the tenant says `pii_keep_raw: true`, raw stores pseudonymized
  values too. Before dlt writes a row, the row is mapped as the normalizer will map it, and every
  text value of the raw row equal to a listed identifier's value is replaced by its token (by
  null for a dropped one); with a free-text field listed, the addresses inside every text value
  of the row too. A value the source sent as a number (Discourse's `user_id`) stays a number in
  raw; its normalized field holds the token. With `pii_keep_raw: true` raw keeps what the source
  sent and the normalized layer is pseudonymized from it (a replay gives the same tokens).
- Rejects: a reject's payload (the raw row or line) is scrubbed as a raw row is, and the e-mail
  and IP addresses in it always: its row may be one the mapper could not read.
- The key is read when a pseudonymizer is made and never reaches a log, a reject or metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest_pipeline.lib.source_types import EnvName, PiiField

TOKEN_PREFIX = "pii_"
TOKEN_PATTERN = re.compile(r"pii_[0-9a-f]{32}")
# Free text: what a person wrote, kept, with the addresses inside it pseudonymized.
FREE_TEXT = frozenset(("title", "summary", "text", "message", "attributes", "properties"))
# Fields that say where a row came from or which row it is: never personal, never tokens.
NOT_PERSONAL = frozenset(
    (
        "tenant_id",
        "source_type",
        "source_instance",
        "external_id",
        "event_id",
        "event_type",
        "raw_load_id",
        "ingested_at",
        "upload_id",
        "object_key",
        "line_no",
    )
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Candidates, each confirmed by `ipaddress` (a time such as 12:30:45 is not an IPv6 address).
_IP = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])"
)
_MAYBE_ADDRESS = re.compile(r"@|\d\.\d|:[0-9A-Fa-f]*:")


class PiiRules(BaseModel):
    """What to pseudonymize (`pii`) and what to drop (`pii_drop`): fields of the entity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pii: tuple[PiiField, ...] = ()
    pii_drop: tuple[PiiField, ...] = ()


class TenantPrivacy(BaseModel):
    """A tenant's privacy settings: the env var of its key, whether raw keeps what sources
    sent, and the rules of its landed kinds (`landing: {events: {pii: [ip]}}`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pii_key_env: EnvName | None = None
    pii_keep_raw: bool = False
    landing: dict[Literal["events", "logs", "crawl"], PiiRules] = Field(default_factory=dict)

    def rules(self, pii: Iterable[str], drop: Iterable[str]) -> PrivacyRules | None:
        """The rules for these fields with this tenant's key; None if there are none.
        ValueError if there are but the tenant names no key."""
        pii, drop = frozenset(pii), frozenset(drop)
        if not (pii or drop):
            return None
        if not self.pii_key_env:
            raise ValueError("pii needs the tenant's pii_key_env (the env var of its key)")
        return PrivacyRules(
            pii=pii, drop=drop, key_env=self.pii_key_env, keep_raw=self.pii_keep_raw
        )

    def landed(self, kind: str) -> PrivacyRules | None:
        """The rules of a landed kind (`landing: {<kind>: ...}`); None if it has none."""
        given = self.landing.get(kind)  # type: ignore[call-overload]
        return self.rules(given.pii, given.pii_drop) if given else None


PRIVACY_KEYS = tuple(TenantPrivacy.model_fields)


class PrivacyRules(BaseModel):
    """The rules of one source instance or landed kind, with its tenant's key (by name)."""

    model_config = ConfigDict(frozen=True)

    pii: frozenset[str] = frozenset()
    drop: frozenset[str] = frozenset()
    key_env: str
    keep_raw: bool = False

    def check_fields(self, entity: str, columns: Iterable[str]) -> None:
        """ValueError naming a listed field that is not one of the entity's text `columns` or is
        one that says where a row came from."""
        allowed = set(columns) - NOT_PERSONAL
        if unknown := sorted((self.pii | self.drop) - allowed):
            raise ValueError(
                f"pii: {', '.join(unknown)} not a personal text field of normalized.{entity} "
                f"(one of {', '.join(sorted(allowed))})"
            )

    def pseudonymizer(self) -> Pseudonymizer:
        """The rules with the key read now (MissingSecretError naming the variable if unset)."""
        from ingest_pipeline.domain.tenants import resolve_secret

        return Pseudonymizer(resolve_secret(self.key_env).encode(), self.pii, self.drop)


@dataclass(frozen=True)
class Pseudonymizer:
    key: bytes
    pii: frozenset[str]
    drop: frozenset[str]

    def __repr__(self) -> str:  # the key stays out of every log and error
        return f"Pseudonymizer(pii={sorted(self.pii)}, drop={sorted(self.drop)})"

    @property
    def fields(self) -> frozenset[str]:
        return self.pii | self.drop

    def token(self, value: str) -> str:
        """The value's token (a token stays itself)."""
        if TOKEN_PATTERN.fullmatch(value):
            return value
        digest = hmac.new(self.key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return TOKEN_PREFIX + digest.hexdigest()[:32]

    def identifier(self, value: Any) -> str:
        """An identifier's token: one address is one token however it was written."""
        return self.token(canonical(str(value)))

    def in_text(self, text: str) -> str:
        """The text with every e-mail and IP address in it replaced by its token."""
        if not _MAYBE_ADDRESS.search(text):
            return text
        text = _EMAIL.sub(lambda m: self.token(m.group().lower()), text)
        return _IP.sub(lambda m: self._ip_token(m.group()), text)

    def _ip_token(self, candidate: str) -> str:
        try:
            return self.token(str(ipaddress.ip_address(candidate)))
        except ValueError:
            return candidate

    def in_value(self, value: Any) -> Any:
        """`in_text` through a JSON value (dicts, lists) or JSON text."""
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, dict):
            return {k: self.in_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.in_value(v) for v in value]
        return value

    def field(self, name: str, value: Any) -> Any:
        """A normalized field's value under the rules."""
        if value is None or name in self.drop:
            return None
        if name not in self.pii:
            return value
        if name in FREE_TEXT:
            return self.in_value(value)
        return self.identifier(value)

    def record(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A mapped record with its personal fields pseudonymized or dropped."""
        return {name: self.field(name, value) for name, value in fields.items()}

    def columns(self, mapped: Mapping[str, Any]) -> dict[str, Any]:
        """A mapped batch ({field: Arrow column}) with its personal columns pseudonymized."""
        import pyarrow as pa
        import pyarrow.compute as pc

        out = dict(mapped)
        for name in self.fields & set(mapped):
            column = mapped[name]
            kind = column.type if pa.types.is_string(column.type) else pa.string()
            if name in self.drop:
                out[name] = pa.nulls(len(column), kind)
                continue
            # Each distinct value once (an IP or a user id repeats across a batch), then taken.
            encoded = pc.dictionary_encode(column)
            if isinstance(encoded, pa.ChunkedArray):
                encoded = encoded.unify_dictionaries().combine_chunks()
            tokens = [self.field(name, v) for v in encoded.dictionary.to_pylist()]
            out[name] = pa.array(tokens, kind).take(encoded.indices)
        return out

    def table(self, rows: Any) -> Any:
        """An Arrow table of normalized rows with its personal columns pseudonymized."""
        personal = [name for name in rows.column_names if name in self.fields]
        for name, column in self.columns({n: rows.column(n) for n in personal}).items():
            index = rows.column_names.index(name)
            rows = rows.set_column(index, rows.field(index), column.cast(rows.field(index).type))
        return rows

    def raw_table(self, raw: Any, mapped: Mapping[str, Any]) -> Any:
        """`raw_row` for an Arrow batch of raw rows: `mapped` is {field: column} of the batch
        (a batch mapper's), the text columns scrubbed at once."""
        import pyarrow as pa
        import pyarrow.compute as pc

        replace: dict[str, str | None] = {}
        for name in self.fields & set(mapped):
            for value in pc.unique(mapped[name]).to_pylist():
                replace.update(self._replacements({name: value}))
        keys = pa.array(list(replace), pa.string())
        tokens = pa.array(list(replace.values()), pa.string())
        for index, field in enumerate(raw.schema):
            if not pa.types.is_string(field.type):
                continue
            column = raw.column(index)
            if len(keys):
                found = pc.index_in(pc.utf8_trim_whitespace(column), value_set=keys)
                column = pc.if_else(pc.is_null(found), column, tokens.take(found))
            if self.pii & FREE_TEXT:
                column = self._scrub_column(column)
            raw = raw.set_column(index, field, column)
        return raw

    def _scrub_column(self, column: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        maybe = pc.fill_null(pc.match_substring_regex(column, _MAYBE_ADDRESS.pattern), False)
        if not pc.any(maybe).as_py():
            return column
        values = column.to_pylist()
        for n in pc.indices_nonzero(maybe).to_pylist():
            values[n] = self.in_text(values[n])
        return pa.array(values, pa.string())

    def raw_row(self, row: Mapping[str, Any], mapped: Mapping[str, Any]) -> dict[str, Any]:
        """A raw row as raw may keep it: the text values that became personal fields replaced
        (see the module's rules); `mapped` is what the row's mapper made of it."""
        replace = self._replacements(mapped)
        scrub = self.in_text if self.pii & FREE_TEXT else None
        return _walk(row, replace, scrub)  # type: ignore[return-value]

    def _replacements(self, mapped: Mapping[str, Any]) -> dict[str, str | None]:
        replace: dict[str, str | None] = {}
        for name, value in mapped.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if name in self.drop:
                replace[value.strip()] = None
            elif name in self.pii and name not in FREE_TEXT:
                replace[value.strip()] = self.identifier(value)
        return replace

    def payload(self, text: str) -> str:
        """A reject's payload: a raw row's JSON (or a raw line) scrubbed as `raw_row` does, with
        every e-mail and IP address in it replaced whatever the rules list."""
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return self.in_text(text)
        by_name = {k: v for k, v in document.items() if k in self.fields}
        replace = self._replacements(by_name)
        return json.dumps(_walk(document, replace, self.in_text), default=str, sort_keys=True)


def canonical(value: str) -> str:
    """An identifier as it is tokenized: stripped; an IP address in `ipaddress`'s form; an
    e-mail address lower-cased."""
    value = value.strip()
    if _MAYBE_ADDRESS.search(value):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            if _EMAIL.fullmatch(value):
                return value.lower()
    return value


def _walk(value: Any, replace: Mapping[str, str | None], scrub: Callable[[str], str] | None) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped in replace:
            return replace[stripped]
        return scrub(value) if scrub else value
    if isinstance(value, dict):
        return {k: _walk(v, replace, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, replace, scrub) for v in value]
    return value
