"""GRPO reward functions: answers extracted and compared as numbers, format, length, user functions."""

from __future__ import annotations

import pytest

from llmloop.train.config import GRPOConfig
from llmloop.train.rewards import answer_match, extract_answer, format_reward, load_reward


def _c(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_answers_are_extracted_from_markers_then_the_last_number():
    assert extract_answer("so 3+4 = 7. Answer: 7") == "7"
    assert extract_answer("first \\boxed{12} then \\boxed{42}") == "42"
    assert extract_answer("计算得出。答案：1,000") == "1,000"
    assert extract_answer("#### 5/2") == "5/2"
    assert extract_answer("it is 3 or maybe 9") == "9"
    assert extract_answer("no idea") is None


def test_answer_match_compares_numbers_as_numbers():
    completions = [_c("Answer: 1,000"), _c("\\boxed{1000.0}"), _c("2000/2"), _c("Answer: 999"), _c("Answer: Paris."),
                   "plain string 1000"]
    solutions = ["1000", "1000", "1000", "1000", "paris", "#### 1000"]
    assert answer_match(completions, solution=solutions) == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="needs a 'solution' column"):
        answer_match([_c("1")])


def test_format_and_length_rewards():
    assert format_reward([_c("Answer: 3"), _c("3")]) == [1.0, 0.0]
    length = load_reward("length", target_length=10)
    assert length([_c("x" * 10), _c("x" * 5), _c("x" * 30)]) == [1.0, 0.5, 0.0]


def test_user_reward_functions_by_import_path():
    fn = load_reward("llmloop.train.rewards:format_reward")
    assert fn is format_reward
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_reward("llmloop.train.rewards:nope")
    with pytest.raises(ValueError, match="unknown reward function 'accuracy'"):
        GRPOConfig(model="m", dataset="d", rewards=["accuracy"])
