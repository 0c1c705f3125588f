"""The UI in a real headless Chromium against a real gateway process, for each role (admin, user,
annotator) and language (en, zh): what a person does, and what ends up in the store. Each test
names the defect of issue 15 it would catch. The tests share one gateway and run in file order
(the arena votes feed the leaderboard test)."""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa

from llmloop.store import feedback, loop_events, registry, traffic
from llmloop.store.tables import thumbs, votes

# what a command line says and a page must not (issue item 5)
CLI_WORDS = re.compile(r"--skip-invalid|--set |--format|llmloop models alias|pass --")


def _count(db, table) -> int:  # noqa: ANN001
    with db.begin() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _last_thumbs(db, n: int) -> list:  # noqa: ANN001
    with db.begin() as conn:
        return list(reversed(conn.execute(sa.select(thumbs).order_by(thumbs.c.id.desc()).limit(n)).all()))


def _text_in(page, selector: str, text: str) -> None:  # noqa: ANN001
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text])


def _value(page, selector: str) -> str:  # noqa: ANN001
    return page.locator(f"{selector} textarea, {selector} input").first.input_value()


def _settled(page) -> None:  # noqa: ANN001
    """Wait until a confirmed rollout action's whole update is in the page: it clears the reason box and
    rewrites the split editor in the same update that shows its status line, and the browser may paint
    the status first (a fill made in between was overwritten: a flaky "Give a reason first")."""
    page.wait_for_function("document.querySelector('#rollout-reason textarea').value === ''")


def _fill(page, selector: str, text: str) -> None:  # noqa: ANN001
    box = page.locator(f"{selector} textarea")
    box.fill(text)
    page.wait_for_function("([s, t]) => document.querySelector(s).value === t", arg=[f"{selector} textarea", text])


def _no_emoji(page) -> None:  # noqa: ANN001
    """No button label needs an emoji font (CI has none: 👍/👎 rendered as tofu)."""
    labels = page.locator("button").all_inner_texts()
    bad = [s for s in labels if any(unicodedata.category(ch) == "So" and ord(ch) > 0x2FFF for ch in s)]
    assert not bad, bad


# -- admin, English ----------------------------------------------------------------------------------
def test_arena_pits_two_different_versions_reveals_them_and_clears(page, ui_home, screenshot):  # noqa: ANN001
    """Item 4: A and B were always one version, the answers stayed after the vote."""
    _, db = ui_home
    page.get_by_role("tab", name="Arena").click()
    assert page.locator("#vote-a").is_disabled()  # nothing to vote on yet
    for n in range(2):
        page.locator("#arena-prompt textarea").fill(f"How do I reset my router? ({n})")
        page.locator("#arena-go").click()
        page.wait_for_function("document.querySelector('#answer-a textarea').value.length > 0")
        assert "one version" not in page.locator("#arena-status").inner_text()  # two versions: no on-policy label
        if n == 0:
            screenshot(page, "arena")
        page.locator("#vote-a" if n == 0 else "#vote-tie").click()
        page.get_by_text("Vote saved").wait_for()
        status = page.locator("#arena-status").inner_text()
        got = re.search(r"A was (v1\.\d), B was (v1\.\d)", status)
        assert got and got.group(1) != got.group(2), status
        last = feedback.voted_battles(db)[-1]
        assert (last.version_a, last.version_b) == got.groups()  # the reveal is the store's truth
        assert last.version_a != last.version_b and last.user_id.startswith("ui-")
        assert _value(page, "#answer-a") == "" and _value(page, "#answer-b") == "" and _value(page, "#arena-prompt") == ""
        assert page.locator("#vote-a").is_disabled()  # no second vote on a battle that is gone


