"""Reading and writing the plain files every stage exchanges, and checking what is in them.

Training records use GuardReasonerTrain's fields: ``instruction``, ``input`` (``"Human user:\\n...\\n\\nAI
assistant:\\n...\\n\\n"``) and ``output`` (the reasoning, ending with an ``Answers:`` block). The gold labels are
read from that final block with the core parser, the same way a trained model's answers are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardreasoner.errors import PromptFormatError
from guardreasoner.parsing import parse_output
from guardreasoner.prompt import NO_RESPONSE, answer_block, build_input, join_prompt, split_input
from guardreasoner.tasks import Task

from guardreasoner_training.errors import TrainingDataError

TRAIN_FIELDS = ("instruction", "input", "output")
_TASK_OF_NAME = {task.answer_key.lower(): task for task in Task}
"""GoldLabels' field names (the answer keys, lower-cased) to tasks."""


# ---------------------------------------------------------------------------------------------------------------
# Files


def read_rows(source: str | os.PathLike[str], *, split: str | None = None) -> list[dict[str, Any]]:
    """Rows from a JSON array, a JSONL file, or (when ``source`` is no local path) a hub dataset id.

    A hub dataset with several splits (GuardReasonerTrain has one per source) is read whole unless ``split``
    names one or more (comma-separated).
    """
    path = Path(source).expanduser()
    if path.is_file():
        return _read_file(path)
    if path.exists():
        raise TrainingDataError(f"{path} is not a file; pass a .json or .jsonl file, or a hub dataset id.")
    text = os.fspath(source)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise TrainingDataError(
            f"'{text}' is neither an existing file nor a hub dataset id of the form 'owner/name' "
            "(e.g. yueliu1999/GuardReasonerTrain)."
        )
    return _read_hub(text, split)


def _read_file(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path} starts like a JSON array but does not parse: {exc}.") from exc
    else:
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TrainingDataError(
                    f"{path}, line {number}, is not JSON ({exc.msg}). Each line of a .jsonl file must hold one "
                    "JSON object; a .json file must hold one array."
                ) from exc
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TrainingDataError(f"{path}: record {index} is a {type(row).__name__}, not a JSON object.")
    return rows


