"""Tiny datasets for the training tests: small enough that one batch holds them all, so every step
sees the same data and the loss falls step after step.

Training runs on one CPU thread here. On a shared two-core machine, two OpenMP threads that have to
wait for cores spin instead of working: with a load of about 4 the tiny PT step took 5.2 s on two
threads against 0.7 s on one (same losses); idle, two threads were 1.4x faster.
"""

from __future__ import annotations

import pytest

from llmloop.data.versions import write_version

ITEMS = ["desk lamp", "kettle", "yoga mat", "office chair", "coffee mug", "desk fan", "backpack", "blender"]


def pt_rows() -> list[dict]:
    return [
        {"text": f"Northwind help centre. The {item} can be returned within 30 days of delivery. "
                 f"Open My Orders, choose the {item} and click Return.", "provenance": {"doc": i}}
        for i, item in enumerate(ITEMS)
    ]


def sft_rows() -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"Can I return the {item}?"},
                      {"role": "assistant", "content": f"Yes, return the {item} within 30 days."}],
         "provenance": {"source": "test"}}
        for item in ITEMS
    ]


def preference_rows() -> list[dict]:
    return [
        {"prompt": [{"role": "user", "content": f"Can I return the {item}?"}],
         "chosen": [{"role": "assistant", "content": f"Yes, return the {item} within 30 days."}],
         "rejected": [{"role": "assistant", "content": "No."}],
         "provenance": {"vote": i}}
        for i, item in enumerate(ITEMS)
    ]


def kto_rows() -> list[dict]:
    good = [{"prompt": [{"role": "user", "content": f"Can I return the {item}?"}],
             "completion": [{"role": "assistant", "content": f"Yes, return the {item} within 30 days."}],
             "label": True} for item in ITEMS]
    bad = [{"prompt": [{"role": "user", "content": f"Can I return the {item}?"}],
            "completion": [{"role": "assistant", "content": "No."}], "label": False} for item in ITEMS]
    return good + bad


def prompt_rows() -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"What is {a} plus {b}? End with Answer: <number>."}],
             "solution": str(a + b)} for a, b in [(2, 3), (10, 7), (4, 4), (12, 30)]]


@pytest.fixture(scope="package", autouse=True)
def one_cpu_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def datasets(db):
    """One dataset version of each kind: name -> DatasetVersion."""
    return {
        "corpus": write_version(db, pt_rows(), name="corpus", kind="pt", source_format="jsonl"),
        "faq": write_version(db, sft_rows(), name="faq", kind="sft", source_format="messages"),
        "prefs": write_version(db, preference_rows(), name="prefs", kind="preference", source_format="trl"),
        "feedback": write_version(db, kto_rows(), name="feedback", kind="kto", source_format="trl"),
        "math": write_version(db, prompt_rows(), name="math", kind="prompt", source_format="trl"),
    }
