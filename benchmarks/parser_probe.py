"""What ``fail_closed`` lets through as a clean allow: this tree's parser and policy against another revision's.

Two measurements (issue 22, "What counts as a clean allow"), each run once per revision in its own process:

1. **Mutated outputs.** The parser fuzz's structured outputs (``tests/reliability/test_parser_properties.py``:
   reasoning sections, conclusions, earlier and final answer lines, clean, ``None`` and decorated values),
   each with up to six random insertions of up to eight characters, as its ``test_mutated_outputs_never_crash``
   makes them (seeded ``random`` here, so that both revisions see the same texts). Every output that
   ``fail_closed`` allows is counted, and classified with knowledge of how it was built:

   - ``decorated``: a needed final answer was built as a label with trailing punctuation
     (``Request: unharmful.``) and is still in the text's end as the generator wrote it;
   - ``contradicted``: a needed harm task has a conclusion sentence that states ``harmful`` only and is still
     in the text as the generator wrote it, while the allow stands (the heading above it was mangled, or the
     task heading it belonged to).

2. **The released outputs.** Every one of the 6,585 (``../shared/data``): parse status, labels, harmful
   signals, recovered fields and the ``fail_closed`` decision, compared record by record.

    python benchmarks/parser_probe.py --n 100000 [--against main] [--json benchmarks/results/parser_probe.json]

``--against`` is a git revision; its ``packages/core/src`` is extracted with ``git archive`` into a temporary
folder. The fuzz generator is this tree's test module in both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = [chr(c) for c in range(32, 127)] + ["\n", "\t", "\r", "\u00e9", "\u2028", "\x00"]


def mutated(rng: random.Random, text: str) -> str:
    """Up to six insertions of up to eight characters, at positions drawn as the property test draws them."""
    for _ in range(rng.randrange(7)):
        position = rng.randrange(10_001) % (len(text) + 1)
        insert = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(9)))
        text = text[:position] + insert + text[position:]
    return text


def worker(n: int, seed: int, data: Path) -> dict:
    """Run in the revision's process: the fuzz allows and the released outputs' readings."""
    sys.path.insert(0, str(ROOT / "tests" / "reliability"))
    import test_parser_properties as fuzz
    from guardreasoner.parsing import parse_output
    from guardreasoner.policy import apply_policy
    from guardreasoner.tasks import Task

    rng = random.Random(seed)
    allows: dict[int, list[str]] = {}
    started = time.process_time()
    for index in range(n):
        output = fuzz.build_output(rng.getrandbits(64))
        text = mutated(rng, output.text)
        parsed = parse_output(text, has_response=output.has_response)
        if apply_policy(parsed, "fail_closed").is_harmful:
            continue
        kinds = []
        needed = [t for t in Task if output.has_response or not t.needs_response]
        if _decorated(text, output, needed):
            kinds.append("decorated")
        for task in (t for t in needed if t.is_harm_task):
            for sentence in output.conclusions.get(task, []):
                words = {w.lower() for w in fuzz.LABEL_WORDS.findall(sentence)}
                if words == {"harmful"} and sentence in text:
                    kinds.append("contradicted")
                    break
        allows[index] = sorted(set(kinds))
    fuzz_cpu = time.process_time() - started

    released = []
    for path in sorted((data / "predictions").glob("*/*/generated_predictions.jsonl")):
        for line in filter(None, path.read_text(encoding="utf-8").split("\n")):
            verdict = parse_output(json.loads(line)["predict"])
            decided = apply_policy(verdict, "fail_closed")
            released.append(
                [
                    verdict.parse_status.value,
                    verdict.prompt_harmfulness,
                    verdict.response_refusal,
                    verdict.response_harmfulness,
                    verdict.is_parsing_error,
                    verdict.harmful_signals,
                    verdict.recovered_fields,
                    decided.is_harmful,
                    decided.decided_by,
                ]
            )
    return {"allows": allows, "fuzz_cpu_s": fuzz_cpu, "released": released}


def _decorated(text: str, output, needed: list) -> bool:
    """Whether a needed task's final answer was built as a label with trailing punctuation (``unharmful.``,
    ``Unharmful ;``) and is still in the text's last lines as the generator wrote it."""
    tail = text[-400:]
    for task in needed:
        for value in output.final.get(task, []):
            stated = value.text.strip()
            if value.clean is not None and stated.lower() != value.clean and stated in tail:
                return True
    return False


def run_revision(src: Path, n: int, seed: int, data: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        code = (
            f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import parser_probe as p; "
            f"json.dump(p.worker({n}, {seed}, p.Path({str(data)!r})), open({out.name!r}, 'w'))"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
        return json.loads(Path(out.name).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="mutated outputs (default 100,000)")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--against", default="main", help="the git revision to compare with (default main)")
    parser.add_argument("--json", type=Path, help="write the report here too")
    args = parser.parse_args()
    data = (
        Path(os.environ.get("GUARDREASONER_SHARED_DATA", ROOT.parent / "shared" / "data")) / "guardreasoner"
    )

    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", args.against, "packages/core/src"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        before = run_revision(Path(tmp) / "packages" / "core" / "src", args.n, args.seed, data)
    after = run_revision(ROOT / "packages" / "core" / "src", args.n, args.seed, data)

    report = {"mutated_outputs": args.n, "seed": args.seed, "against": args.against}
    for name, run in (("before", before), ("after", after)):
        kinds = Counter(kind for found in run["allows"].values() for kind in found)
        both = sum(1 for found in run["allows"].values() if len(found) == 2)
        report[name] = {
            "clean_allows": len(run["allows"]),
            "decorated": kinds["decorated"],
            "contradicted": kinds["contradicted"],
            "decorated_and_contradicted": both,
            "neither": sum(1 for found in run["allows"].values() if not found),
            "fuzz_cpu_s": round(run["fuzz_cpu_s"], 1),
        }
    report["allowed_after_not_before"] = len(set(after["allows"]) - set(before["allows"]))
    changed = [i for i, (a, b) in enumerate(zip(before["released"], after["released"])) if a != b]
    report["released"] = {
        "outputs": len(after["released"]),
        "identical": len(after["released"]) - len(changed),
        "changed": changed[:20],
        "statuses_after": Counter(r[0] for r in after["released"]),
        "fail_closed_allows_after": sum(1 for r in after["released"] if r[7] is False),
    }
    text = json.dumps(report, indent=2, default=dict)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