def _read_hub(dataset_id: str, split: str | None) -> list[dict[str, Any]]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # the hub client raises many types; the message says what happened
        raise TrainingDataError(
            f"Could not load the hub dataset '{dataset_id}' ({type(exc).__name__}: {exc}). Check the id, log in "
            "with `hf auth login` for gated sets, or download it and pass the JSON/JSONL file instead."
        ) from exc
    names = [s.strip() for s in split.split(",")] if split else list(loaded.keys())
    unknown = [name for name in names if name not in loaded]
    if unknown:
        raise TrainingDataError(f"'{dataset_id}' has no split {unknown}; it has {sorted(loaded.keys())}.")
    rows: list[dict[str, Any]] = []
    for name in names:
        rows.extend({**row, "source": row.get("source", name)} for row in loaded[name])
    return rows


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows to a JSONL file (through a temporary file, so a reader never sees half of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def iter_jsonl_tolerant(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file a stage appends to, skipping a last line cut short by an interrupted run."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a write cut short: the record is simply redone
                return
            raise TrainingDataError(
                f"{path}, line {number}, is not JSON; fix or delete that line and rerun."
            ) from None


def open_for_append(path: Path) -> Any:
    """Open a JSONL file a stage appends to, first cutting a last line left half-written by an interrupted run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        with path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    return path.open("a", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# Labels


@dataclass(frozen=True)
class GoldLabels:
    """The three answers of one record; None where the record does not say (e.g. no AI response)."""

    request: str | None
    completion: str | None = None
    response: str | None = None

    def __post_init__(self) -> None:
        for name, task in _TASK_OF_NAME.items():
            value = getattr(self, name)
            if value is not None and value not in task.labels:
                raise TrainingDataError(
                    f"'{value}' is not a {name} label; use one of {sorted(task.labels)} or None."
                )

    def get(self, task: Task) -> str | None:
        """The label of ``task``."""
        return getattr(self, task.answer_key.lower())

    @property
    def known(self) -> dict[str, str]:
        return {name: value for name, value in self.as_dict().items() if value is not None}

    def as_dict(self) -> dict[str, str | None]:
        return {"request": self.request, "completion": self.completion, "response": self.response}

    def answer_block(self) -> str:
        """The final block of a GuardReasoner output with these labels (``None`` where unknown)."""
        return answer_block({task: self.get(task) for task in Task})


def response_of(input_text: str) -> str | None:
    """The AI response inside a GuardReasoner ``input``, or None when it says ``None`` (prompt only)."""
    try:
        _, response = split_input(input_text)
    except PromptFormatError:
        return None
    return None if response is None or response.strip() == NO_RESPONSE else response


def labels_from_output(output: str, *, has_response: bool, partial: bool = False) -> GoldLabels | None:
    """The labels stated by an output's final Answers block, or None when it cannot be read.

    ``partial`` also reads an Answers block that lacks labels (None there), as long as it states the request label.
    """
    verdict = parse_output(output, has_response=has_response)
    if verdict.prompt_harmfulness is None or (verdict.is_parsing_error and not partial):
        return None
    return GoldLabels(verdict.prompt_harmfulness, verdict.response_refusal, verdict.response_harmfulness)


# ---------------------------------------------------------------------------------------------------------------
# Training records


@dataclass(frozen=True)
class TrainRecord:
    """One GuardReasonerTrain record."""

    instruction: str
    input: str
    output: str
    id: str
    source: str | None = None

    @property
    def prompt(self) -> str:
        """The raw prompt the model sees: ``instruction + "\\n" + input``, as LLaMA-Factory joins them."""
        return join_prompt(self.instruction, self.input)

    @property
    def has_response(self) -> bool:
        return response_of(self.input) is not None

    def labels(self) -> GoldLabels | None:
        return labels_from_output(self.output, has_response=self.has_response)

    def as_row(self) -> dict[str, Any]:
        row = {"id": self.id, "instruction": self.instruction, "input": self.input, "output": self.output}
        if self.source is not None:
            row["source"] = self.source
        return row


def record_id(instruction: str, input_text: str, output: str = "") -> str:
    """A stable id from the record's content, for resuming and de-duplicating."""
    digest = hashlib.sha1("\x1f".join((instruction, input_text, output)).encode("utf-8")).hexdigest()
    return digest[:16]


def to_train_records(
    rows: list[dict[str, Any]], *, where: str, require_output: bool = True
) -> list[TrainRecord]:
    """Check rows for GuardReasonerTrain's fields and turn them into records.

    Raises :class:`TrainingDataError` naming the first bad records and what they lack.
    """
    needed = TRAIN_FIELDS if require_output else TRAIN_FIELDS[:2]
    problems: list[str] = []
    records: list[TrainRecord] = []
    for index, row in enumerate(rows):
        missing = [name for name in needed if not isinstance(row.get(name), str) or not row[name].strip()]
        if missing:
            problems.append(f"record {index} has no {', '.join(missing)}")
            continue
        output = row.get("output") or ""
        rid = (
            str(row["id"])
            if row.get("id") is not None
            else record_id(row["instruction"], row["input"], output)
        )
        records.append(TrainRecord(row["instruction"], row["input"], output, rid, row.get("source")))
    if problems:
        raise TrainingDataError(
            f"{where}: {len(problems)} of {len(rows)} records lack required text fields ({'; '.join(problems[:5])}"
            f"{'; ...' if len(problems) > 5 else ''}). Every record needs non-empty strings "
            f"{', '.join(repr(n) for n in needed)} as in GuardReasonerTrain; records of labelled conversations "
            "(prompt, response, labels) go through `guardreasoner-train synthesize` first."
        )
    return records


# ---------------------------------------------------------------------------------------------------------------
# Labelled conversations (the input of `synthesize`)


@dataclass(frozen=True)
class LabelledExample:
    """A conversation with gold labels and no reasoning yet."""

    prompt: str
    response: str | None
    labels: GoldLabels
    id: str

    @property
    def input(self) -> str:
        return build_input(self.prompt, self.response)


_WILDGUARD_NAMES = {
    "request": "prompt_harm_label",
    "completion": "response_refusal_label",
    "response": "response_harm_label",
}


def to_labelled_examples(rows: list[dict[str, Any]], *, where: str) -> list[LabelledExample]:
    """Labelled conversations from rows in one of three shapes.

    - WildGuardMix names: ``prompt``, ``response``, ``prompt_harm_label``, ``response_refusal_label``,
      ``response_harm_label``;
    - ``prompt``, ``response`` and ``labels: {"request", "completion", "response"}``;
    - GuardReasoner records, ``input`` and an ``output`` holding an ``Answers:`` block.
    """
    examples: list[LabelledExample] = []
    problems: list[str] = []
    for index, row in enumerate(rows):
        try:
            examples.append(_labelled(row))
        except TrainingDataError as exc:
            problems.append(f"record {index}: {exc}")
    if problems:
        raise TrainingDataError(
            f"{where}: {len(problems)} of {len(rows)} records cannot be used ({'; '.join(problems[:3])}"
            f"{'; ...' if len(problems) > 3 else ''}). Give each record a 'prompt' (and 'response' when there is "
            "one) with labels as 'prompt_harm_label'/'response_refusal_label'/'response_harm_label', or as "
            "'labels': {'request': ..., 'completion': ..., 'response': ...}."
        )
    return examples


def _labelled(row: dict[str, Any]) -> LabelledExample:
    if isinstance(row.get("prompt"), str):
        prompt = row["prompt"]
        response = row.get("response")
        if response is not None and (not isinstance(response, str) or response.strip() in ("", NO_RESPONSE)):
            response = None
        if isinstance(row.get("labels"), dict):
            values = {name: row["labels"].get(name) for name in _TASK_OF_NAME}
        else:
            values = {name: row.get(field) for name, field in _WILDGUARD_NAMES.items()}
    elif isinstance(row.get("input"), str) and isinstance(row.get("output"), str):
        try:
            prompt, _ = split_input(row["input"])
        except PromptFormatError:
            raise TrainingDataError(
                "its 'input' is not in the 'Human user:\\n...\\n\\nAI assistant:\\n...' form"
            ) from None
        response = response_of(row["input"])
        read = labels_from_output(row["output"], has_response=response is not None)
        if read is None:
            raise TrainingDataError("its 'output' has no readable 'Answers:' block with a Request label")
        values = read.as_dict()
    else:
        raise TrainingDataError("it has neither a 'prompt' nor 'input' and 'output'")
    cleaned = {name: _clean_label(name, value) for name, value in values.items()}
    if response is None:
        cleaned["completion"] = cleaned["response"] = None
    if not any(cleaned.values()):
        raise TrainingDataError("it has no label")
    labels = GoldLabels(**cleaned)
    rid = (
        str(row["id"])
        if row.get("id") is not None
        else record_id(prompt, response or "", json.dumps(labels.as_dict()))
    )
    return LabelledExample(prompt, response, labels, rid)


def _clean_label(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) and name != "completion":  # toxicity flags: True means harmful
        return "harmful" if value else "unharmful"
    text = str(value).strip().lower()
    if text in ("", "none", "null", "nan"):
        return None
    if text not in _TASK_OF_NAME[name].labels:
        raise TrainingDataError(
            f"'{value}' is not a {name} label (expected one of {sorted(_TASK_OF_NAME[name].labels)})"
        )
    return text
