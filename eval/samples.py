"""The synthetic sample files shipped in ``eval/data`` — invented entities, written by this code.

They have the real datasets' columns (``tasks.SCHEMAS``) and the same prompt shape (a page of
facts, then ``key:`` or a cloze sentence; the answer occurs in the page), so the offline
mirrors run end to end without a network. They are not SWDE, FDA or SQuAD rows and scores on
them are SAMPLE scores. Regenerate (deterministic) with ``python -m zoo.eval.samples``.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Dict, List

from zoo.eval.tasks import SAMPLE_DIR

N_ROWS = 8
_SYL = ["ka", "lo", "mir", "ven", "tor", "zel", "qua", "rin", "dol", "fen", "sab", "ix", "or", "wyn", "bel", "cra"]


def _name(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()


def _person(rng: random.Random) -> str:
    return f"{_name(rng)} {_name(rng, 3)}"


def swde_rows(rng: random.Random) -> List[Dict[str, str]]:
    """Movie and university pages flattened to text, SWDE-style: the prompt ends in ``key:``."""
    rows = []
    for i in range(N_ROWS):
        if i % 2 == 0:
            facts = {
                "title": f"The {_name(rng)} {rng.choice(['Heron', 'Lantern', 'Orchard', 'Tide'])}",
                "director": _person(rng),
                "year": str(rng.randint(2030, 2090)),
                "genre": rng.choice(["drama", "comedy", "mystery", "western"]),
                "runtime": f"{rng.randint(80, 150)} min",
            }
            site, key = "synthetic-movies.example", rng.choice(["director", "year", "genre"])
        else:
            facts = {
                "name": f"University of {_name(rng, 3)}",
                "city": _name(rng, 3),
                "founded": str(rng.randint(1800, 2000)),
                "students": f"{rng.randint(2, 60)},{rng.randint(100, 999)}",
                "motto": f"{_name(rng)} et {_name(rng)}",
            }
            site, key = "synthetic-universities.example", rng.choice(["city", "founded", "students"])
        page = " | ".join(f"{k.capitalize()}: {v}" for k, v in facts.items())
        text = f"{site} home | {page} | Contact | Sitemap\n{key}:"
        rows.append({"doc_id": f"synthetic-swde-{i}", "file_name": f"{site}/page-{i:04d}.htm",
                     "key": key, "value": facts[key], "text": text})
    return rows


def fda_rows(rng: random.Random) -> List[Dict[str, str]]:
    """Invented device-clearance summaries, FDA-style: the prompt ends in ``key:``."""
    rows = []
    for i in range(N_ROWS):
        facts = {
            "applicant": f"{_name(rng, 3)} Medical Devices Ltd",
            "device name": f"{_name(rng)} {rng.choice(['Infusion Monitor', 'Pulse Cuff', 'Bone Screw', 'Catheter'])}",
            "product code": "".join(rng.choice("QXZWJV") for _ in range(3)),
            "predicate device": f"{_name(rng)}-{rng.randint(100, 999)}",
        }
        key = rng.choice(list(facts))
        body = (f"SYNTHETIC CLEARANCE SUMMARY {i}. Submitter: {facts['applicant']}. "
                f"Trade name: {facts['device name']}. Product code: {facts['product code']}. "
                f"Substantially equivalent to {facts['predicate device']}. Intended use: monitoring in "
                f"{rng.choice(['clinics', 'homes', 'hospitals'])}.")
        rows.append({"doc_id": f"synthetic-fda-{i}", "file_name": f"SYN{i:05d}.txt", "key": key,
                     "value": facts[key], "text": f"{body}\n{key}:"})
    return rows


def squad_rows(rng: random.Random) -> List[Dict[str, str]]:
    """Invented encyclopedia paragraphs with a cloze completion, SQuAD-completion style."""
    rows = []
    for i in range(N_ROWS):
        place, builder = _name(rng, 3), _person(rng)
        year, height = str(rng.randint(1700, 1950)), str(rng.randint(20, 90))
        context = (f"The {place} Lighthouse stands on a rocky cape of the invented island of {_name(rng)}. "
                   f"It was designed by {builder} and first lit in {year}. The tower is {height} metres tall "
                   f"and its lamp was converted to electricity much later.")
        kind = i % 3
        if kind == 0:
            question, cloze, value = f"Who designed the {place} Lighthouse?", f"The {place} Lighthouse was designed by", builder
        elif kind == 1:
            question, cloze, value = f"When was the {place} Lighthouse first lit?", f"The {place} Lighthouse was first lit in", year
        else:
            question, cloze, value = f"How tall is the {place} Lighthouse?", f"The {place} Lighthouse tower is", f"{height} metres"
        rows.append({"doc_id": f"synthetic-squad-{i}", "text": f"{context} {cloze}", "value": value,
                     "title": f"{place} Lighthouse (synthetic)", "context": context, "question": question})
    return rows


def build(seed: int = 2406) -> Dict[str, List[Dict[str, str]]]:
    """All three sample sets, deterministic in ``seed``."""
    rng = random.Random(seed)
    return {"swde": swde_rows(rng), "fda": fda_rows(rng), "squad_completion": squad_rows(rng)}


def write(directory: Path = SAMPLE_DIR) -> List[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, rows in build().items():
        path = directory / f"{task}.json"
        path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write():
        print(p, p.stat().st_size, "bytes")