def test_arena_battle_goes_on_with_follow_ups_then_one_vote_judges_it_all(page, ui_home):  # noqa: ANN001
    """Parity with Chatbot Arena: multi-turn battles; the same two versions answer each follow-up, each
    continuing its own conversation, and the vote becomes one pair over both conversations."""
    from llmloop.data import preferences

    _, db = ui_home
    page.get_by_role("tab", name="Arena").click()
    assert page.locator("#arena-followup-go").is_disabled()  # no battle to follow up yet
    page.locator("#arena-prompt textarea").fill("My kettle leaks.")
    page.locator("#arena-go").click()
    page.wait_for_function("document.querySelector('#answer-a textarea').value.length > 0")
    first_a, first_b = _value(page, "#answer-a"), _value(page, "#answer-b")
    _fill(page, "#arena-followup", "It is still under warranty.")
    page.locator("#arena-followup-go").click()
    _text_in(page, "#arena-status", "Turn 2")
    shown_a = _value(page, "#answer-a")
    assert shown_a.startswith(first_a) and "» You: It is still under warranty." in shown_a  # the conversation, in order
    assert _value(page, "#answer-b").startswith(first_b) and _value(page, "#arena-followup") == ""
    page.locator("#vote-b").click()
    page.get_by_text("Vote saved").wait_for()
    assert page.locator("#arena-followup-go").is_disabled()  # the vote ended the battle
    vote = feedback.voted_battles(db)[-1]
    assert vote.choice == "b" and vote.messages == [{"role": "user", "content": "My kettle leaks."}]
    assert vote.messages_a[-2:] == [{"role": "assistant", "content": first_a},
                                    {"role": "user", "content": "It is still under warranty."}]
    assert vote.messages_b[-2]["content"] == first_b  # side b continued its own answer, not a's
    (pair,) = preferences.pairs_from_votes([vote])
    assert [m["content"] for m in pair["chosen"][:2]] == [first_b, "It is still under warranty."]
    assert pair["chosen"][-1]["content"] == vote.output_b and pair["rejected"][-1]["content"] == vote.output_a


def test_chat_rates_every_answer_once_and_clears_the_fields(page, ui_home, screenshot):  # noqa: ANN001
    """Item 4: only the last answer could be rated, the fields stayed filled, a second 👎 was stored again;
    item 7: thumbs as tofu."""
    _, db = ui_home
    before = _count(db, thumbs)
    for text in ("Hello, who are you?", "And what can you do?"):
        page.locator("#chat-input textarea").fill(text)
        page.locator("#chat-send").click()
        page.get_by_text("Answered by v1.0").wait_for()  # the stream has finished
        page.wait_for_function("(t) => document.querySelector('#chatbot').innerText.includes(t)", arg=text)
    assert page.locator("#chatbot").inner_text().count("Hello, who are you?") == 1
    likes, dislikes = page.locator("#chatbot button[aria-label=Like]"), page.locator("#chatbot button[aria-label=Dislike]")
    assert likes.count() == 2 and dislikes.count() == 2  # thumbs on every answer (SVG icons, no emoji font)
    _no_emoji(page)
    page.locator("#chat-comment textarea").fill("friendly")
    likes.nth(0).click()  # the FIRST answer
    _text_in(page, "#chat-status", "thumbs-up")
    assert _value(page, "#chat-comment") == ""
    page.locator("#chat-comment textarea").fill("does not answer")
    page.locator("#chat-correction textarea").fill("I can track orders and reset devices.")
    dislikes.nth(1).click()
    _text_in(page, "#chat-status", "thumbs-down")
    assert _value(page, "#chat-comment") == "" and _value(page, "#chat-correction") == ""
    screenshot(page, "chat")
    first, second = _last_thumbs(db, 2)
    assert _count(db, thumbs) == before + 2 and first.request_id != second.request_id
    assert (first.rating, first.comment, first.correction) == (1, "friendly", None)
    assert (second.rating, second.comment, second.correction) == (-1, "does not answer",
                                                                  "I can track orders and reset devices.")
    page.locator("#chat-correction textarea").fill("another try")
    page.locator("#chat-send-correction").click()  # the newest answer is rated already
    _text_in(page, "#chat-status", "already rated")
    assert _count(db, thumbs) == before + 2  # no duplicate


def test_chat_with_another_version_and_regenerate(page, ui_home):  # noqa: ANN001
    """Parity: chat with any version, not only production; regenerate."""
    page.locator("#chat-send-correction").click()
    _text_in(page, "#chat-status", "there is no answer to rate yet")  # nothing asked yet in this page
    page.locator("#chat-model input").click()
    page.get_by_role("option", name=re.compile(r"^v1\.1")).click()
    page.locator("#chat-input textarea").fill("Hi")
    page.locator("#chat-send").click()
    page.get_by_text("Answered by v1.1").wait_for()
    first_id = re.search(r"request (\S+)\)", page.locator("#chat-status").inner_text()).group(1)
    page.locator("#chat-regenerate").click()
    page.wait_for_function("(old) => { const s = document.querySelector('#chat-status').innerText;"
                           " return s.includes('Answered by v1.1') && !s.includes(old); }", arg=first_id)
    assert page.locator("#chatbot button[aria-label=Like]").count() == 1  # the answer replaced, not added


