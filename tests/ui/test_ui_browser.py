"""The UI in a real headless Chromium against a real gateway process: what a person does, and
what ends up in the store."""

from __future__ import annotations

import sqlalchemy as sa

from llmloop.store.tables import thumbs, votes


def _count(db, table) -> int:  # noqa: ANN001
    with db.begin() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_arena_vote_reaches_the_store(page, ui_home, screenshot):  # noqa: ANN001
    _, db = ui_home
    before = _count(db, votes)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-prompt textarea").fill("How do I reset my router?")
    page.locator("#arena-go").click()
    page.wait_for_function("document.querySelector('#answer-a textarea').value.length > 0")
    page.locator("#vote-a").click()
    page.get_by_text("Vote saved").wait_for()
    screenshot(page, "arena")
    assert _count(db, votes) == before + 1
    with db.begin() as conn:
        row = conn.execute(sa.select(votes).order_by(votes.c.id.desc()).limit(1)).one()
    assert row.choice == "a" and row.user_id.startswith("ui-")
    # the versions are revealed only after the vote
    assert "A was v1.0" in page.locator("#arena-status").inner_text()


def test_chat_streams_and_thumbs_down_with_correction_is_stored(page, ui_home, screenshot):  # noqa: ANN001
    _, db = ui_home
    before = _count(db, thumbs)
    page.locator("#chat-input textarea").fill("Hello, who are you?")
    page.locator("#chat-send").click()
    page.get_by_text("Answered by v1.0").wait_for()  # the stream has finished
    assert page.locator("#chatbot").inner_text().count("Hello, who are you?") == 1
    page.locator("#chat-correction textarea").fill("I am the support assistant. How can I help?")
    page.locator("#chat-send-correction").click()
    page.get_by_text("feedback saved").wait_for()
    screenshot(page, "chat")
    assert _count(db, thumbs) == before + 1
    with db.begin() as conn:
        row = conn.execute(sa.select(thumbs).order_by(thumbs.c.id.desc()).limit(1)).one()
    assert row.rating == -1 and row.correction == "I am the support assistant. How can I help?"


def test_rating_before_any_answer_is_refused_in_the_page(page, ui_home):  # noqa: ANN001
    _, db = ui_home
    before = _count(db, thumbs)
    page.locator("#thumbs-up").click()
    page.get_by_text("there is no answer to rate yet").wait_for()
    assert _count(db, thumbs) == before


def test_switching_to_chinese_relabels_the_page(page, screenshot):  # noqa: ANN001
    page.locator("#language").get_by_text("中文").click()
    page.get_by_role("tab", name="竞技场").wait_for()
    page.get_by_role("tab", name="竞技场").click()
    page.get_by_role("button", name="获取两个回答").wait_for()
    screenshot(page, "arena-zh")
    page.locator("#language").get_by_text("English").click()
    page.get_by_role("tab", name="Arena").wait_for()


def _text_in(page, selector: str, text: str) -> None:  # noqa: ANN001
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text])


def test_models_tab_lists_versions_aliases_and_rollout_controls(page, screenshot):  # noqa: ANN001
    page.get_by_role("tab", name="Models & rollout").click()
    _text_in(page, "#models-table", "production")
    assert page.locator("#rollout-promote").is_visible()  # an admin key: the actions are there
    _text_in(page, "#loop-status", "votes_this_week")
    screenshot(page, "models")


def test_upload_bad_file_shows_row_level_errors(page, ui_home, tmp_path, screenshot):  # noqa: ANN001
    _, db = ui_home
    bad = tmp_path / "tickets.jsonl"
    bad.write_text('{"instruction": "Where is my order?", "output": "It ships today."}\n'
                   '{"instruction": "", "output": "x"}\n'
                   '{"instruction": "Refund?", "output": 5}\n', encoding="utf-8")
    page.get_by_role("tab", name="Data").click()
    page.locator("#data-file input[type=file]").set_input_files(str(bad))
    page.locator("#data-name textarea").fill("tickets")
    page.locator("#data-upload").click()
    _text_in(page, "#data-status", "nothing was written")
    status = page.locator("#data-status").inner_text()
    assert "tickets.jsonl, row 2" in status and "tickets.jsonl, row 3" in status
    _text_in(page, "#data-problems", "instruction")
    table = page.locator("#data-problems").inner_text()
    assert "3" in table and "instruction" in table  # the rows, with the field at fault
    screenshot(page, "data")
    from llmloop.store.datasets import list_versions

    assert [v.dataset for v in list_versions(db)] == ["faq"]  # nothing written


def test_launch_tiny_sft_job_and_watch_its_curve(page, ui_home, screenshot):  # noqa: ANN001
    from llmloop.store import jobs

    _, db = ui_home
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-overrides textarea").fill(
        "model=v1.0\ndataset=faq\nmax_steps=12\nlogging_steps=1\nmax_length=64\n"
        "per_device_train_batch_size=4\nregister.enabled=false\nplot_loss=false")
    page.locator("#train-validate").click()
    page.get_by_text("The config is valid.").wait_for()
    page.locator("#train-launch").click()
    page.locator("#train-progress [data-status]").wait_for()  # the bar appears at launch, then follows the job
    page.locator("#train-progress [data-status=succeeded], #train-progress [data-status=failed]").wait_for(timeout=300_000)
    progress = page.locator("#train-progress").inner_text()
    assert "12/12 (100%)" in progress and "loss" in progress
    (job,) = jobs.list_jobs(db)
    steps = jobs.get_metrics(db, job.id)
    assert job.status == "succeeded" and len(steps) == 12 and steps[-1]["loss"] < steps[0]["loss"]
    assert " INFO " in page.locator("#train-log textarea").input_value()  # the job log's tail
    _text_in(page, "#train-jobs", job.id)
    page.locator("#train-curve svg, #train-curve canvas").first.wait_for()  # vega drew the curve
    screenshot(page, "train")


def test_annotator_sees_no_admin_actions_and_the_server_refuses_them(annotator_page, gateway, keys, screenshot):  # noqa: ANN001
    import httpx

    pg = annotator_page
    pg.get_by_role("tab", name="Models & rollout").click()
    pg.get_by_text("Promote, roll back and pause are for admins.").wait_for()
    assert not pg.locator("#rollout-promote").is_visible() and not pg.locator("#alias-set").is_visible()
    screenshot(pg, "models-annotator")
    pg.get_by_role("tab", name="Train").click()
    pg.locator("#train-validate").wait_for()
    assert not pg.locator("#train-launch").is_visible()
    r = httpx.post(f"{gateway}/api/v1/loop/promote", json={}, headers={"authorization": f"Bearer {keys['annotator']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    r = httpx.put(f"{gateway}/api/v1/models/aliases/production", json={"version": "v1.0"},
                  headers={"authorization": f"Bearer {keys['annotator']}"})
    assert r.status_code == 403


def test_screenshot_every_other_tab(page, screenshot):  # noqa: ANN001
    for tab, name, ready in (("Evaluate", "evaluate", "#eval-comparisons"), ("Surgery", "surgery", "#surgery-progress"),
                             ("Monitor", "monitor", "#monitor-totals")):
        page.get_by_role("tab", name=tab).click()
        page.locator(ready).wait_for(state="attached")
        if tab == "Monitor":  # earlier tests chatted with v1.0: its totals are on the page
            _text_in(page, "#monitor-totals", "v1.0")
            page.wait_for_timeout(6000)  # one more poll, so the plots are drawn while the tab is visible
        screenshot(page, name)
