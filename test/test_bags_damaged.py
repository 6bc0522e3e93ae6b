"""A cut-off bag (a recorder that died): salvaged, replayed as *partial*, and the messages it
lost are counted per topic from what the bag announced (or said to be unknown)."""
from __future__ import annotations

import json

import pytest

from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.replay import main_replay
from test_bags_io import read_all, write_session_bag

KEEP = 0.7  # the share of the MCAP's bytes left, as when the recorder is killed mid-write


@pytest.fixture(scope="module")
def cut_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("cut") / "bag"
    counts = write_session_bag(path)
    mcap = next(path.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * KEEP)])
    return path, counts


def test_a_cut_bag_counts_the_lost_messages_from_its_metadata(cut_bag):
    path, counts = cut_bag
    msgs, account = read_all(path)
    assert account.damaged and account.announced_by == "metadata.yaml"
    assert dict(account.in_bag) == counts
    read = {t: sum(m.topic == t for m in msgs) for t in counts}
    assert account.lost() == {t: counts[t] - read[t] for t in counts}
    assert all(n > 0 for n in account.lost().values())  # 70 %: every stream lost its tail
    d = account.as_dict()
    assert d["damaged"] and {t: v["lost"] for t, v in d["topics"].items()} == account.lost()
    assert "missing from the file" in account.summary()


def test_without_metadata_the_lost_counts_are_unknown_not_zero(cut_bag, tmp_path):
    path, counts = cut_bag
    lone = tmp_path / "lone.mcap"  # the bare file: no metadata.yaml beside it
    lone.write_bytes(next(path.glob("*.mcap")).read_bytes())
    msgs, account = read_all(lone)
    assert msgs and account.damaged and not account.counts_known
    assert set(account.lost()) == set(counts) and set(account.lost().values()) == {"unknown"}
    assert {v["in_bag"] for v in account.as_dict()["topics"].values()} == {"unknown"}
    assert "lost: unknown" in account.summary()


def test_a_complete_bag_is_not_damaged_and_loses_nothing(tmp_path):
    counts = write_session_bag(tmp_path / "bag")
    _, account = read_all(tmp_path / "bag")
    assert not account.damaged and account.counts_known
    assert account.lost() == dict.fromkeys(counts, 0)
    # the MCAP summary (used when a bag cannot be opened whole) announces the same counts
    assert bags._mcap_summary_counts(next((tmp_path / "bag").glob("*.mcap"))) == counts


def test_replaying_a_cut_bag_exits_partial_and_reports_the_loss(cut_bag, tmp_path, capsys):
    path, counts = cut_bag
    report = tmp_path / "report.json"
    code = main_replay([str(path), "--out", str(tmp_path / "out"), "--images", "none",
                        "--set", "generator.model=procedural", "--report", str(report)])
    assert code == 3
    out = capsys.readouterr().out
    assert "PARTIAL" in out
    r = json.loads(report.read_text())
    assert r["status"] == "partial" and r["exit_status"] == 3
    topics = r["input"]["topics"]
    assert {t: topics[t]["in_bag"] for t in counts} == counts
    assert {t: topics[t]["lost"] for t in counts} == {t: counts[t] - topics[t]["read"] for t in counts}
    assert all(topics[t]["lost"] > 0 for t in counts)
    assert r["frames"] > 0  # the readable part was replayed: the output exists
    assert sum(read_all(tmp_path / "out")[1].read.values()) > 0


def test_replaying_a_whole_bag_exits_zero(tmp_path):
    write_session_bag(tmp_path / "bag")
    report = tmp_path / "report.json"
    assert main_replay([str(tmp_path / "bag"), "--out", str(tmp_path / "out"), "--images", "none",
                        "--set", "generator.model=procedural", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["status"] == "complete" and r["exit_status"] == 0
    assert all(v["lost"] == 0 for v in r["input"]["topics"].values())