def test_models_tab_rollout_actions_are_confirmed_with_a_reason_in_the_audit_log(page, ui_home, screenshot):  # noqa: ANN001
    """Item 2: roll back / promote / pause moved things with one click and no reason; item 5: the
    split was read-only; item 7: loop status as raw JSON."""
    _, db = ui_home
    page.get_by_role("tab", name="Models & rollout").click()
    _text_in(page, "#models-table", "v1.1")
    _text_in(page, "#loop-status", "Votes this week")  # a table in words, not JSON keys
    assert "votes_this_week" not in page.locator("#loop-status").inner_text()
    page.locator("#rollout-rollback").click()
    page.get_by_text("Give a reason first").wait_for()
    assert not page.locator("#confirm-yes").is_visible()
    page.locator("#rollout-reason textarea").fill("answers got worse")
    page.locator("#rollout-rollback").click()
    page.locator("#confirm-yes").wait_for(state="visible")
    assert "Roll back?" in page.locator("#confirm-text").inner_text()
    page.locator("#confirm-no").click()
    page.get_by_text("nothing changed").wait_for()
    assert registry.resolve_alias(db, "production") == "v1.0"
    # pause, confirmed: the reason and who lands in the loop's events
    page.locator("#rollout-reason textarea").fill("holiday freeze")
    page.locator("#rollout-pause").click()
    page.locator("#confirm-yes").click()
    page.get_by_text("The loop is paused.").wait_for()
    _settled(page)
    assert loop_events.get_state(db).paused
    ev = loop_events.list_events(db)[-1]
    assert ev.kind == "paused" and ev.message == "holiday freeze" and ev.actor == "key:ui-admin"
    _fill(page, "#rollout-reason", "freeze over")
    page.locator("#rollout-resume").click()
    page.locator("#confirm-yes").click()
    page.get_by_text("The loop is running again.").wait_for()
    _settled(page)
    # the split editor: the new split and its reason in the split history
    _fill(page, "#split-edit", "production=60, v1.1=40")
    _fill(page, "#rollout-reason", "more traffic to production")
    page.locator("#split-set").click()
    _text_in(page, "#confirm-text", "production=60, v1.1=40")
    screenshot(page, "models")
    page.locator("#confirm-yes").click()
    page.get_by_text("The traffic split is now").wait_for()
    now = traffic.get_split(db)
    assert now.weights == {"production": 60, "v1.1": 40} and now.reason == "more traffic to production"
    _text_in(page, "#traffic-split", "60%")
    _settled(page)
    # a rollback with nothing promoted: the controller's refusal, in the page's words
    _fill(page, "#rollout-reason", "try")
    page.locator("#rollout-rollback").click()
    page.locator("#confirm-yes").click()
    _text_in(page, "#rollout-status", "Error")
    assert not CLI_WORDS.search(page.locator("#rollout-status").inner_text())
    assert registry.resolve_alias(db, "production") == "v1.0"


