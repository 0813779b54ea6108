"""Task names as users type them: friendly aliases, groups, offline mirrors, generation settings.

    resolve_tasks("recall,piqa")  -> ["swde", "squad_completion", "fda", "piqa"]
    resolve_tasks("squad")        -> ["squad_completion"]

Groups: ``recall`` = the paper's recall-intensive suite (SWDE, SQuAD completion, FDA) and
``zeroshot`` = the paper's zero-shot table. Any other name must be a task lm-eval knows;
an unknown name is a ``ZooError`` listing the friendly names and groups.

Offline mirrors (``eval/tasks/*.yaml``): ``<task>_offline`` reads a copy of the real
validation split saved by ``zoo eval download DIR``; ``<task>_sample`` reads the small
synthetic files shipped in ``eval/data`` — their scores are SAMPLE scores, never SWDE,
SQuAD or FDA results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from zoo.errors import ZooError

#: The paper's generation settings for the recall tasks: stop at a newline, at most 48 tokens.
#: lm-eval's swde and fda hard-code them; squad_completion would otherwise get 256 tokens and "\n\n".
RECALL_GEN_KWARGS = {"until": ["\n"], "max_gen_toks": 48}

#: Friendly name -> lm-eval task name.
ALIASES: Dict[str, str] = {
    "swde": "swde",
    "fda": "fda",
    "squad": "squad_completion",
    "squad_completion": "squad_completion",
    "wikitext": "wikitext",
    "lambada": "lambada_openai",
    "lambada_openai": "lambada_openai",
    "piqa": "piqa",
    "hellaswag": "hellaswag",
    "winogrande": "winogrande",
    "arc_easy": "arc_easy",
    "arc_challenge": "arc_challenge",
    "arc-e": "arc_easy",
    "arc-c": "arc_challenge",
}

GROUPS: Dict[str, List[str]] = {
    "recall": ["swde", "squad_completion", "fda"],
    "zeroshot": ["wikitext", "lambada_openai", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge"],
}

#: Tasks with an offline mirror; each has ``<name>_offline`` and ``<name>_sample`` YAMLs.
MIRRORED = ("swde", "squad_completion", "fda")

#: Hugging Face dataset behind each mirrored task (validation split), as lm-eval 0.4.13 loads it.
HF_DATASETS = {
    "swde": "hazyresearch/based-swde-v2",
    "fda": "hazyresearch/based-fda",
    "squad_completion": "hazyresearch/based-squad",
}

#: Column schema of each mirrored dataset (the sample files and downloads keep exactly these).
SCHEMAS = {
    "swde": ("doc_id", "file_name", "key", "value", "text"),
    "fda": ("doc_id", "file_name", "key", "value", "text"),
    "squad_completion": ("doc_id", "text", "value", "title", "context", "question"),
}

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
SAMPLE_DIR = Path(__file__).resolve().parent / "data"


def valid_names() -> List[str]:
    """Friendly names and groups, for error messages and --help."""
    return sorted(ALIASES) + sorted(GROUPS)


def resolve_tasks(spec: str | Iterable[str], is_lm_eval_task: Optional[Callable[[str], bool]] = None) -> List[str]:
    """Comma-separated names (or a list) -> de-duplicated lm-eval task names, in order.

    ``is_lm_eval_task(name)`` decides names that are neither aliases nor groups (default: ask
    lm-eval's TaskManager, which indexes its task folder — a few seconds, only when needed).
    """
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    parts = [p for p in parts if p]
    if not parts:
        raise ZooError(f"no tasks given. Valid names: {', '.join(valid_names())}")
    out: List[str] = []
    unknown: List[str] = []
    for part in parts:
        key = part.lower()
        if key in GROUPS:
            names = GROUPS[key]
        elif key in ALIASES:
            names = [ALIASES[key]]
        else:
            check = is_lm_eval_task or _lm_eval_knows
            if not check(part):
                unknown.append(part)
                continue
            names = [part]
        out.extend(n for n in names if n not in out)
    if unknown:
        raise ZooError(
            f"unknown task name(s): {', '.join(unknown)}. Valid names: {', '.join(valid_names())} "
            "(groups: " + "; ".join(f"{g} = {', '.join(m)}" for g, m in GROUPS.items())
            + "), or any task listed by `lm-eval ls tasks`"
        )
    return out


def mirror_names(tasks: List[str], use_samples: bool) -> List[str]:
    """Map real recall task names to their offline mirrors; other tasks have none (ZooError)."""
    missing = [t for t in tasks if t not in MIRRORED]
    if missing:
        raise ZooError(
            f"no offline mirror for {', '.join(missing)}: --offline covers {', '.join(MIRRORED)} only. "
            "For other tasks run online, or with HF_DATASETS_OFFLINE=1 if they are in your Hugging Face cache"
        )
    suffix = "_sample" if use_samples else "_offline"
    return [t + suffix for t in tasks]


def _lm_eval_knows(name: str) -> bool:
    from lm_eval.tasks import TaskManager

    return bool(TaskManager().match_tasks([name]))
