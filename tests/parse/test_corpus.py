"""The parser against the 92 real alerts of ``../shared/falco-alerts/corpus.jsonl``."""

from __future__ import annotations

import pytest

from falcoir.core.parse import ParseProblem, parse_text
from tests.parse.corpus import corpus_path, differences, records


def test_corpus_is_there() -> None:
    # Read in place from ../shared (CI has it there); never copied into the repo.
    assert corpus_path().is_file(), f"corpus not found at {corpus_path()}"
    assert len(records()) == 92


# Records where we read the text differently from the corpus, on purpose (see below).
DECIDED = {"fc-015", "fc-017"}


def test_at_least_95_percent_fully_right() -> None:
    recs = [r for r in records() if r["expected"]["is_alert"]]
    wrong: dict[str, list[str]] = {}
    for rec in recs:
        report = parse_text(rec["text"])
        if not report.alerts:
            wrong[rec["id"]] = [f"no alert: {report.problems}"]
            continue
        diff = differences(rec, report.alerts[0])
        if diff:
            wrong[rec["id"]] = diff
    total = len(records())
    right = total - len(wrong)
    assert right / total >= 0.95, wrong
    # Everything wrong is a decision pinned below, nothing else.
    assert set(wrong) <= DECIDED | {"fc-059"}, wrong


@pytest.mark.parametrize("rec", records(), ids=lambda r: r["id"])
def test_record(rec: dict[str, object]) -> None:
    report = parse_text(str(rec["text"]))
    expected = rec["expected"]
    assert isinstance(expected, dict)
    if not expected["is_alert"]:
        assert report.alerts == ()
        assert report.problems == ()
        assert report.skipped == 1
        return
    assert len(report.alerts) == 1, report.problems
    assert report.problems == ()
    alert = report.alerts[0]
    if rec["id"] in DECIDED or rec["id"] == "fc-059":
        return  # pinned in their own tests
    assert differences(rec, alert) == []  # type: ignore[arg-type]


def _text(rec_id: str) -> str:
    return next(str(r["text"]) for r in records() if r["id"] == rec_id)


def test_fc015_container_info_after_na_value() -> None:
    # The corpus lists ("oldpath", "<NA> host ("), ("oldpath", "<NA>"): a drafting slip.
    # The line has one oldpath=<NA> followed by the keyless %container.info "host (id=host)".
    alert = parse_text(_text("fc-015")).alerts[0]
    assert alert.fields[-2:] == (("oldpath", "<NA>"), ("%container.info", "host (id=host)"))
    assert [k for k, _ in alert.fields].count("oldpath") == 1
    assert alert.container.id == "host"
    assert alert.container.name == "host"


def test_fc017_gvisor_pid_is_the_container_pid() -> None:
    # gVisor's -pc appends "container=%container.id pid=%proc.vpid tid=%thread.vtid": the
    # corpus itself notes these are virtual (sandbox) ids. Our model keeps host pid and
    # in-container pid apart, so this pid is process.vpid, and the host pid is unknown.
    alert = parse_text(_text("fc-017")).alerts[0]
    assert alert.process.vpid == 8
    assert alert.process.pid is None
    assert alert.container.id == "f6d77af4ee3d"
    assert alert.fields[-3:] == (("container", "f6d77af4ee3d"), ("pid", "8"), ("tid", "8"))


def test_fc059_journald_cut_json_keeps_what_it_can() -> None:
    # A JSON line cut by journald: invalid JSON. We do not fail; the (cut) output string
    # still gives the time, priority and message, flagged as truncated.
    report = parse_text(_text("fc-059"))
    assert report.problems == ()
    (alert,) = report.alerts
    assert alert.truncated is True
    assert alert.time == "06:06:30.848867920"
    assert alert.priority == "Warning"
    assert alert.source_format == "json"


def test_noise_lines_are_skipped_and_counted() -> None:
    noise = [r for r in records() if not r["expected"]["is_alert"]]
    assert len(noise) == 5
    report = parse_text("\n".join(str(r["text"]) for r in noise))
    assert report.skipped == 5
    assert report.alerts == ()
    assert all(not isinstance(p, ParseProblem) for p in report.problems)


def test_whole_corpus_as_one_file() -> None:
    # Mixed formats line by line, pretty-printed JSON included: every alert comes out,
    # in order, with its line number.
    texts = [str(r["text"]) for r in records()]
    report = parse_text("\n".join(texts))
    alerts_expected = sum(1 for r in records() if r["expected"]["is_alert"])
    assert len(report.alerts) == alerts_expected
    assert report.skipped == 5
    assert report.problems == ()
    lines = [a.line for a in report.alerts]
    assert lines == sorted(lines)