def test_upload_bad_file_lists_rows_in_page_words_then_skip_invalid(page, ui_home, tmp_path, screenshot):  # noqa: ANN001
    """Items 5 and 7: "pass --skip-invalid" in the page, squeezed headers, "? (?)", a JSON tree preview."""
    from llmloop.store.datasets import list_versions

    _, db = ui_home
    bad = tmp_path / "tickets.jsonl"
    bad.write_text('{"instruction": "Where is my order?", "output": "It ships today."}\n'
                   '{"instruction": "", "output": "x"}\n'
                   '{"instruction": "Refund?", "output": 5}\n', encoding="utf-8")
    page.get_by_role("tab", name="Data").click()
    with page.expect_file_chooser() as chooser:
        page.locator("#data-file").click()
    chooser.value.set_files(str(bad))
    _text_in(page, "#data-file-name", "tickets.jsonl")
    page.locator("#data-name textarea").fill("tickets")
    page.locator("#data-upload").click()
    _text_in(page, "#data-status", "nothing was written")
    status = page.locator("#data-status").inner_text()
    assert "tickets.jsonl, row 2" in status and "tickets.jsonl, row 3" in status
    assert "Import only the valid rows" in status and not CLI_WORDS.search(status)
    _text_in(page, "#data-problems", "instruction")
    header = page.locator("#data-problems th").first.bounding_box()
    assert header["width"] > 30  # "Row" on one line, not "r o w"
    screenshot(page, "data")
    assert [v.dataset for v in list_versions(db)] == ["faq"]  # nothing written
    page.locator("#data-skip-invalid input").check()
    page.locator("#data-upload").click()
    _text_in(page, "#data-status", "Stored tickets v1.0: 1 rows")
    assert sorted({v.dataset for v in list_versions(db)}) == ["faq", "tickets"]
    # a file whose format cannot be told: said in words, not "0 rows read as ? (?)"
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"foo": 1}\n', encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        page.locator("#data-file").click()
    chooser.value.set_files(str(odd))
    _text_in(page, "#data-file-name", "odd.jsonl")
    page.locator("#data-validate").click()
    page.wait_for_function("document.querySelector('#data-status').innerText.includes('rows')")
    assert "?" not in page.locator("#data-status").inner_text()


def test_dataset_dropdown_pages_rows_as_a_table_and_stats_in_words(page, ui_home):  # noqa: ANN001
    """Parity: dataset dropdown with a paged row preview; item 7: preview as JSON, stats with server paths."""
    home, _ = ui_home
    page.get_by_role("tab", name="Data").click()
    page.locator("#data-ref input").click()
    page.get_by_role("option", name="faq").click()
    _text_in(page, "#data-page-note", "Page 1 of 2 (12 rows)")
    _text_in(page, "#data-preview", "How do I reset device 0?")
    assert "device 11" not in page.locator("#data-preview").inner_text()
    page.locator("#data-next").click()
    _text_in(page, "#data-preview", "How do I reset device 11?")
    _text_in(page, "#data-page-note", "Page 2 of 2")
    stats = page.locator("#data-stats").inner_text()
    assert "Rows" in stats and "12" in stats and str(home) not in stats and "{" not in stats
    page.locator("#data-versions span.text:not(.header)", has_text="v1.0").last.click()  # a version: shown by click
    page.wait_for_function("document.querySelector('#data-ref input').value === 'faq@v1.0'")
    _text_in(page, "#data-page-note", "Page 1 of 2")
    page.get_by_text("Dedup, filter, diff, export").click()
    page.locator("#data-dedup").click()
    _text_in(page, "#data-result", "nothing to drop among its 12 rows")  # a sentence, not a JSON tree


def test_train_offers_every_stage_validates_datasets_and_runs_from_the_form(page, ui_home, screenshot):  # noqa: ANN001
    """Item 5: three of eight stages, an unknown dataset passed validation, "--set" in the page;
    parity: form widgets; item 7: config dumps in the log, job ids copied by hand."""
    from llmloop.store import job_queue

    _, db = ui_home
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-stage input").click()
    options = page.get_by_role("option").all_inner_texts()
    assert [o.replace("✓", "").split()[0] for o in options] == ["pt", "sft", "dpo", "orpo", "kto", "rm", "grpo", "ppo"]
    page.keyboard.press("Escape")
    page.locator("#train-overrides textarea").fill("model=v1.0\ndataset=nope")
    page.locator("#train-validate").click()
    page.get_by_text("The config has problems").wait_for()
    problems = page.locator("#train-status").inner_text()
    assert "nope" in problems and "faq" in problems  # unknown, and what is stored
    page.locator("#train-overrides textarea").fill("model=v1.0\ndataset=faq\nlearning_rate=lots")
    page.locator("#train-validate").click()
    _text_in(page, "#train-status", "lots")
    problems = page.locator("#train-status").inner_text()
    assert "learning_rate" in problems and not CLI_WORDS.search(problems) and "Overrides" in problems
    # the form: dataset from the menu, steps typed in; the overrides box only for the rest
    page.locator("#train-overrides textarea").fill("register.enabled=false\nplot_loss=false")
    page.locator("#form-model input").fill("v1.0")
    page.locator("#form-dataset input").click()
    page.get_by_role("option", name="faq").click()
    for field, value in (("max-steps", "12"), ("logging-steps", "1"), ("max-length", "64"),
                         ("per-device-train-batch-size", "4")):
        page.locator(f"#form-{field} input").fill(value)
    page.locator("#train-validate").click()
    page.get_by_text("The config is valid.").wait_for()
    page.locator("#train-launch").click()
    page.locator("#train-progress [data-status]").wait_for()
    page.locator("#train-progress [data-status=succeeded], #train-progress [data-status=failed]").wait_for(timeout=300_000)
    progress = page.locator("#train-progress").inner_text()
    assert "12/12 (100%)" in progress and "loss" in progress
    (job,) = job_queue.list_jobs(db)
    steps = job_queue.get_metrics(db, job.id)
    assert job.status == "succeeded" and len(steps) == 12 and steps[-1]["loss"] < steps[0]["loss"]
    assert job.config["dataset"] == "faq" and job.config["max_steps"] == 12  # what the form said
    log = _value(page, "#train-log")
    assert " INFO llmloop" in log and "{'" not in log and '{"' not in log and "LlamaConfig" not in log  # no dumps
    assert not page.locator("#form-beta").is_visible()  # sft has no beta
    _text_in(page, "#train-jobs", job.id)
    page.locator("#train-curve svg, #train-curve canvas").first.wait_for()  # vega drew the curve
    screenshot(page, "train")
    page.locator("#train-jobs span.text:not(.header)", has_text=job.id).last.click()  # a click follows the job
    page.wait_for_function("(id) => document.querySelector('#train-job-id textarea').value === id", arg=job.id)


