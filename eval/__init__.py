"""Evaluation through lm-evaluation-harness: the `zoo` LM, task aliases, offline mirrors."""