def test_leaderboard_rounds_ratings_and_shows_intervals(page, screenshot):  # noqa: ANN001
    """Items 3 and 7: the leaderboard was empty (500) and unreadable (1121.4934672652628, CIs out of view)."""
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-refresh").click()
    _text_in(page, "#eval-leaderboard-note", " ")
    assert "arena battles" in page.locator("#eval-leaderboard-note").inner_text(), \
        page.locator("#eval-leaderboard-note").inner_text()
    _text_in(page, "#eval-leaderboard", "v1.1")
    board = page.locator("#eval-leaderboard").inner_text()
    assert re.search(r"\b\d{3,4} – \d{3,4}\b", board), board  # the 95% interval beside the rating
    assert not re.search(r"\d\.\d{3,}", board), board  # rounded
    cell = page.locator("#eval-leaderboard th").nth(3).bounding_box()
    assert cell["x"] + cell["width"] <= 1280  # the interval column is in view
    _text_in(page, "#eval-leaderboard-note", "arena battles")
    screenshot(page, "evaluate")


def test_switching_to_chinese_translates_tables_upload_status_and_errors(page, screenshot):  # noqa: ANN001
    """Item 6: table headers, the upload widget, JSON keys and gateway messages stayed English."""
    page.locator("#language").get_by_text("中文").click()
    page.get_by_role("tab", name="竞技场").wait_for()
    page.get_by_role("tab", name="模型与发布").click()
    _text_in(page, "#models-table", "名称")  # headers
    _text_in(page, "#loop-status", "本周投票")  # the status table's keys
    page.get_by_role("tab", name="数据").click()
    _text_in(page, "#data-file", "选择数据文件")  # the upload widget
    _text_in(page, "#data-problems", "修正方法")
    page.locator("#data-name textarea").fill("")
    page.locator("#data-upload").click()
    _text_in(page, "#data-status", "请先")  # the page's own refusal, in Chinese
    page.get_by_role("tab", name="竞技场").click()
    page.get_by_role("button", name="获取两个回答").wait_for()
    screenshot(page, "arena-zh")
    page.locator("#language").get_by_text("English").click()
    page.get_by_role("tab", name="Arena").wait_for()
    _text_in(page, "#models-table", "Name")


def test_screenshot_every_other_tab(page, screenshot):  # noqa: ANN001
    for tab, name, ready in (("Surgery", "surgery", "#surgery-progress"), ("Monitor", "monitor", "#monitor-totals")):
        page.get_by_role("tab", name=tab).click()
        page.locator(ready).wait_for(state="attached")
        if tab == "Monitor":  # earlier tests chatted with v1.0: its totals are on the page
            _text_in(page, "#monitor-totals", "v1.0")
            page.wait_for_timeout(6000)  # one more poll, so the plots are drawn while the tab is visible
        screenshot(page, name)


# -- a plain user key, Chinese -------------------------------------------------------------------------
def test_user_key_chats_votes_as_its_own_user_in_chinese(user_page, ui_home, screenshot):  # noqa: ANN001
    """Item 1: a user key could not chat or vote ("cannot act for 'ui-…'"), the header said no key,
    Models & rollout showed a garbled row; item 6: gateway messages in English."""
    _, db = ui_home
    pg = user_page
    _text_in(pg, "#role", "alice")  # whoami answered the user key
    assert "普通用户" in pg.locator("#role").inner_text()
    before = _count(db, thumbs)
    pg.locator("#chat-input textarea").fill("你好")
    pg.locator("#chat-send").click()
    pg.get_by_text("由 v1.0 回答").wait_for()
    pg.locator("#chatbot button[aria-label]").filter(has=pg.locator("svg")).last.wait_for()
    pg.locator("#chatbot button[aria-label=Like], #chatbot button[aria-label=赞]").first.click()
    _text_in(pg, "#chat-status", "好评")
    (row,) = _last_thumbs(db, 1)
    assert _count(db, thumbs) == before + 1 and row.user_id == "alice" and row.rating == 1
    # a gateway refusal, in Chinese (the gateway's own English after it); the message stays in the box
    pg.locator("#chat-model input").fill("nope")
    pg.locator("#chat-model input").press("Enter")
    pg.locator("#chat-input textarea").fill("还在吗？")
    pg.locator("#chat-send").click()
    _text_in(pg, "#chat-status", "没有这个模型")
    assert _value(pg, "#chat-input") == "还在吗？"
    votes_before = _count(db, votes)
    pg.get_by_role("tab", name="竞技场").click()
    pg.locator("#arena-prompt textarea").fill("怎么重置路由器？")
    pg.locator("#arena-go").click()
    pg.wait_for_function("document.querySelector('#answer-a textarea').value.length > 0")
    pg.locator("#vote-b").click()
    pg.get_by_text("投票已保存").wait_for()
    assert _count(db, votes) == votes_before + 1 and feedback.voted_battles(db)[-1].user_id == "alice"
    assert re.search(r"A 是 v1\.\d，B 是 v1\.\d", pg.locator("#arena-status").inner_text())
    screenshot(pg, "arena-user-zh")
    pg.get_by_role("tab", name="模型与发布").click()
    _text_in(pg, "#models-table", "v1.1")
    table = pg.locator("#models-table").inner_text()
    assert "completion" not in table and "c1.0" not in table
    cells = pg.evaluate("[...document.querySelectorAll('#models-table span.text:not(.header)')].map(e => e.innerText.trim())")
    lines = [cells[i:i + 5] for i in range(0, len(cells), 5)]  # name, kind, stage, aliases, parent
    assert [r[0] for r in lines] == ["v1.0", "v1.1"], lines  # one row per version …
    assert "production" in lines[0] and "production" not in lines[1]  # … the alias on its version
    assert not pg.locator("#rollout-promote").is_visible()


# -- annotator, English --------------------------------------------------------------------------------
def test_annotator_sees_no_admin_actions_and_the_server_refuses_them(annotator_page, gateway, keys, screenshot):  # noqa: ANN001
    import httpx

    pg = annotator_page
    pg.get_by_role("tab", name="Models & rollout").click()
    pg.get_by_text("Promote, roll back and pause are for admins.").wait_for()
    assert not pg.locator("#rollout-promote").is_visible() and not pg.locator("#alias-set").is_visible()
    assert not pg.locator("#split-set").is_visible()
    _text_in(pg, "#loop-status", "Production")
    screenshot(pg, "models-annotator")
    pg.get_by_role("tab", name="Train").click()
    pg.locator("#train-validate").wait_for()
    assert not pg.locator("#train-launch").is_visible()
    r = httpx.post(f"{gateway}/api/v1/loop/promote", json={}, headers={"authorization": f"Bearer {keys['annotator']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    r = httpx.put(f"{gateway}/api/v1/models/aliases/production", json={"version": "v1.0"},
                  headers={"authorization": f"Bearer {keys['annotator']}"})
    assert r.status_code == 403
    r = httpx.put(f"{gateway}/api/v1/loop/split", json={"weights": {"production": 1}, "reason": "x"},
                  headers={"authorization": f"Bearer {keys['annotator']}"})
    assert r.status_code == 403
